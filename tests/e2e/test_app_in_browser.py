"""The app in Debian's Chromium: toggle and count, the whole train -> predict -> runs journey, stop,
the projector size, links and reloads. Any exception box at any step fails a test (tests/browser.py)."""

import math
import re
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from mnist_core.catalogue import bundled_model
from mnist_core.evidence import accuracy_text
from mnist_core.spec import PRESETS
from tests.browser import ExceptionWatch, Server, draw, metric_value, no_exception_box, screenshot

pytestmark = pytest.mark.e2e

STROKES = {
    # Canvas pixel paths (280x280) a person might draw with the mouse.
    1: [[(150, 40), (146, 120), (142, 240)]],
    0: [[(140 + 62 * math.sin(t / 20 * math.tau), 140 - 92 * math.cos(t / 20 * math.tau)) for t in range(22)]],
    7: [[(70, 50), (210, 50), (170, 130), (125, 240)]],
}
SMALL_SEVEN = [[(30, 30), (78, 30), (63, 58), (48, 95)]]  # 65 px tall: the brush is a third of its width
PREDICTION = '[data-testid="stMetric"]'


def predicted_digit(page):
    return page.locator(PREDICTION).filter(has_text=re.compile("Prediction|Best guess")) \
        .locator('[data-testid="stMetricValue"]')


def plotted(page, trace: int) -> int:
    """Points in one trace of the page's first Plotly chart (0: train accuracy, 1: test accuracy)."""
    return page.evaluate(f"() => {{ const p = document.querySelector('.js-plotly-plot');"
                         f" return p && p.data ? p.data[{trace}].x.length : 0; }}")


def open_recipe_fields(page) -> None:
    """Unfold the Train page's recipe fields (folded, so that the buttons and the live chart fit a projector)."""
    page.get_by_text("Recipe fields").click()
    expect(page.get_by_role("spinbutton", name="Epochs")).to_be_visible()


def wait_for_points(page, trace: int, more_than: int, timeout: float) -> None:
    """Wait until that trace has more points; the chart may be briefly absent while its fragment reruns."""
    page.wait_for_function(f"() => {{ const p = document.querySelector('.js-plotly-plot');"
                           f" return p && p.data && p.data[{trace}].x.length > {more_than}; }}", timeout=timeout)


def test_home_shows_the_budget_and_the_best_model(server, page, trained_run):
    """The quick run in setup (~96%) is weaker than the bundled model, so Home names the bundled one."""
    page.goto(server.url)
    expect(page.get_by_text("Best model so far")).to_be_visible()
    assert metric_value(page, "Current architecture") == "14,960"
    bundled = bundled_model()
    assert metric_value(page, f"Best model so far: Bundled {bundled.spec.name}") == accuracy_text(bundled.test_accuracy)
    screenshot(page, "home")


def test_batchnorm_toggle_changes_the_counter_exactly(server, page):
    """BatchNorm after conv 6: the counter goes 14,960 -> 15,024 and the verdict turns to over budget."""
    page.goto(f"{server.url}/architecture")
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()
    assert metric_value(page, "Total params") == "14,960"
    page.get_by_role("switch", name="batchnorm of conv 6").click(force=True)
    expect(page.get_by_text("Last change: BatchNorm after conv 6: +64 total / +32 trainable")).to_be_visible()
    assert metric_value(page, "Total params") == "15,024"
    assert metric_value(page, "Trainable") == "14,832"
    expect(page.get_by_test_id("stAlertContentError").get_by_text("over the 15,000 budget by 24")).to_be_visible()
    expect(page).to_have_url(re.compile(r"arch=.*c3x16bd0\.1_c3x16d0\.1_c1x10l"))
    screenshot(page, "architecture")


@pytest.mark.parametrize("digit", [1, 0, 7])
def test_drawn_digit_is_recognised_by_the_best_model(server, page, digit):
    """Mouse strokes on the canvas -> the default (most accurate) model names the digit."""
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile(r"^Bundled best-under-15k"))
    draw(page, STROKES[digit])
    expect(page.get_by_text("What the model sees (28x28)")).to_be_visible()
    expect(predicted_digit(page)).to_have_text(str(digit))


def test_a_small_bold_digit_is_thinned_to_mnist_strokes_and_read(server, page):
    page.goto(f"{server.url}/predict")
    draw(page, SMALL_SEVEN)
    thinned = re.compile(r"^Strokes thinned from \d+\.\d\d to \d\.\d\d px \(of 28\): above MNIST's 1\.71-3\.36 px")
    expect(page.get_by_text(thinned)).to_be_visible()
    expect(predicted_digit(page)).to_have_text("7")
    no_exception_box(page)


