"""The Architecture and Train pages on a 1024x768 projector (and a 1440x900 laptop), measured in Chromium:
what a class watches stays on screen, headers read whole, the link copies, Reset resets what it shows, and
Quick run trains where the eye already is."""

import re

import pytest
from playwright.sync_api import expect

from mnist_core.evidence import accuracy_text
from mnist_core.spec import PRESETS
from tests.browser import metric_value, no_exception_box, screenshot

pytestmark = pytest.mark.e2e

PROJECTOR = (1024, 768)


def inside(box, height: int) -> bool:
    """Whether an element's bounding box lies wholly inside a viewport `height` px tall."""
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def scrolled(page) -> float:
    """How far the app's main area is scrolled (Streamlit scrolls it, not the window)."""
    return page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollTop")


def open_architecture(page, server):
    page.goto(f"{server.url}/architecture")
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()
    assert metric_value(page, "Total params") == "14,960"


@pytest.mark.parametrize("width, height", [PROJECTOR, (1440, 900)])
def test_counter_bar_verdict_and_last_change_stay_in_view_while_toggling(server, watched_context, width, height):
    """BatchNorm on the last 3x3 conv (conv 7), low in the table: the page scrolls to reach it, and the counter,
    the budget bar, the verdict and the last change are still on screen (they scrolled away above it)."""
    page = watched_context(width, height).new_page()
    open_architecture(page, server)
    switch = page.get_by_role("switch", name="batchnorm of conv 7")
    switch.scroll_into_view_if_needed()
    switch.click(force=True)
    last_change = page.get_by_text("Last change: BatchNorm after conv 7: +64 total / +32 trainable")
    expect(last_change).to_be_visible()
    verdict = page.get_by_test_id("stAlertContentError").get_by_text("over the 15,000 budget by 24")
    expect(verdict).to_be_visible()
    assert metric_value(page, "Total params") == "15,024"
    assert scrolled(page) > 0, "the toggle was reached without scrolling: nothing was tested"
    counter = page.locator('[data-testid="stMetric"]').filter(has_text="Total params")
    # During the rerun the old bar may linger a moment beside the new one: look for the new one by its count.
    bar = page.locator(".st-key-budget_header .js-plotly-plot").filter(has_text="15,024 / 15,000")
    expect(bar).to_be_visible()
    for name, element in (("counter", counter), ("bar", bar), ("verdict", verdict), ("last change", last_change),
                          ("toggle", switch)):
        assert inside(element.bounding_box(), height), f"the {name} is out of view: {element.bounding_box()}"
    if (width, height) == PROJECTOR:
        screenshot(page, "architecture-1024x768-toggled")


def test_layer_table_headers_and_names_read_on_one_line(server, watched_context):
    """'Dropout' broke into 'Dropou' / 't' at 1024 px; no header or layer name may wrap or overflow its column."""
    page = watched_context(*PROJECTOR).new_page()
    open_architecture(page, server)
    cells = page.evaluate("""() => [...document.querySelectorAll('[data-testid=stColumn] [data-testid=stMarkdown] p')]
        .filter((p) => /^(Layer|Sep|Filters|BN|Dropout|Rate|Output|RF|Params|conv \\d|MaxPool|GlobalAvgPool|Softmax)/
                       .test(p.innerText))
        .map((p) => ({text: p.innerText, overflow: p.scrollWidth - p.clientWidth,
                      lines: p.getBoundingClientRect().height / parseFloat(getComputedStyle(p).lineHeight)}))""")
    headers = [cell["text"] for cell in cells[:9]]
    assert headers == ["Layer", "Sep", "Filters", "BN", "Dropout", "Rate", "Output", "RF", "Params"]
    assert "GlobalAvgPool" in [cell["text"] for cell in cells]
    broken = [cell for cell in cells if round(cell["lines"]) != 1 or cell["overflow"] > 0]
    assert not broken, f"text wraps or overflows its column: {broken}"
    screenshot(page, "architecture-1024x768")


def test_copy_link_copies_the_link_that_opens_this_network(server, watched_context):
    """The copy button beside the sidebar's link shows without a hover, and copies the page's own link,
    which follows an edit."""
    context = watched_context(*PROJECTOR)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    open_architecture(page, server)
    page.get_by_role("switch", name="batchnorm of conv 7").click(force=True)
    expect(page.get_by_text("Last change: BatchNorm after conv 7")).to_be_visible()
    share = page.locator(".st-key-share_link")
    expect(share.get_by_text("Copy link")).to_be_visible()
    copy = share.get_by_role("button", name="Copy to clipboard")
    expect(copy).to_be_visible()
    assert inside(copy.bounding_box(), PROJECTOR[1])
    expect(page).to_have_url(re.compile(r"_c3x16bd0\.1_c1x10l_"))
    expect(share.locator('[data-testid="stCode"]')).to_have_text(page.url)
    copy.click()
    assert page.evaluate("() => navigator.clipboard.readText()") == page.url
    opened = context.new_page()
    opened.goto(page.url)
    expect(opened.locator('[data-testid="stMetric"]').first).to_be_visible()
    assert metric_value(opened, "Total params") == "15,024"


