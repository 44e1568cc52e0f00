"""Browser-test helpers: a real `streamlit run app.py` on localhost, Debian's Chromium through Playwright."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Without these, Chromium keeps trying to reach Google's hosts, which this machine's closed network refuses.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))
EXIT_GRACE = 60  # seconds; loaded by a parallel test process, one exit took over 30 (CI)
LOAD_TIMEOUT_MS = 60_000  # the first Predict page load imports TensorFlow in the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """One Streamlit server process with its own run store."""

    def __init__(self, home: Path):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> Server:
        env = dict(os.environ, MNIST_LAB_HOME=str(self.home), PYTHONUNBUFFERED="1")
        self.log = open(self.home.parent / f"streamlit-{self.port}.log", "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("streamlit did not become healthy within 60 s")

    def workers(self) -> list[psutil.Process]:
        """Worker processes this server started (alive or zombie)."""
        try:
            return [child for child in psutil.Process(self.process.pid).children(recursive=True)
                    if "mnist_core.worker" in " ".join(child.cmdline())]
        except psutil.Error:
            return []

    def stop(self) -> None:
        """SIGTERM, as a terminal's Ctrl-C or a service manager stops it. A server still alive after
        EXIT_GRACE seconds is killed after a warning that holds its Python stacks (py-spy), so the test's own
        checks still run and a slow exit is seen, not hidden."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(EXIT_GRACE)
            except subprocess.TimeoutExpired:
                stacks = subprocess.run([str(Path(sys.executable).with_name("py-spy")), "dump", "--pid",
                                         str(self.process.pid)], capture_output=True, text=True)
                warnings.warn(f"streamlit took over {EXIT_GRACE} s to exit on SIGTERM; its stacks:\n"
                              f"{stacks.stdout}{stacks.stderr}")
                self.process.kill()
                self.process.wait()
        self.log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


EXCEPTION_BOX = "[data-testid='stException']"  # Streamlit's red box for an uncaught exception
# Reports every exception box the moment it appears, on any page the context opens.
_EXCEPTION_OBSERVER = """
(() => {
  const reported = new WeakSet();
  const scan = () => document.querySelectorAll("EXCEPTION_BOX").forEach((box) => {
    if (!reported.has(box)) { reported.add(box); window.reportStreamlitException(box.innerText); }
  });
  new MutationObserver(scan).observe(document, {childList: true, subtree: true});
})();
""".replace("EXCEPTION_BOX", EXCEPTION_BOX)


class ExceptionWatch:
    """Collects the exception boxes shown in a browser context, at any step of a test."""

    def __init__(self, context):
        self.context = context
        self.seen: list[str] = []
        context.expose_binding("reportStreamlitException",
                               lambda source, text: self.seen.append(f"{source['page'].url}: {text}"))
        context.add_init_script(_EXCEPTION_OBSERVER)

    def check(self) -> None:
        """Fail on any box seen at any step, and on any box still on an open page now."""
        for page in self.context.pages:
            self.seen += [f"{page.url}: {text}" for text in page.locator(EXCEPTION_BOX).all_inner_texts()]
        assert not self.seen, f"the app showed an exception: {self.seen}"


def settled_box(locator, timeout: float = 10.0) -> dict:
    """The element's bounding box once it has one: a rerun that redraws the page detaches the element for a
    moment, and Playwright then gives None rather than waiting."""
    deadline = time.monotonic() + timeout
    while (box := locator.bounding_box(timeout=timeout * 1000)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert box is not None, f"{locator} has no box on the page"
    return box


def no_exception_box(page) -> None:
    """Fail now if the page shows Streamlit's exception box (the context's watch also fails at the end)."""
    from playwright.sync_api import expect

    expect(page.locator(EXCEPTION_BOX)).to_have_count(0)


@pytest.fixture
def watched_context(browser):
    """A function that opens a browser context of a given size; each fails the test on any exception box."""
    from playwright.sync_api import expect

    expect.set_options(timeout=LOAD_TIMEOUT_MS)
    opened = []

    def open_context(width: int = 1400, height: int = 1000):
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(LOAD_TIMEOUT_MS)
        opened.append((context, ExceptionWatch(context)))
        return context

    yield open_context
    try:
        for _, watch in opened:
            watch.check()
    finally:
        for context, _ in opened:
            context.close()


@pytest.fixture
def page(watched_context):
    """A 1400x1000 page whose test fails if the app shows an exception at any step."""
    return watched_context().new_page()


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def metric_value(page, label: str) -> str:
    """The value shown by the st.metric with this label."""
    metric = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def draw(page, strokes) -> None:
    """Drag the mouse along each stroke (canvas pixel points) on the Predict page's canvas.

    Under load the canvas script may still be wiring up its mouse handlers when the page shows, so
    if the first stroke left no mark (the page's Undo stays disabled) the drawing is started again.
    """
    from playwright.sync_api import expect

    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    canvas.scroll_into_view_if_needed()
    undo = page.get_by_role("button", name="Undo")
    for attempt in range(5):
        _drag(page, canvas.bounding_box(), strokes[0])
        try:
            expect(undo).to_be_enabled(timeout=10_000)
            break
        except AssertionError:
            if attempt == 4:
                raise
    for stroke in strokes[1:]:
        _drag(page, canvas.bounding_box(), stroke)


def _drag(page, box, stroke, step=6.0) -> None:
    """Mouse moves a few pixels apart, as a real drag produces."""
    points = [stroke[0]]
    for (x0, y0), (x1, y1) in zip(stroke, stroke[1:]):
        count = max(1, int(((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 / step))
        points += [(x0 + (x1 - x0) * i / count, y0 + (y1 - y0) * i / count) for i in range(1, count + 1)]
    page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x, box["y"] + y)
    page.mouse.up()