def test_whole_journey_train_to_the_end_predict_with_it_and_find_it_in_runs(server, page):
    """The fast recipe, shortened to 2 epochs on 10,000 images: the chart grows over two epochs, the run
    completes with its test accuracy, the Predict page uses that run's model on a drawn 7, and Runs lists it
    with its curve."""
    page.goto(f"{server.url}/train")
    page.get_by_role("radio", name=re.compile("^Fast")).click()
    expect(page.get_by_text(re.compile(r"^5 epochs on 60,000 images · one-cycle: warm-up"))).to_be_visible()
    open_recipe_fields(page)
    expect(page.get_by_role("spinbutton", name="Epochs")).to_have_value("5")
    for field, value in (("Epochs", "2"), ("Training images", "10000")):  # a short run of the fast recipe
        page.get_by_role("spinbutton", name=field).fill(value)
        page.get_by_role("spinbutton", name=field).press("Enter")
    page.get_by_role("button", name="Start training").click()
    heading = page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · running"))
    expect(heading).to_be_visible(timeout=120_000)
    run_id = int(re.search(r"Run (\d+)", heading.inner_text())[1])
    wait_for_points(page, 1, 0, timeout=180_000)
    expect(page.get_by_text(re.compile(r"Epoch 2/2, batch \d+/\d+"))).to_be_visible(timeout=60_000)
    screenshot(page, "train")  # live in epoch 2: one test-accuracy point, the train curve moving on
    expect(page.get_by_role("heading", name=f"Run {run_id}: seed-final · completed")).to_be_visible(
        timeout=180_000)
    wait_for_points(page, 1, 1, timeout=30_000)  # on a busy machine the chart redraws a moment after the heading
    assert plotted(page, 1) == 2 and plotted(page, 0) > 2
    accuracy = metric_value(page, "Final test accuracy")
    assert re.fullmatch(r"\d\d\.\d\d%", accuracy) and float(accuracy[:-1]) > 90
    assert metric_value(page, "Epochs") == "2 / 2"
    no_exception_box(page)
    screenshot(page, "train-completed")

    page.get_by_role("link", name=f"Try run {run_id}'s model on the Predict page").click()
    expect(page.get_by_role("combobox", name="Model")).to_have_value(re.compile(rf"^Run {run_id}: seed-final"))
    draw(page, STROKES[7])
    expect(predicted_digit(page)).to_have_text("7")
    no_exception_box(page)
    screenshot(page, "predict")

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Runs").click()
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
    screenshot(page, "runs")
    # The grid is drawn on a canvas; its accessible cells hold the raw values.
    row = page.locator('[data-testid="stDataFrame"] [role="row"]').filter(
        has=page.locator('[role="gridcell"]', has_text=re.compile(rf"^{run_id}$")))
    expect(row).to_have_count(1)
    cells = row.locator('[role="gridcell"]').all_inner_texts()
    assert cells[1] == "completed" and cells[2] == accuracy
    expect(page.locator(".js-plotly-plot").filter(has_text=f"Run {run_id}: seed-final (completed)")).to_be_visible()
    # The worker analysed the run's mistakes when it ended: the confusion matrix is there at once.
    expect(page.get_by_text(re.compile(rf"^{re.escape(accuracy)} right: [\d,]+ of 10,000 test digits misread"))
           ).to_be_visible()
    expect(page.get_by_text("most confident mistakes")).to_be_visible()
    no_exception_box(page)
    screenshot(page, "runs-mistakes")


def test_the_recipe_is_in_the_link_and_survives_a_reload(server, page):
    page.goto(f"{server.url}/train")
    page.get_by_role("radio", name=re.compile("^Best")).click()
    expect(page).to_have_url(re.compile(r"recipe=Best"))
    page.reload()
    expect(page.get_by_text(re.compile(r"^20 epochs on 60,000 images · one-cycle"))).to_be_visible()
    open_recipe_fields(page)
    expect(page.get_by_role("button", name="Train best-under-15k instead")).to_be_visible()
    expect(page.get_by_role("spinbutton", name="Rotate ±°")).to_have_value("8")
    expect(page.get_by_role("spinbutton", name="Warm-up")).to_be_enabled()
    expect(page.get_by_role("spinbutton", name="LR decay")).to_be_disabled()
    no_exception_box(page)


def test_stop_ends_a_live_run_and_the_page_says_so(server, page):
    page.goto(f"{server.url}/train")
    page.get_by_role("radio", name=re.compile("^Quick run")).click()
    open_recipe_fields(page)
    expect(page.get_by_role("spinbutton", name="Epochs")).to_have_value("1")
    expect(page.get_by_role("spinbutton", name="Training images")).to_have_value("60000")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · running"))).to_be_visible(
        timeout=120_000)
    wait_for_points(page, 0, 0, timeout=120_000)
    wait_for_points(page, 0, plotted(page, 0), timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_role("heading", name=re.compile(r"Run \d+: seed-final · stopped"))).to_be_visible(
        timeout=60_000)
    expect(page.get_by_text(re.compile(r"was stopped"))).to_be_visible()


