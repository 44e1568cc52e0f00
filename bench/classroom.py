"""A class against `streamlit run app.py` on this machine: students over the app's own websocket, a few in Chromium.

    python -m bench.classroom --students 30 --browsers 3 --out bench/results/classroom.json
    python -m bench.classroom --students 30 --trainers 6      # only 6 of them press Quick run (a shorter run)
    python -m bench.classroom --executor ray                  # the runs train on a Ray instance on this machine

The server is started here in a class (a teacher passcode set), with its own run store. Each websocket
student is a real Streamlit session, speaking the protocol the browser speaks (BackMsg / ForwardMsg): it joins
on Home (gets a name), opens Architecture and flips a BatchNorm toggle three times (each rerun's latency
counted), opens Train and presses Quick run (if a trainer), then watches the live chart by sending the
fragment's reruns at the interval the page asks for, as a browser does, until its run ends. Each Chromium
student joins, draws digits on Predict while the others train (time from the stroke to the answer), and
presses Quick run too.
Reported: seconds from the first Start to the last run completed, toggle and predict latency p50/p95 under
that load, server memory per session, exception boxes seen (target 0), runs lost or duplicated (target 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import urllib.request
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

from mnist_core import config
from mnist_core.runs import RunStore

PASSCODE = "bench-class"


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


class Student:
    """One Streamlit session over the websocket, as a browser tab without JavaScript."""

    def __init__(self, url: str):
        self.url = url.replace("http", "ws") + "/_stcore/stream"
        self.pages: dict[str, str] = {}  # url path -> page script hash
        self.page = ""
        self.query = ""
        self.widgets: dict[str, tuple[str, object]] = {}  # label -> (id, value) of the last run's widgets
        self.fragment: str | None = None
        self.rerun_every = 1.0  # seconds between the fragment's reruns, as the page last asked
        self.exceptions: list[str] = []

    async def __aenter__(self) -> Student:
        self.socket = await websockets.connect(self.url, subprotocols=["streamlit"], max_size=2**26)
        return self

    async def __aexit__(self, *_) -> None:
        await self.socket.close()

    async def rerun(self, page: str | None = None, states: tuple[WidgetState, ...] = (), fragment: bool = False) -> float:
        """One script run (a page open, a widget change, or the fragment's auto-rerun); its seconds."""
        message = BackMsg()
        state = message.rerun_script
        state.query_string = self.query
        if page is not None:
            self.page = self.pages.get(page, "")
        state.page_script_hash = self.page
        state.widget_states.widgets.extend(states)
        if fragment and self.fragment:
            state.fragment_id, state.is_auto_rerun = self.fragment, True
        started = time.perf_counter()
        await self.socket.send(message.SerializeToString())
        while True:
            reply = ForwardMsg()
            reply.ParseFromString(await self.socket.recv())
            kind = reply.WhichOneof("type")
            if kind == "new_session":
                if not fragment:
                    self.widgets = {}
            elif kind == "navigation":  # st.navigation's pages: their paths and script hashes
                self.pages = {app.url_pathname: app.page_script_hash for app in reply.navigation.app_pages}
                self.page = reply.navigation.page_script_hash or self.page
            elif kind == "page_info_changed":
                self.query = reply.page_info_changed.query_string
            elif kind == "auto_rerun":
                self.fragment = reply.auto_rerun.fragment_id
                self.rerun_every = reply.auto_rerun.interval or self.rerun_every
            elif kind == "delta" and reply.delta.WhichOneof("type") == "new_element":
                self._note(reply.delta.new_element)
            elif kind == "script_finished" and reply.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return time.perf_counter() - started

    def _note(self, element) -> None:
        kind = element.WhichOneof("type")
        if kind == "exception":
            self.exceptions.append(element.exception.message)
        elif kind == "checkbox":
            self.widgets[element.checkbox.label] = (element.checkbox.id, element.checkbox.value)
        elif kind == "button":
            self.widgets[element.button.label] = (element.button.id, None)

    async def toggle(self, label: str) -> float:
        widget_id, value = self.widgets[label]
        state = WidgetState(id=widget_id, bool_value=not value)
        return await self.rerun(states=(state,))

    async def press(self, label: str) -> float:
        return await self.rerun(states=(WidgetState(id=self.widgets[label][0], trigger_value=True),))


async def websocket_student(url: str, trains: bool, store: RunStore, results: dict, start_gate: asyncio.Event) -> None:
    """Join and open Train; when the class starts, press Quick run (a trainer), then until every run has ended:
    flip a BatchNorm toggle on Architecture (its latency counted, under the trainings' load) and watch Train's
    live chart for 10 of the fragment's reruns, at the interval the page asks for."""
    async with Student(url) as student:
        await student.rerun("")
        await student.rerun("train")
        await start_gate.wait()
        if trains:
            await student.press("Quick run")
        while any(not run.finished for run in store.list()) or not store.list():
            await student.rerun("architecture")
            toggle = next(label for label in student.widgets if label.startswith("batchnorm of"))
            results["toggle_s"].append(await student.toggle(toggle))
            await student.rerun("train")
            for _ in range(10):
                await asyncio.sleep(student.rerun_every)
                await student.rerun(fragment=True)
        results["exceptions"] += student.exceptions


def browser_students(url: str, count: int, trains: bool, results: dict, started: threading.Event,
                     stop: threading.Event) -> None:
    """`count` Chromium students: join, press Quick run, then draw digits on Predict until the class is done."""
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, EXCEPTION_BOX, draw

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = [browser.new_context(viewport={"width": 1024, "height": 768}).new_page() for _ in range(count)]
        for page in pages:
            page.goto(f"{url}/train")
            expect(page.get_by_role("button", name="Quick run")).to_be_visible(timeout=120_000)
        started.wait()
        for page in pages:
            if trains:
                page.get_by_role("button", name="Quick run").click()
            page.goto(f"{url}/predict")
        answer = '[data-testid="stMetric"]'
        while not stop.is_set():
            for page in pages:
                expect(page.get_by_text("Draw a digit on the black square")).to_be_visible(timeout=120_000)
                draw(page, [[(140, 40), (140, 240)]])
                began = time.perf_counter()  # from the end of the stroke: what a student waits for
                expect(page.locator(answer).filter(has_text="Prediction")).to_be_visible(timeout=60_000)
                results["predict_s"].append(time.perf_counter() - began)
                page.get_by_role("button", name="Clear").click()
                expect(page.locator(answer).filter(has_text="Prediction")).to_have_count(0, timeout=60_000)
        for page in pages:
            results["exceptions"] += page.locator(EXCEPTION_BOX).all_inner_texts()
        browser.close()


def start_server(home: Path, port: int, executor: str) -> psutil.Popen:
    """`streamlit run app.py` in a class, on `port`, training on `executor`, with its run store in `home`;
    its log in home/server.log."""
    env = dict(os.environ, MNIST_LAB_HOME=str(home), MNIST_LAB_TEACHER_PASSCODE=PASSCODE, PYTHONUNBUFFERED="1",
               **{config.EXECUTOR_ENV: executor})
    with open(home / "server.log", "ab") as log:
        server = psutil.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                               "--server.headless", "true"], cwd=Path(__file__).resolve().parent.parent, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return server
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("the server did not start")


