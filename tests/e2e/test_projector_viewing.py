"""The demo on a 1024x768 projector with the sidebar open, and offline: what a class must see without
scrolling or hovering, words where the eye is, no request to an outside host, a quiet server log."""

import re
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from mnist_core.budget import summarize
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from mnist_core.study import variants
from tests.browser import SCREENSHOTS, Server, draw, settled_box

pytestmark = pytest.mark.e2e

WIDTH, HEIGHT = 1024, 768
SCROLLBAR = 15  # the strip the main area's scrollbar may take on the right
ONE = [[(150, 40), (146, 120), (142, 240)]]  # canvas pixels: a "1" drawn with the mouse
PAGES = ["", "architecture", "train", "predict", "runs", "studies", "handwriting"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def projector(watched_context):
    """A page the size of the projector; the test fails on any exception box it shows."""
    return watched_context(WIDTH, HEIGHT).new_page()


def screenshot_path(name: str) -> Path:
    """Where a screenshot of the viewport goes: the main area scrolls inside the page, so a full-page
    screenshot would show no more than the screen."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def assert_on_screen(box: dict, what: str) -> None:
    """The box lies wholly inside the 1024x768 viewport, as it is now (no scrolling)."""
    assert box is not None, f"{what} is not rendered"
    assert box["x"] >= 0 and box["x"] + box["width"] <= WIDTH - SCROLLBAR, f"{what} runs off the side: {box}"
    assert box["y"] >= 0 and box["y"] + box["height"] <= HEIGHT, f"{what} runs below the screen: {box}"


def scroll_to_top(page) -> None:
    """Undo any scrolling (drawing scrolls the canvas into view when it is not): the screen as first shown."""
    page.evaluate("() => { window.scrollTo(0, 0);"
                  " document.querySelectorAll('*').forEach((element) => { element.scrollTop = 0; }); }")


def scroll_into_view(page, locator) -> None:
    """Scroll to an element the page may draw again meanwhile: choosing a run reruns the page, and an element
    swapped out during the scroll fails it ('not attached to the DOM'), so the fresh one is scrolled to."""
    for _ in range(5):
        try:
            locator.scroll_into_view_if_needed(timeout=10_000)
            return
        except PlaywrightError:
            page.wait_for_timeout(500)
    locator.scroll_into_view_if_needed()


SCRIBBLE = [[(40, 40), (240, 60), (40, 90), (240, 120), (40, 150), (240, 180), (40, 210), (240, 240)],
            [(60, 240), (80, 40), (120, 240), (160, 40), (200, 240), (230, 40)]]  # a zig-zag crossed out


def test_a_scribbles_warning_is_on_screen_beside_its_answer(server, watched_context):
    """A scribble's "does not look like a digit" sat below the bars, off a 768 px screen: only the guess showed."""
    page = projector(watched_context)
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    draw(page, SCRIBBLE)
    warning = page.locator('[data-testid="stAlert"]').filter(has_text="does not look like a digit")
    expect(warning).to_be_visible()
    scroll_to_top(page)
    assert_on_screen(warning.bounding_box(), "the scribble's warning")
    assert_on_screen(page.locator('[data-testid="stMetric"]').filter(has_text="Best guess").bounding_box(),
                     "the best guess")
    page.screenshot(path=screenshot_path("predict-1024x768-scribble"))


def test_predict_shows_canvas_buttons_answer_and_bars_on_one_screen(server, watched_context):
    """After a drawn 1, the canvas, Undo and Clear, the answer and all ten probability bars are on screen
    together at 1024x768 with the sidebar open (the bars used to start near the bottom edge); below, every
    conv layer's feature maps are big enough to read."""
    page = projector(watched_context)
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]')).to_be_visible()
    draw(page, ONE)
    answer = page.locator('[data-testid="stMetric"]').filter(has_text=re.compile("Prediction|Best guess"))
    expect(answer.locator('[data-testid="stMetricValue"]')).to_have_text("1")
    bars = page.locator('[data-testid="stPlotlyChart"]').filter(has_text="probability")
    expect(bars.locator(".js-plotly-plot")).to_be_visible()
    scroll_to_top(page)
    assert_on_screen(page.locator("canvas.upper-canvas").first.bounding_box(), "the canvas")
    for name in ("Undo", "Clear"):
        assert_on_screen(page.get_by_role("button", name=name).bounding_box(), f"the {name} button")
    assert_on_screen(answer.bounding_box(), "the answer")
    assert_on_screen(bars.bounding_box(), "the probability chart")
    assert_on_screen(bars.locator(".js-plotly-plot .barlayer").bounding_box(), "the bars themselves")
    page.screenshot(path=str(screenshot_path("predict-1024x768-answer")))
    # Every conv's maps, 8 a row, each at least 48 px, unscaled (conv 7's 4x4 maps were a 117 px strip).
    page.get_by_text("Feature maps of every conv layer").click()
    maps = page.locator('[data-testid="stExpander"] [data-testid="stImage"] img')
    expect(maps).to_have_count(8)
    expect(page.get_by_text("conv 7: 10 channels of 4x4")).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stExpander\"] img')]"
                           ".every((image) => image.complete && image.naturalWidth > 0)")
    sizes = maps.evaluate_all("(images) => images.map((image) => [image.naturalWidth, image.clientWidth])")
    assert all(shown >= 8 * 48 and abs(shown - natural) < 1 for natural, shown in sizes), sizes