def test_predict_fits_a_projector_and_takes_strokes_anywhere(server, watched_context):
    """At 1024x768 with the sidebar open the whole canvas is on screen without scrolling, and a stroke
    started in its top-right corner (where the canvas toolbar used to swallow it) is drawn and read."""
    page = watched_context(1024, 768).new_page()
    page.goto(f"{server.url}/predict")
    expect(page.get_by_text("Draw a digit on the black square")).to_be_visible()
    expect(page.locator('[data-testid="stSidebar"]')).to_be_visible()
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    unscrolled = canvas.bounding_box()
    assert unscrolled["y"] + unscrolled["height"] <= 768, f"the canvas runs below the screen: {unscrolled}"
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box["width"] == 280 and box["height"] == 280
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1024 - 15  # the scrollbar's strip
    shown = page.evaluate("""() => {  // the width the canvas' own scroll box leaves visible
        const host = [...document.querySelectorAll("*")].find((e) => e.shadowRoot && e.shadowRoot.querySelector(".dc-scroll"));
        return host.shadowRoot.querySelector(".dc-scroll").clientWidth;
    }""")
    assert shown >= 280, f"only {shown} of the canvas' 280 px are visible"
    hit = page.evaluate(f"""() => {{  // the canvas lives in a shadow root: look inside it
        let element = document.elementFromPoint({box['x'] + 270}, {box['y'] + 8});
        while (element && element.shadowRoot) {{
            const inner = element.shadowRoot.elementFromPoint({box['x'] + 270}, {box['y'] + 8});
            if (!inner || inner === element) break;
            element = inner;
        }}
        return element ? String(element.className) : "nothing";
    }}""")
    assert "upper-canvas" in hit, f"something covers the canvas' top-right corner: {hit}"
    draw(page, [[(270, 8), (268, 140), (266, 272)]])
    expect(predicted_digit(page)).to_have_text("1")
    screenshot(page, "predict-1024x768")


def test_a_deep_link_as_the_first_visit_gets_the_app_navigation(page):
    """A fresh server whose first visitor opens /train shows the app's own pages in the sidebar, not its files."""
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "lab").mkdir()
        fresh = Server(Path(folder) / "lab").start()
        try:
            page.goto(f"{fresh.url}/train")
            expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
            links = page.locator('[data-testid="stSidebarNav"] [data-testid="stSidebarNavLink"]')
            # Each link reads its icon's name, then its title. Streamlit's folder-based mode would list
            # the files instead: app, architecture, handwriting, home, ...
            titles = ["Home", "Architecture", "Train", "Predict", "Runs", "Studies", "Frontier", "My handwriting"]
            expect(links).to_have_text([re.compile(f"{title}$") for title in titles])
            screenshot(page, "first-visit-train")
        finally:
            fresh.stop()


def test_reloading_any_page_keeps_the_architecture(server, page):
    """seed-first chosen on Architecture stays seed-first on Train, after a page switch and a reload."""
    page.goto(f"{server.url}/architecture")
    page.get_by_role("button", name="seed-first (15,088)").click()
    expect(page.get_by_text("Current: seed-first")).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(PRESETS["seed-first"].to_code())))
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Train").click()
    expect(page.get_by_text("seed-first: 15,088 total")).to_be_visible()
    page.reload()
    expect(page.get_by_text("seed-first: 15,088 total")).to_be_visible()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Predict").click()
    expect(page.get_by_role("heading", name="Predict")).to_be_visible()
    page.reload()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Architecture").click()
    expect(page.get_by_text("Current: seed-first")).to_be_visible()