def test_reset_shows_the_default_budget_and_a_preset_click_keeps_it(server, watched_context):
    """Budget 20000 typed, then Reset: the field read 20000 still, and the next click brought 20,000 back."""
    page = watched_context(*PROJECTOR).new_page()
    open_architecture(page, server)
    field = page.get_by_role("spinbutton", name="Budget (params)")
    field.fill("20000")
    field.press("Enter")
    success = page.get_by_test_id("stAlertContentSuccess")
    expect(success.get_by_text("14,960 total params < 20,000: 5,039 to spare")).to_be_visible()
    page.get_by_role("button", name="Reset").click()
    expect(field).to_have_value("15000")
    expect(success.get_by_text("14,960 total params < 15,000: 39 to spare")).to_be_visible()
    page.get_by_role("button", name=f"seed-first ({15_088:,})").click()
    expect(page.get_by_test_id("stAlertContentError").get_by_text("over the 15,000 budget by 88")).to_be_visible()
    expect(field).to_have_value("15000")
    expect(page).to_have_url(re.compile(re.escape(PRESETS["seed-first"].to_code()) + r".*budget=15000"))


def test_quick_run_is_one_click_away_and_trains_where_the_eye_is(server, watched_context):
    """At 1024x768, without scrolling: Quick run is on screen, and after one click its run's heading, progress
    and live chart appear on screen too (they sat below some fifteen recipe fields)."""
    page = watched_context(*PROJECTOR).new_page()
    page.goto(f"{server.url}/train")
    quick = page.get_by_role("button", name="Quick run")
    expect(quick).to_be_visible()
    assert inside(quick.bounding_box(), PROJECTOR[1]), quick.bounding_box()
    quick.click()
    heading = page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · running"))
    expect(heading).to_be_visible(timeout=120_000)
    progress = page.get_by_text(re.compile(r"^Epoch 1/1, batch \d+/\d+"))
    expect(progress).to_be_visible(timeout=120_000)
    page.wait_for_function("() => { const p = document.querySelector('.js-plotly-plot');"
                           " return p && p.data && p.data[0].x.length > 0; }", timeout=60_000)
    run_id = int(re.search(r"Run (\d+)", heading.inner_text())[1])
    assert scrolled(page) == 0
    for name, element in (("heading", heading), ("progress", progress)):
        assert inside(element.bounding_box(), PROJECTOR[1]), f"the {name} is out of view: {element.bounding_box()}"
    newest = page.evaluate("""() => {  // the train accuracy's newest point, in page pixels
        const plot = document.querySelector('.js-plotly-plot'), trace = plot.data[0], y = plot._fullLayout.yaxis;
        return plot.getBoundingClientRect().top + y._offset + y.l2p(trace.y[trace.y.length - 1]); }""")
    assert 0 <= newest <= PROJECTOR[1], f"the live chart's newest point is at y={newest}, off screen"
    no_exception_box(page)
    screenshot(page, "train-1024x768")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("heading", name=f"Run {run_id}: seed-final · stopped")).to_be_visible(timeout=60_000)


def test_a_finished_runs_outcome_is_on_screen_above_its_chart(server, trained_run, watched_context):
    """At 1024x768 a completed run's final test accuracy and its Predict link show without scrolling: the
    chart below them may run off the screen, the answer a class waits for may not."""
    page = watched_context(*PROJECTOR).new_page()
    page.goto(f"{server.url}/train?run={trained_run.id}")
    expect(page.get_by_role("heading", name=re.compile(rf"Run {trained_run.id}: .* · completed"))).to_be_visible()
    accuracy = page.locator('[data-testid="stMetric"]').filter(has_text="Final test accuracy").first
    predict_link = page.get_by_text(f"Try run {trained_run.id}'s model on the Predict page")
    for name, element in (("final test accuracy", accuracy), ("Predict link", predict_link)):
        expect(element).to_be_visible()
        assert inside(element.bounding_box(), PROJECTOR[1]), f"the {name} is out of view: {element.bounding_box()}"
    assert metric_value(page, "Final test accuracy") == accuracy_text(trained_run.test_accuracy)
    no_exception_box(page)
    screenshot(page, "train-1024x768-completed")