def test_a_refused_upload_is_said_beside_the_uploader_on_screen(server, watched_context, tmp_path):
    """A text file named .png and a 12 MB file: each gets its sentence in the answer's place, on screen, and
    the page no longer says 'Upload or take a photo'. The 12 MB file used to stop at the uploader's own
    limit, which shows a red mark whose reason only a hover reveals."""
    page = projector(watched_context)
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    page.get_by_role("radio", name="Photo").or_(page.get_by_role("button", name="Photo")).first.click()
    invitation = page.get_by_text("Upload or take a photo of one digit to see what the model thinks.")
    expect(invitation).to_be_visible()
    expect(page.locator('[data-testid="stCameraInput"]')).to_have_count(0)  # no camera prompt on opening the tab
    not_an_image = tmp_path / "digit.png"
    not_an_image.write_text("a shopping list, not a photo")
    too_big = tmp_path / "huge.png"
    too_big.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(12_000_000))
    uploader = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    for photo, sentence in ((not_an_image, "This image cannot be read: This file is not a PNG or JPEG image."),
                            (too_big, "This image cannot be read: The file is 12.0 MB; photos up to 10 MB "
                                      "are accepted.")):
        uploader.set_input_files(str(photo))
        message = page.get_by_test_id("stAlertContentError").get_by_text(sentence)
        expect(message).to_be_visible()
        assert_on_screen(message.bounding_box(), f"the refusal of {photo.name}")
        expect(invitation).to_have_count(0)
    page.screenshot(path=str(screenshot_path("predict-1024x768-refused-upload")))


def test_a_too_big_sample_set_is_refused_in_words(server, watched_context, tmp_path):
    """A 6 MB .npz stopped at the uploader's own 5 MB limit: a red mark, and Import did nothing."""
    page = projector(watched_context)
    page.goto(f"{server.url}/handwriting")
    page.get_by_text("Export or import (.npz)").click()
    too_big = tmp_path / "tenk.npz"
    too_big.write_bytes(b"PK" + bytes(6 * 2**20))
    with page.expect_response(lambda response: "/_stcore/upload_file" in response.url, timeout=60_000):
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(too_big))
    expect(page.get_by_text("tenk.npz")).to_be_visible()
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_text(re.compile(r"^Not imported: The file is 6\.0 MB; at most 5 MB can be imported"))) \
        .to_be_visible()


