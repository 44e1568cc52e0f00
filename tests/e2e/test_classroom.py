"""A class in real browsers: two students and a teacher on one server started with a teacher passcode."""

import re

import pytest
from playwright.sync_api import expect

from mnist_core.budget import summarize
from mnist_core.classroom import NotAllowed
from mnist_core.jobs import Lab
from mnist_core.recipe import QUICK_RUN, Recipe
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.browser import Server, no_exception_box, screenshot
from tests.conftest import wait_for

PASSCODE = "owl-42"
FINAL = PRESETS["seed-final"]
MARKDOWN_NAME = "**Ann** ![x](http://h/a.png)"  # 28 characters: a name holds 30


def token(context) -> str:
    return next(cookie["value"] for cookie in context.cookies() if cookie["name"] == "mnist_lab_student")


def sidebar_name(page) -> str:
    return page.locator("[data-testid='stSidebar'] [data-testid='stText']").first.inner_text()


def test_two_students_and_a_teacher_share_one_server(lab_home, watched_context, monkeypatch):
    monkeypatch.setenv("MNIST_LAB_TEACHER_PASSCODE", PASSCODE)
    lab_home.mkdir(parents=True)
    store = RunStore(lab_home)
    counts = summarize(FINAL)
    # Left queued by a server that stopped: it must start with only the Home page open.
    left = store.create_run(FINAL.name, FINAL, Recipe(epochs=50, train_subset=2048).to_dict(), counts.total,
                            counts.trainable)
    server = Server(lab_home).start()
    try:
        ann_browser = watched_context(1024, 768)
        ann = ann_browser.new_page()
        ann.goto(server.url)
        wait_for(lambda: store.get(left).status == "running", timeout=180)
        store.request_stop(left)

        # Ann keeps her name across a reload and a new tab; Ben's browser is someone else.
        expect(ann.locator("[data-testid='stSidebar']").get_by_text("You are")).to_be_visible()
        name = sidebar_name(ann)
        wait_for(lambda: any(cookie["name"] == "mnist_lab_student" for cookie in ann_browser.cookies()), timeout=30)
        ann_token = token(ann_browser)
        ann.reload()
        expect(ann.locator("[data-testid='stSidebar'] [data-testid='stText']").first).to_have_text(name)
        second_tab = ann_browser.new_page()
        second_tab.goto(f"{server.url}/runs")
        expect(second_tab.locator("[data-testid='stSidebar'] [data-testid='stText']").first).to_have_text(name)
        second_tab.close()
        assert list(store.roster.names()) == [ann_token]

        ann.get_by_role("button", name="Change my name").click()
        ann.get_by_label("Your name in this class").fill(MARKDOWN_NAME)
        ann.get_by_role("button", name="Use this name").click()
        expect(ann.locator("[data-testid='stSidebar'] [data-testid='stText']").first).to_have_text(MARKDOWN_NAME)

        # Ten fast Starts make one run.
        ann.goto(f"{server.url}/train")
        start = ann.get_by_role("button", name="Start training")
        expect(start).to_be_visible()
        for _ in range(10):
            start.click(no_wait_after=True)
        wait_for(lambda: [run.owner for run in store.list()].count(ann_token) == 1, timeout=60)
        ann.wait_for_timeout(3000)  # any late click would have queued by now
        (ann_run,) = [run.id for run in store.list() if run.owner == ann_token]
        assert [run.owner for run in store.list()].count(ann_token) == 1
        expect(ann.get_by_role("heading", name=re.compile(rf"Run {ann_run}: seed-final · yours"))).to_be_visible()
        no_exception_box(ann)

        # Ben sees Ann's run by her name, as typed, and cannot stop or delete it; the core refuses him too.
        ben_browser = watched_context(1400, 1000)
        ben = ben_browser.new_page()
        ben.goto(f"{server.url}/train")
        # A classmate's run is listed below, never in front: Ben has not trained anything yet.
        expect(ben.get_by_text("No training yet.")).to_be_visible()
        expect(ben.get_by_text(f"Run {ann_run}: seed-final by {MARKDOWN_NAME} · running")).to_be_visible()
        expect(ben.locator("img[src*='//h/']")).to_have_count(0)
        expect(ben.get_by_role("button", name="Stop")).to_have_count(0)
        ben.goto(f"{server.url}/runs")
        expect(ben.get_by_role("heading", name="One run")).to_be_visible()
        expect(ben.get_by_role("button", name="Stop")).to_have_count(0)
        expect(ben.get_by_role("button", name="Delete run")).to_have_count(0)
        wait_for(lambda: any(cookie["name"] == "mnist_lab_student" for cookie in ben_browser.cookies()), timeout=30)
        lab = Lab(lab_home)
        with pytest.raises(NotAllowed):
            lab.stop(ann_run, lab.visitor(token(ben_browser)))
        assert store.get(ann_run).stop_requested == 0

        # The teacher unlocks, sees the board at 1024x768, ranks the class and stops Ann's run.
        for owner, accuracy, seed in ((ann_token, 0.985, 11), (token(ben_browser), 0.991, 12)):
            done = store.create_run(FINAL.name, FINAL, {**QUICK_RUN.to_dict(), "seed": seed}, counts.total,
                                    counts.trainable, owner=owner)
            store.finish(done, "completed", test_accuracy=accuracy)
        teacher_browser = watched_context(1024, 768)
        teacher = teacher_browser.new_page()
        teacher.goto(f"{server.url}/board")
        teacher.get_by_role("button", name="Teacher").click()
        teacher.get_by_label("Teacher passcode").fill(PASSCODE)
        teacher.get_by_role("button", name="Unlock").click()
        expect(teacher.get_by_role("button", name="Pause the queue")).to_be_visible()
        expect(teacher.get_by_text(re.compile(r"\(teacher\)$"))).to_be_visible()
        expect(teacher.get_by_role("heading", name="Best under 15,000 total params")).to_be_visible()
        expect(teacher.get_by_text(f"{MARKDOWN_NAME}: run {ann_run}")).to_be_visible()
        screenshot(teacher, "class-board-1024x768")
        teacher.get_by_role("button", name="Stop").first.click()
        wait_for(lambda: store.get(ann_run).finished, timeout=120)
        no_exception_box(teacher)
    finally:
        server.stop()