def test_my_handwriting_journey_draw_inspect_save_photo_and_judge(server, page, tmp_path):
    """Draw a 7: see what the model sees; save it; photograph a 1 on paper and save it too; then the
    handwriting page shows both and judges every model on them."""
    from PIL import Image, ImageDraw

    page.goto(f"{server.url}/predict")
    draw(page, STROKES[7])
    expect(predicted_digit(page)).to_have_text("7")
    expect(page.get_by_role("heading", name="What the model sees")).to_be_visible()
    expect(page.get_by_text("Red: where blanking the input lowers the answer '7' most.")).to_be_visible()
    page.get_by_text("Feature maps of every conv layer").click()
    expect(page.get_by_text(re.compile(r"conv 1: 10 channels of 26x26"))).to_be_visible()
    screenshot(page, "predict-insight")
    page.get_by_role("button", name="Save to my handwriting set").click()
    expect(page.get_by_role("link", name=re.compile(r"Saved as sample \d+"))).to_be_visible()

    paper = Image.new("L", (400, 300), 215)
    ImageDraw.Draw(paper).line([(205, 50), (200, 150), (196, 250)], fill=50, width=16)
    photo = tmp_path / "one.jpg"
    paper.convert("RGB").save(photo, quality=90)
    page.get_by_role("radio", name="Photo").or_(page.get_by_role("button", name="Photo")).first.click()
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    expect(predicted_digit(page)).to_have_text("1")
    screenshot(page, "predict-photo")
    page.get_by_role("button", name="Save to my handwriting set").click()
    expect(page.get_by_role("link", name=re.compile(r"Saved as sample \d+"))).to_be_visible()

    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="My handwriting").click()
    expect(page.get_by_text(re.compile(r"^2 samples"))).to_be_visible()
    page.get_by_role("button", name="Evaluate every model").click()
    expect(page.locator('[data-testid="stDataFrame"]')).to_be_visible()
    screenshot(page, "handwriting")


def test_advisor_fixes_seed_first_in_one_click_and_the_picture_follows(server, page):
    page.goto(f"{server.url}/architecture?arch={PRESETS['seed-first'].to_code()}")
    expect(page.get_by_test_id("stAlertContentError").get_by_text("over the 15,000 budget by 88")).to_be_visible()
    expect(page.get_by_text("Drop BatchNorm after conv 6 + Drop BatchNorm after conv 7")).to_be_visible()
    expect(page.locator('[data-testid="stGraphVizChart"] svg')).to_be_visible()
    screenshot(page, "architecture-advisor")
    page.get_by_role("button", name="Apply").first.click()
    expect(page.get_by_text("Last change: Drop BatchNorm after conv 2: -128 total / -64 trainable")).to_be_visible()
    assert metric_value(page, "Total params") == "14,960"
    # During the rerun the old picture may linger beside the new one: look for the new one by its count.
    picture = page.locator('[data-testid="stGraphVizChart"] svg').filter(has_text="14,960 total")
    expect(picture).to_be_visible()
    expect(picture).to_contain_text("conv 2")


def test_a_study_trains_every_toggle_and_compares_them(server, page):
    """A small network studied with the quickest recipe: every variant trains, then the table and the
    scatter say what each toggle changed and whether it is within seed noise."""
    small = "c3x8b_p2_c3x8bd0.1_c1x10l_gap_sm"
    page.goto(f"{server.url}/studies?arch={small}")
    page.get_by_role("combobox", name="Recipe").click()
    page.get_by_role("option", name=re.compile("A first look")).click()
    page.get_by_role("button", name="Study this architecture").click()
    expect(page.get_by_text(re.compile(r"\d+ of \d+ runs done"))).to_be_visible()
    screenshot(page, "studies-running")
    expect(page.get_by_text(re.compile(r"(\d+) of \1 runs done"))).to_be_visible(timeout=420_000)
    # During a rerun the old table and scatter may linger a moment beside the new ones: either shows the study.
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    expect(page.locator(".js-plotly-plot").first).to_be_visible()
    screenshot(page, "studies")


def test_enter_in_a_recipe_field_does_not_start_training(server, page):
    """Enter confirms a value; only the Start button starts a run (Enter used to submit the form)."""
    from mnist_core.runs import RunStore

    before = len(RunStore(server.home).list())
    page.goto(f"{server.url}/train")
    open_recipe_fields(page)
    seed = page.get_by_role("spinbutton", name="Seed")
    seed.fill("5")
    seed.press("Enter")
    expect(seed).to_have_value("5")
    page.wait_for_timeout(3000)
    assert len(RunStore(server.home).list()) == before


def test_the_exception_watch_catches_a_red_box_even_one_that_is_gone(server, browser):
    """The check every browser test relies on: a box shown for a moment, then removed, still fails."""
    context = browser.new_context()
    try:
        watch = ExceptionWatch(context)
        page = context.new_page()
        page.goto(server.url)
        expect(page.get_by_text("Best model so far")).to_be_visible()
        watch.check()
        page.evaluate("""() => { const box = document.createElement("div");
            box.setAttribute("data-testid", "stException"); box.textContent = "TypeError: boom";
            document.body.appendChild(box); setTimeout(() => box.remove(), 50); }""")
        page.wait_for_timeout(500)
        assert page.locator("[data-testid='stException']").count() == 0
        with pytest.raises(AssertionError, match="TypeError: boom"):
            watch.check()
    finally:
        context.close()
