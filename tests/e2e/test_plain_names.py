"""A name a student typed is shown to every visitor as plain text: never a link, an image or markup."""

import pytest
from playwright.sync_api import expect

from mnist_core.budget import summarize
from mnist_core.catalogue import bundled_model
from mnist_core.events import Event
from mnist_core.runs import RunStore
from tests.browser import Server
from tests.models import copy_model

pytestmark = pytest.mark.e2e

EVIL = "http://127.0.0.1:9"  # nothing listens there: a rendered link or image would point at it
NAME = f"![]({EVIL}/a.png)[Log in again]({EVIL}/l) :red[x] <b>bold</b>"


def test_a_markdown_run_name_shows_literally_on_every_page(tmp_path, watched_context):
    """A run named with a markdown image, a fake log-in link, a colour directive and HTML: Home, Train, Runs and
    Predict show those characters as typed, and no page has an image or a link pointing where the name says."""
    store = RunStore(tmp_path / "lab")
    bundled = bundled_model()
    counts = summarize(bundled.spec)
    run_id = store.create_run(NAME, bundled.spec, {"epochs": 1}, counts.total, counts.trainable)
    store.claim_next(worker_pid=0)
    store.add_event(run_id, 0, Event("epoch", 1, 10, 10, 0.003, 0.1, 0.97, 0.05, 0.9991, 5.0, 0.0))
    copy_model(bundled.path, store.model_path(run_id))
    store.finish(run_id, "completed", test_accuracy=0.9991, test_loss=0.05)

    server = Server(tmp_path / "lab").start()
    try:
        page = watched_context(1024, 768).new_page()
        for path, shown in [("", "Best model so far"), (f"train?run={run_id}", f"Run {run_id}:"),
                            ("runs", "Runs"), (f"predict?model={run_id}", "Predict")]:
            page.goto(f"{server.url}/{path}")
            expect(page.get_by_text(shown).first).to_be_visible()
            page.wait_for_timeout(500)  # let the last elements of the script run arrive
            if path in ("", f"train?run={run_id}"):
                expect(page.get_by_text("[Log in again]").first).to_be_visible()
            assert page.locator(f"a[href^='{EVIL}'], img[src^='{EVIL}']").count() == 0, path
            assert page.locator("[data-testid='stMain'] b:text-is('bold')").count() == 0, path
    finally:
        server.stop()
