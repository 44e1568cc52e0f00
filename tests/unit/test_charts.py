"""Plotly figures from plain data: they must serialise (Streamlit sends them as JSON) and show the run."""

import json

import pytest

from mnist_core.charts import lr_ticks, overlay_figure, training_figure
from mnist_core.events import Event


def events(epochs_done: int, batches: int = 4) -> list[Event]:
    """Events as a worker publishes them: `batches` per epoch, the last one of each an epoch end."""
    out = []
    for epoch in range(epochs_done):
        for batch in range(1, batches + 1):
            end = batch == batches
            out.append(Event("epoch" if end else "batch", epoch + batch / batches, batch, epoch * batches + batch,
                             0.003 / (1 + 0.319 * epoch), 1.0 / (epoch + 1), 0.9, 0.1 if end else None,
                             0.95 + epoch / 100 if end else None, 2.0 * (epoch + batch / batches), 10.0))
    return out


def test_training_figure_after_epochs_serialises_and_spans_the_whole_run():
    """After the first epoch ends the figure still serialises (it raised 'Event is not JSON
    serializable'), the x axis spans all planned epochs, and the test accuracy has one point per epoch."""
    for done in (1, 2, 3):
        figure = json.loads(training_figure(events(done), epochs=20, peak_lr=0.01).to_json())
        assert figure["layout"]["xaxis"]["range"][0] == 0 and 20 < figure["layout"]["xaxis"]["range"][1] <= 21
        assert figure["layout"]["yaxis2"]["range"] == [0, pytest.approx(0.0105)]  # the rate's axis stays put
        test_accuracy = next(trace for trace in figure["data"] if trace["name"] == "test accuracy")
        assert test_accuracy["x"] == list(range(1, done + 1))
        assert test_accuracy["y"] == [0.95 + epoch / 100 for epoch in range(done)]


def test_live_figure_before_any_epoch_end():
    figure = json.loads(training_figure(events(1)[:2], epochs=2).to_json())
    train_accuracy = next(trace for trace in figure["data"] if trace["name"] == "train accuracy (epoch so far)")
    assert train_accuracy["x"] == [0.25, 0.5]


def test_overlay_figure_names_each_run():
    figure = json.loads(overlay_figure([("Run 1", events(2)), ("Run 2", events(3))]).to_json())
    assert [trace["name"] for trace in figure["data"] if trace.get("showlegend") is not False] == ["Run 1", "Run 2"]


def test_overlay_accuracy_axis_stays_within_0_and_100_percent():
    """Runs with a constant 97% curve made Plotly's autorange span 0 to 1.5; the axis ends at 100% now, and
    starts a little below the lowest point."""
    flat = [Event("epoch", epoch, 10, 10 * epoch, 0.003, 0.1, 0.97, 0.08, 0.97, 5.0 * epoch, 0.0) for epoch in (1, 2)]
    figure = json.loads(overlay_figure([("Run 1", flat), ("Run 2", flat)]).to_json())
    low, high = figure["layout"]["yaxis"]["range"]
    assert high == 1.0 and 0.0 <= low < 0.97
    assert figure["layout"]["yaxis"]["tickformat"].endswith("%")


def test_overlaid_runs_differ_in_dash_and_marker_so_identical_curves_stay_apart():
    curves = [(f"Run {number}", events(2)) for number in range(1, 5)]
    figure = json.loads(overlay_figure(curves).to_json())
    accuracy = [trace for trace in figure["data"] if trace.get("showlegend") is not False]
    rate = [trace for trace in figure["data"] if trace.get("showlegend") is False]
    assert len({trace["line"]["dash"] for trace in accuracy}) == 4
    assert len({trace["marker"]["symbol"] for trace in accuracy}) == 4
    assert len({trace["line"]["dash"] for trace in rate}) == 4
    widths = [trace["line"]["width"] for trace in accuracy]
    assert widths == sorted(widths, reverse=True) and widths[0] > widths[1]  # the first line shows around the next


