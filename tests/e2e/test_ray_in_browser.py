"""The app with MNIST_LAB_EXECUTOR=ray in Chromium: the Train page trains on a real local Ray cluster,
with the live chart and Stop, and says where the run trains."""

import re

from playwright.sync_api import expect

from tests.browser import Server, no_exception_box, screenshot
from tests.e2e.test_app_in_browser import plotted, wait_for_points


def test_the_train_page_trains_on_ray_with_a_live_chart_and_stop(on_ray, tmp_path, watched_context):
    server = Server(tmp_path / "lab").start()  # started with this test's Ray settings in its environment
    try:
        page = watched_context(1024, 768).new_page()
        page.goto(f"{server.url}/train")
        page.get_by_role("radio", name=re.compile("^Quick run")).click()
        page.get_by_role("button", name="Start training").click()
        expect(page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · running"))).to_be_visible(
            timeout=180_000)
        address = re.escape(on_ray["RAY_ADDRESS"])
        expect(page.get_by_text(re.compile(rf"Runs train on the Ray cluster at {address} \(1 node, 2 CPUs\): "
                                           r"up to 2 at once\."))).to_be_visible()
        wait_for_points(page, 0, 0, timeout=180_000)
        wait_for_points(page, 0, plotted(page, 0), timeout=60_000)  # live: the curve grows while the page is open
        screenshot(page, "train-on-ray")
        page.get_by_role("button", name="Stop").click()
        expect(page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · stopped"))).to_be_visible(
            timeout=60_000)
        expect(page.get_by_text(re.compile(r"was stopped"))).to_be_visible()
        no_exception_box(page)
    finally:
        server.stop()
