"""The app in Debian's Chromium: toggle and count, draw and predict, train live and stop."""

import math
import re

import pytest
from playwright.sync_api import expect

from tests.browser import draw, metric_value, screenshot

pytestmark = pytest.mark.e2e

STROKES = {
    # Canvas pixel paths (280x280) a person might draw with the mouse.
    1: [[(150, 40), (146, 120), (142, 240)]],
    0: [[(140 + 62 * math.sin(t / 20 * math.tau), 140 - 92 * math.cos(t / 20 * math.tau)) for t in range(22)]],
    7: [[(70, 50), (210, 50), (170, 130), (125, 240)]],
}


def test_home_shows_the_budget_and_best_model(server, page, trained_run):
    page.goto(server.url)
    expect(page.get_by_text("Best model so far")).to_be_visible()
    assert metric_value(page, "Current architecture") == "14,960"
    assert metric_value(page, "Best model so far") == f"{trained_run.test_accuracy:.2%}"
    screenshot(page, "home")


def test_batchnorm_toggle_changes_the_counter_exactly(server, page):
    """BatchNorm after conv 6: the counter goes 14,960 -> 15,024 and the verdict turns to over budget."""
    page.goto(f"{server.url}/architecture")
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()
    assert metric_value(page, "Total params") == "14,960"
    page.get_by_role("switch", name="batchnorm of layer 7").click(force=True)
    expect(page.get_by_text("Last change: BatchNorm after conv 6: +64 total / +32 trainable")).to_be_visible()
    assert metric_value(page, "Total params") == "15,024"
    assert metric_value(page, "Trainable params") == "14,832"
    expect(page.get_by_text("over the 15,000 budget by 24")).to_be_visible()
    expect(page).to_have_url(re.compile(r"arch=.*c3x16bd0\.1_c3x16d0\.1_c1x10l"))
    screenshot(page, "architecture")


@pytest.mark.parametrize("digit", [1, 0, 7])
def test_drawn_digit_is_recognised(server, page, trained_run, digit):
    """Mouse strokes on the canvas -> the model trained in setup on a slice of MNIST names the digit."""
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile(rf"^Run {trained_run.id}: "))
    draw(page, STROKES[digit])
    expect(page.get_by_text("What the model sees (28x28)")).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]').filter(has_text="Prediction")
           .locator('[data-testid="stMetricValue"]')).to_have_text(str(digit))
    if digit == 7:
        screenshot(page, "predict")


def plotted_points(page) -> int:
    return page.evaluate("() => { const p = document.querySelector('.js-plotly-plot');"
                         " return p && p.data ? p.data[0].x.length : 0; }")


def test_training_streams_a_live_chart_and_stops(server, page):
    page.goto(f"{server.url}/train")
    page.get_by_role("switch", name=re.compile("Quick run")).click(force=True)
    page.get_by_role("button", name="Start training").click()
    expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=120_000)
    first = plotted_points(page)
    page.wait_for_function(f"() => document.querySelector('.js-plotly-plot').data[0].x.length > {first}",
                           timeout=30_000)
    screenshot(page, "train")
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · stopped"))).to_be_visible(
        timeout=30_000)


def test_runs_page_lists_the_history(server, page, trained_run):
    page.goto(f"{server.url}/runs")
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
    expect(page.get_by_role("button", name="Download spec JSON")).to_be_visible()
    screenshot(page, "runs")