def test_every_study_dot_is_named_on_the_chart():
    """The scatter's dots carried their names only on hover: a projected class saw unnamed dots."""
    from mnist_core.charts import study_figure
    from mnist_core.study import StudySummary, VariantRow

    def row(key, label, delta_params, delta_accuracy):
        return VariantRow(key, label, 15_000 + delta_params, delta_params, {0: 0.98}, {0: "completed"}, 0.98, None,
                          None, delta_accuracy, 0.004, "noise", "within seed noise")

    rows = [row("baseline", "Baseline", 0, None), row("bn-off:conv6", "Drop BatchNorm after conv 6", -64, -0.003),
            row("dropout-on:conv3", "Add Dropout after conv 3", 0, 0.001),
            row("preset:seed-first", "Preset seed-first", 128, 0.002),
            row("dropout-off:conv7", "Drop Dropout after conv 7", 0, 0.001)]  # on the +Dropout 3 dot
    figure = study_figure(StudySummary(None, {"completed": 5}, rows, 0.002, "typical"))
    dots, baseline = figure.data
    assert "text" in dots.mode
    assert list(dots.texttemplate) == ["−BN 6", "+Dropout 3, −Dropout 7", "seed-first", ""]  # one text a spot
    assert dots.textposition == "top center" and baseline.textposition == "bottom center"  # a variant on it too
    assert list(dots.text) == [r.label for r in rows[1:]]  # the hover names each in full
    assert "text" in baseline.mode and list(baseline.text) == ["baseline"]


@pytest.mark.parametrize("peak, labels", [
    (0.003, ["0", "0.001", "0.002", "0.003"]),  # the notebook's
    (0.01, ["0", "0.002", "0.004", "0.006", "0.008", "0.01"]),  # Best's and Quick run's peak
    (0.015, ["0", "0.005", "0.01", "0.015"]),  # Fast's peak
])
def test_the_learning_rate_axis_reads_round_numbers(peak, labels):
    """Its ticks were Plotly's, 0.0021 and 0.0041 beside the accuracy grid; now round steps up to the peak."""
    axis = json.loads(training_figure(events(2), epochs=5, peak_lr=peak).to_json())["layout"]["yaxis2"]
    assert axis["tickmode"] == "array" and axis["ticktext"] == labels
    assert axis["tickvals"] == [float(label) for label in labels]


@pytest.mark.parametrize("peak", [0.0001, 0.00037, 0.0021, 0.0049, 0.007, 0.0123, 0.05, 0.1, 1.0])
def test_every_learning_rate_gets_three_to_six_round_ticks_within_its_range(peak):
    ticks = lr_ticks(peak)
    step = ticks[1]
    assert 3 <= len(ticks) <= 6 and ticks[0] == 0 and peak / 2 < ticks[-1] <= peak
    assert f"{step:e}".split("e")[0] in ("1.000000", "2.000000", "5.000000")
    assert all(tick == pytest.approx(number * step) for number, tick in enumerate(ticks))


def test_the_training_figure_leaves_room_above_its_top_ticks_for_a_toolbar():
    """The mode bar covered the top tick of the learning rate (the Train page also hides it)."""
    for title in ("", "Run 3"):
        figure = json.loads(training_figure(events(1), epochs=2, peak_lr=0.01, title=title).to_json())
        assert figure["layout"]["margin"]["t"] >= 30 + (30 if title else 0)


def test_the_mistakes_charts_numbers_are_big_enough_for_a_projector():
    """Side by side at 1024 px their numbers shrank to about 6 px; they read at 13 px now, one chart a row."""
    from mnist_core.charts import confusion_figure, per_class_figure

    matrix = [[90 if t == p else 1 for p in range(10)] for t in range(10)]
    assert all(trace.textfont.size >= 12 for trace in confusion_figure(matrix).data)
    bars = per_class_figure([0.99] * 9 + [0.95])
    assert bars.data[0].textfont.size >= 12 and "weakest" in bars.layout.title.text