def test_runs_buttons_are_whole_and_the_main_columns_show(server, watched_context, trained_run):
    """With a completed run chosen, no button's label is cut ('Download mod...'), and the table shows
    status, accuracy, params, budget, epochs, duration and recipe without scrolling sideways."""
    page = projector(watched_context)
    page.goto(f"{server.url}/runs")
    run_box = page.get_by_role("combobox", name="Run", exact=True)
    expect(page.get_by_role("button", name="Download spec JSON")).to_be_visible()  # the page has drawn
    choose(page, run_box, f"Run {trained_run.id}: seed-final (completed)")
    model_button = page.get_by_role("button", name="Download model (.keras)")
    expect(model_button).to_be_visible()
    scroll_into_view(page, model_button)
    cut = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMain"] button')]
        .filter((button) => button.innerText.trim())
        .filter((button) => [button, ...button.querySelectorAll("*")].some((e) => e.scrollWidth > e.clientWidth))
        .map((button) => button.innerText)""")
    labels = page.evaluate("""() => [...document.querySelectorAll('[data-testid="stMain"] button')]
        .map((button) => button.innerText.trim()).filter(Boolean)""")
    assert {"Download spec JSON", "Load architecture", "Download model (.keras)"} <= set(labels), labels
    assert not cut, f"labels cut short: {cut}"
    for name in ("Download spec JSON", "Load architecture", "Download model (.keras)", "Delete run"):
        box = settled_box(page.get_by_role("button", name=name))
        assert box["x"] + box["width"] <= WIDTH - SCROLLBAR, f"{name} runs off the side: {box}"
    page.screenshot(path=str(screenshot_path("runs-1024x768-buttons")))
    scroll_to_top(page)
    edges = column_right_edges(page)
    visible_width = page.evaluate("() => document.querySelector('[data-testid=\"stDataFrame\"] .dvn-scroller')"
                                  ".clientWidth")
    for header in ("status", "accuracy", "params", "budget", "epochs", "duration", "recipe"):
        assert edges.get(header, visible_width + 1) <= visible_width, \
            f"{header} is not wholly visible in the table's {visible_width} px: right edges {edges}"
    page.screenshot(path=str(screenshot_path("runs-1024x768")))


def choose(page, box, option: str) -> None:
    """Pick an option of a select box; a rerun that redraws the box may close its list, so open it again."""
    for attempt in range(3):
        box.click()
        try:
            page.get_by_role("option", name=option).click(timeout=10_000)
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    expect(box).to_have_value(option)


def column_right_edges(page) -> dict[str, int]:
    """Each column's right edge in the runs table, unscrolled, for the columns that show at all unscrolled.

    The grid is drawn on a canvas; its accessible header row lists only the columns that at least touch
    the visible part. Scrolling it right by s pixels drops the columns whose right edge is at or left of
    s, so a binary search finds each edge. A column that never leaves (pinned) gets the full width.
    """
    return page.evaluate("""async () => {
        const table = document.querySelector('[data-testid="stDataFrame"]');
        const scroller = table.querySelector(".dvn-scroller");
        const frame = () => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
        const headers = () => [...table.querySelectorAll('[role="columnheader"]')].map((h) => h.innerText.trim());
        const shownAt = async (left) => { scroller.scrollLeft = left; await frame(); await frame(); return headers(); };
        const edges = {};
        for (const name of await shownAt(0)) {
            let low = 0, high = scroller.scrollWidth;  // shown at low, gone at high
            while (high - low > 1) {
                const middle = Math.floor((low + high) / 2);
                if ((await shownAt(middle)).includes(name)) low = middle; else high = middle;
            }
            edges[name] = high;
        }
        await shownAt(0);
        return edges;
    }""")


@pytest.fixture(scope="module")
def quiet_server():
    """A server of its own, so that its log holds only what these tests did; with a finished study."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "lab"
        store = RunStore(home)
        arch = PRESETS["seed-final"]
        study_id = store.create_study("Ablation of seed-final", arch, {"epochs": 2, "seed": 0}, [0])
        for number, variant in enumerate(variants(arch)):
            counts = summarize(variant.arch)
            run_id = store.create_run(variant.label, variant.arch, {"epochs": 2, "seed": 0}, counts.total,
                                      counts.trainable, study_id=study_id, variant=variant.key)
            store.claim_next(0)
            store.finish(run_id, "completed", test_accuracy=0.975 + 0.002 * (number % 5 - 2))
        server = Server(home).start()
        try:
            yield server
        finally:
            server.stop()


def test_no_page_asks_an_outside_host_for_anything(quiet_server, watched_context):
    """The classroom may be offline: every request of every page, the tab's icon included, goes to this
    server (the icon came from fonts.gstatic.com)."""
    page = projector(watched_context)
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    for name in PAGES:
        page.goto(f"{quiet_server.url}/{name}")
        expect(page.locator('[data-testid="stSidebarNav"]')).to_be_visible()
        expect(page.locator('[data-testid="stMain"] h1')).to_be_visible()
        # The page config sets the tab's icon once the script has run: wait for it, then for its request.
        page.wait_for_function("() => { const icon = document.querySelector(\"link[rel='shortcut icon']\");"
                               " return icon && !icon.href.endsWith('/favicon.png'); }")
        page.wait_for_load_state("networkidle")
    outside = [url for url in requested
               if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).hostname not in LOCAL_HOSTS]
    assert requested and not outside, f"requests to outside hosts: {sorted(set(outside))}"


def test_studies_at_projector_size_names_each_dot(quiet_server, watched_context):
    page = projector(watched_context)
    page.goto(f"{quiet_server.url}/studies")
    chart = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
    expect(chart).to_be_visible()
    expect(chart.locator(".textpoint").filter(has_text="−BN 2")).to_have_count(1)
    expect(chart.locator(".textpoint").filter(has_text="baseline")).to_have_count(1)
    scroll_into_view(page, chart)
    page.screenshot(path=str(screenshot_path("studies-1024x768")))


def test_loading_predict_twice_leaves_no_component_warning_in_the_log(quiet_server, watched_context):
    """The canvas used to be declared a second time over the package's own definition, and the server
    logged 'Component ... is already registered. Overwriting previous definition'."""
    page = projector(watched_context)
    for _ in range(2):
        page.goto(f"{quiet_server.url}/predict")
        expect(page.locator("canvas.upper-canvas").first).to_be_visible()
        draw(page, ONE)
    log = Path(quiet_server.log.name).read_text()
    assert "already registered" not in log, log[-2000:]
