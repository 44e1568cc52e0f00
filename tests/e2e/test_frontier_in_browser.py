"""The Frontier page in Chromium on a 1024x768 projector: the chart reads, and a click on a preset's point
opens that preset on the Architecture page."""

import pytest
from playwright.sync_api import expect

from mnist_core.frontier import MEASURED
from tests.browser import metric_value, no_exception_box, screenshot

pytestmark = pytest.mark.e2e

PROJECTOR = (1024, 768)
# The centre of a preset's mean marker (a diamond), found through the figure's own data in the page.
MARKER_CENTRE = """(preset) => {
  const plot = document.querySelector('.js-plotly-plot');
  const index = plot.data.findIndex((trace) => trace.mode === 'markers+text'
                                    && JSON.stringify(trace.customdata) === JSON.stringify([preset]));
  const point = plot.querySelectorAll('.scatterlayer .trace')[index].querySelector('path.point');
  const box = point.getBoundingClientRect();
  return {x: box.x + box.width / 2, y: box.y + box.height / 2};
}"""


def test_the_frontier_reads_on_a_projector_and_a_click_on_a_preset_opens_it(server, watched_context):
    page = watched_context(*PROJECTOR).new_page()
    page.goto(f"{server.url}/frontier")
    expect(page.get_by_role("heading", name="Budget frontier")).to_be_visible()
    chart = page.locator(".js-plotly-plot").first
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box["width"] >= 500 and box["y"] + box["height"] <= 768, box  # whole, beside the sidebar, unscrolled
    for result in MEASURED.values():  # in the legend, and each mean under its bar
        expect(chart.get_by_text(result.preset, exact=False).first).to_be_attached()
        expect(chart.get_by_text(f"{result.mean:.2%}", exact=True).first).to_be_visible()
    no_exception_box(page)
    screenshot(page, "frontier-1024x768")
    smallest = min(MEASURED.values(), key=lambda result: result.params)
    centre = page.evaluate(MARKER_CENTRE, smallest.preset)
    page.mouse.click(centre["x"], centre["y"])
    expect(page.get_by_role("heading", name="Architecture")).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Total params")
           .locator('[data-testid="stMetricValue"]')).to_have_text(f"{smallest.params:,}")
    expect(page.get_by_text(f"Loaded preset {smallest.preset} from the frontier")).to_be_visible()
    assert metric_value(page, "Total params") == f"{smallest.params:,}"
    no_exception_box(page)