async def warm_up(url: str) -> None:
    """One session opens the pages first, so the server's memory per session leaves out its imports."""
    async with Student(url) as student:
        for page in ("", "architecture", "train", "predict"):
            await student.rerun(page)


async def websocket_class(url, trainers, students, store, results, gate_time, server) -> None:
    """The websocket students, all joined before `gate_time`, pressing Quick run together at it."""
    gate = asyncio.Event()
    tasks = [asyncio.create_task(websocket_student(url, index < trainers, store, results, gate))
             for index in range(students)]
    while time.time() < gate_time:
        await asyncio.sleep(0.1)
    results["joined_rss"] = server.memory_info().rss  # every session open, before any training
    gate.set()
    await asyncio.gather(*tasks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30, help="all students, Chromium ones included")
    parser.add_argument("--browsers", type=int, default=3, help="of them, real Chromium sessions")
    parser.add_argument("--trainers", type=int, default=None, help="how many press Quick run (default: all)")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="ray: the server's dispatcher starts a Ray instance of its own on this machine")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from tests.browser import free_port

    trainers = args.students if args.trainers is None else args.trainers
    home = Path(tempfile.mkdtemp(prefix="bench-classroom-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(home, port, args.executor)
    store = RunStore(home)
    results = {"toggle_s": [], "predict_s": [], "exceptions": []}
    try:
        asyncio.run(warm_up(url))
        idle_rss = server.memory_info().rss
        browsers_ready, class_done = threading.Event(), threading.Event()
        browser_thread = threading.Thread(target=browser_students, args=(
            url, args.browsers, trainers >= args.students, results, browsers_ready, class_done))
        browser_thread.start()
        gate_time = time.time() + 60  # every session has joined and opened Train by then
        threading.Timer(max(0.0, gate_time - time.time()), browsers_ready.set).start()
        websockets_count = args.students - args.browsers
        asyncio.run(websocket_class(url, min(trainers, websockets_count), websockets_count, store, results,
                                    gate_time, server))
        # The Chromium students' runs, if any, finish too.
        while any(not run.finished for run in store.list()):
            time.sleep(1)
        class_done.set()
        browser_thread.join()
        runs = store.list()
        results["end_rss"] = server.memory_info().rss
    finally:
        server.terminate()
        server.wait(30)
    owners = [run.owner for run in runs]
    report = {
        "executor": args.executor, "students": args.students, "browsers": args.browsers, "trainers": trainers,
        "cpus": os.cpu_count(),
        "runs": len(runs), "completed": sum(run.status == "completed" for run in runs),
        "duplicated": len(owners) - len(set(owners)),
        "lost": max(0, trainers - len(set(owners))),
        "last_done_after_first_start_s": round(max(run.finished_at for run in runs) -
                                               min(run.created_at for run in runs), 1) if runs else None,
        "mean_accuracy": round(statistics.mean(done), 4) if (done := [run.test_accuracy for run in runs
                                                                      if run.test_accuracy]) else None,
        "statuses": sorted({run.status for run in runs}), "errors": sorted({run.error for run in runs if run.error}),
        "toggle_p50_s": percentile(results["toggle_s"], 50), "toggle_p95_s": percentile(results["toggle_s"], 95),
        "predict_p50_s": percentile(results["predict_s"], 50),
        "predict_p95_s": percentile(results["predict_s"], 95), "predictions": len(results["predict_s"]),
        "server_mb_per_session": round((results["joined_rss"] - idle_rss) / 2**20 / args.students, 1),
        "server_mb": {"idle": round(idle_rss / 2**20), "joined": round(results["joined_rss"] / 2**20),
                      "end": round(results["end_rss"] / 2**20)},
        "exception_boxes": len(results["exceptions"]), "exceptions": results["exceptions"][:5],
    }
    print(json.dumps(report, indent=1))
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
