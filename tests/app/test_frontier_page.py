"""The Frontier page in AppTest: presets' seeds, published results and your runs on one chart; a preset opens."""

import json
import math
import statistics

from mnist_core.budget import summarize
from mnist_core.evidence import NO_ACCURACY, accuracy_text
from mnist_core.frontier import MEASURED, PUBLISHED
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS, Architecture
from tests.app.conftest import metrics, texts
from tests.app.test_other_pages import finished_run


def figure(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_the_chart_holds_every_presets_seeds_the_published_results_and_your_runs(app, lab_home):
    good = finished_run(lab_home, name="seed-final", accuracy=0.9903)
    finished_run(lab_home, name="seed-first", accuracy=0.40)  # far below the chart: counted, not drawn
    at = app("frontier")
    traces = figure(at)["data"]
    for result in MEASURED.values():
        seeds = next(trace for trace in traces if trace.get("customdata") == [result.preset] * len(result.test)
                     and trace["mode"] == "markers")
        assert seeds["y"] == list(result.test.values()) and set(seeds["x"]) == {result.params}
        mean = next(trace for trace in traces if trace.get("customdata") == [result.preset]
                    and trace["mode"] == "markers+text")
        assert abs(mean["y"][0] - result.mean) < 1e-12 and abs(mean["error_y"]["array"][0] - result.spread) < 1e-12
    published = next(trace for trace in traces if trace.get("name", "").startswith("the notebook and published"))
    assert published["x"] == [p.params for p in PUBLISHED] and published["y"] == [p.accuracy for p in PUBLISHED]
    yours = next(trace for trace in traces if trace.get("name") == "your runs")
    assert yours["x"] == [summarize(PRESETS["seed-final"]).total]
    assert yours["y"] == [0.9903] and yours["text"] == [f"run {good}: seed-final"]
    assert any("1 run of yours under" in text and "is below the chart" in text for text in texts(at.caption))
    table = at.dataframe[0].value
    assert list(table["preset"]) == [result.preset for result in sorted(MEASURED.values(), key=lambda r: r.params)]
    assert list(table["mean validation"]) == [
        accuracy_text(statistics.mean(result.validation.values())) if result.validation else NO_ACCURACY
        for result in sorted(MEASURED.values(), key=lambda r: r.params)]
    notes = at.dataframe[1].value
    links = [p.url for p in PUBLISHED if p.url]
    assert [link for link in notes["link"] if link] == links and len(links) == 3  # none shows "None"
    assert None not in list(notes["link"])
    # A click selects one point; no other point may fade (Plotly greys unselected points unless told otherwise).
    assert all(trace["unselected"]["marker"]["opacity"] == trace["marker"].get("opacity", 1) for trace in traces)


def test_a_presets_button_opens_it_on_the_architecture_page(app):
    at = app("frontier")
    smallest = min(MEASURED.values(), key=lambda result: result.params)
    next(button for button in at.button if button.label.startswith(f"Open {smallest.preset} ")).click().run()
    assert metrics(at)["Total params"] == f"{smallest.params:,}"
    assert any(f"Current: **{smallest.preset}**" in text for text in texts(at.caption))
    assert f"Last change: Loaded preset {smallest.preset} from the frontier" in texts(at.caption)
    # Under the budget in its name, not the 15,000 the page had: the advisor and the spare count are about 1K.
    assert at.number_input(key="budget_limit").value == smallest.budget == 1_000
    assert metrics(at)["Spare"] == f"+{1_000 - 1 - smallest.params:,}"


def test_a_user_named_run_is_plain_text_in_the_chart(app, lab_home):
    """A run's name is a user's text: an HTML link in it is escaped, never rendered by Plotly."""
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    run_id = store.create_run('<a href="http://x">win</a>', arch, {"epochs": 1}, summarize(arch).total,
                              summarize(arch).trainable)
    store.claim_next(worker_pid=0)
    store.finish(run_id, "completed", test_accuracy=0.991)
    at = app("frontier")
    yours = next(trace for trace in figure(at)["data"] if trace.get("name") == "your runs")
    assert yours["text"] == [f'run {run_id}: &lt;a href="http://x"&gt;win&lt;/a&gt;']  # no tag, quotes as typed


def test_a_run_far_larger_or_smaller_than_the_presets_is_still_on_the_chart(app, lab_home):
    """The params axis widens to a run of 250 or 30,000 params instead of leaving it off the sides."""
    store = RunStore(lab_home)
    for code in ("c3x2_c1x10l_gap_sm", "c3x32_c3x96_c1x10l_gap_sm"):
        arch = Architecture.from_code(code)
        run_id = store.create_run(code, arch, {"epochs": 1}, summarize(arch).total, summarize(arch).trainable)
        store.claim_next(worker_pid=0)
        store.finish(run_id, "completed", test_accuracy=0.99)
    at = app("frontier")
    low, high = figure(at)["layout"]["xaxis"]["range"]
    sizes = [summarize(Architecture.from_code(code)).total
             for code in ("c3x2_c1x10l_gap_sm", "c3x32_c3x96_c1x10l_gap_sm")]
    assert sizes[0] < 400 and sizes[1] > 22_000
    assert low < math.log10(sizes[0]) and math.log10(sizes[1]) < high


def test_a_run_of_millions_of_params_is_counted_beside_the_chart_not_drawn(app, lab_home):
    """A 1.9M-param run would squash the presets into a corner: it is named in a caption instead, and a long
    name is cut in the hover so that its numbers stay on screen."""
    store = RunStore(lab_home)
    for code, name in (("c3x64_c3x256_c3x256_c3x256_c3x256_c1x10l_gap_sm", "huge"),
                       ("c3x32_c3x96_c1x10l_gap_sm", "x" * 60)):
        arch = Architecture.from_code(code)
        run_id = store.create_run(name, arch, {"epochs": 1}, summarize(arch).total, summarize(arch).trainable)
        store.claim_next(worker_pid=0)
        store.finish(run_id, "completed", test_accuracy=0.99)
    assert summarize(Architecture.from_code("c3x64_c3x256_c3x256_c3x256_c3x256_c1x10l_gap_sm")).total > 1_000_000
    at = app("frontier")
    chart = figure(at)
    yours = next(trace for trace in chart["data"] if trace.get("name") == "your runs")
    label = f"run {run_id}: " + "x" * 60
    assert yours["text"] == [label[:39] + "…"]  # the 30,000-param run only, its label cut to 40 characters
    assert chart["layout"]["xaxis"]["range"][1] < math.log10(300_000)
    assert "1 run of yours under 10 or over 200,000 params is beside the chart." in texts(at.caption)
