"""A fresh server's first minute: a class opens the app at once, before any library is imported."""

import pytest
from playwright.sync_api import expect

from tests.browser import Server

pytestmark = pytest.mark.e2e

PAGES = ["architecture"]  # its budget bar is a Plotly figure: the first sessions build one at the same time


def test_ten_sessions_opening_a_just_started_server_at_once_see_no_exception(tmp_path, watched_context):
    """Ten tabs load pages of a server that has served nobody yet, all in the same moment: each page renders
    and neither a page nor the server's log shows an exception (Plotly's lazy pandas import once raised
    'partially initialized module' in the second session)."""
    server = Server(tmp_path / "lab")
    (tmp_path / "lab").mkdir()
    server.start()
    try:
        context = watched_context(1024, 768)
        pages = [context.new_page() for _ in range(10)]
        for number, page in enumerate(pages):
            page.goto(f"{server.url}/{PAGES[number % len(PAGES)]}", wait_until="commit")
        for page in pages:
            expect(page.locator("[data-testid='stMain']").get_by_role("heading").first).to_be_visible()
            expect(page.locator("[data-testid='stStatusWidget']")).to_have_count(0)  # the script run is over
    finally:
        server.stop()
    log = (tmp_path / f"streamlit-{server.port}.log").read_text()
    assert "Traceback" not in log and "Error" not in log, log
