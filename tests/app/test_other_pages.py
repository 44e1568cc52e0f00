"""Home, Train, Predict and Runs pages in AppTest, against a real run store and real workers."""

import time

from mnist_core.budget import summarize
from mnist_core.spec import PRESETS
from mnist_core.store import RunStore
from tests.app.conftest import metrics, texts


def finished_run(home, name="seed-final", accuracy=0.985, status="completed"):
    """A run as the worker would leave it, with two epochs of events."""
    from mnist_core.store import Event

    store = RunStore(home)
    arch = PRESETS[name]
    summary = summarize(arch)
    run_id = store.create_run(name, arch, {"epochs": 2, "batch_size": 128, "learning_rate": 0.003, "seed": 0},
                              summary.total, summary.trainable)
    store.claim_next(worker_pid=0)
    for seq, epoch in enumerate((1, 2)):
        store.add_event(run_id, seq, Event("epoch", epoch, 10, 10 * epoch, 0.003 / (1 + 0.319 * (epoch - 1)),
                                           0.1, 0.97, 0.08, accuracy, 5.0 * epoch, 0.0))
    store.finish(run_id, status, test_accuracy=accuracy, test_loss=0.05)
    return run_id


def test_home_shows_the_count_and_the_best_model(app, lab_home):
    at = app()
    assert metrics(at)["Current architecture (seed-final), total params"] == "14,960"
    assert metrics(at)["Best model so far"] == "none trained yet"
    finished_run(lab_home, accuracy=0.9812)
    best = finished_run(lab_home, name="seed-first", accuracy=0.9901)
    at = app()
    assert metrics(at)[f"Best model so far: run {best} (seed-first), 15,088 params"] == "99.01%"


def test_over_budget_needs_an_explicit_confirmation(app, lab_home):
    """seed-first cannot start until 'Train anyway' (88 over) is ticked; then it is queued."""
    at = app(query={"arch": PRESETS["seed-first"].to_code()})
    at.switch_page("pages/train.py").run()
    assert at.checkbox[0].label == "Train anyway: this network is 88 params over the 15,000 budget"
    at.button[0].click().run()  # the form's Start button
    assert "Over budget by 88 params: tick 'Train anyway' to train it regardless." in texts(at.error)
    assert RunStore(lab_home).list() == []
    at.checkbox[0].check()
    at.button[0].click().run()
    runs = RunStore(lab_home).list()
    assert len(runs) == 1 and runs[0].total_params == 15_088


def test_second_start_is_queued_with_a_clear_message(app, lab_home):
    at = app("train")
    at.toggle[0].set_value(True)  # quick run
    at.button[0].click().run()
    at.button[0].click().run()
    assert any("is queued: 1 run(s) ahead of it train first" in text for text in texts(at.info))
    store = RunStore(lab_home)
    assert [run.status for run in store.list()][0] == "queued" and len(store.list()) == 2
    for run in store.list():
        store.request_stop(run.id)


def test_train_page_shows_the_live_run_and_stop_works(app, lab_home):
    """A started run appears with its progress; Stop marks it stopped."""
    at = app("train")
    at.toggle[0].set_value(True)
    at.button[0].click().run()
    store = RunStore(lab_home)
    run_id = store.list()[0].id
    deadline = time.monotonic() + 120
    while not store.events(run_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    at.run()
    assert any(text.startswith(f"Run {run_id}: seed-final") for text in texts(at.subheader))
    assert at.get("plotly_chart"), "the live chart is drawn once events arrive"
    next(b for b in at.button if b.label == "Stop").click().run()
    while store.get(run_id).status == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.get(run_id).status == "stopped"


def test_predict_page_hints_on_a_blank_canvas(app):
    at = app("predict")
    assert not at.exception
    assert "Draw a digit on the black square to see what the model thinks." in texts(at.info)
    assert at.selectbox[0].value.label.startswith("Bundled seed-final")


def test_predict_page_reports_a_broken_model_file(app, lab_home):
    run_id = finished_run(lab_home)
    (RunStore(lab_home).model_path(run_id)).write_bytes(b"garbage")
    at = app("predict")
    assert any("cannot be used" in text and "corrupted" in text for text in texts(at.error))
    assert not at.exception


def test_runs_table_lists_runs_with_their_numbers(app, lab_home):
    finished_run(lab_home, accuracy=0.9812)
    finished_run(lab_home, name="seed-first", accuracy=0.99)
    at = app("runs")
    table = at.dataframe[0].value
    assert list(table["run"]) == [2, 1]
    assert list(table["total params"]) == [15_088, 14_960]
    assert list(table["budget"]) == ["over by 88", "within"]
    assert list(table["test accuracy"]) == [0.99, 0.9812]
    assert table["recipe"][0].startswith("2 ep · batch 128 · lr 0.003")
    assert not at.exception


def test_runs_page_loads_an_architecture_back_and_deletes_after_confirming(app, lab_home):
    run_id = finished_run(lab_home, name="seed-first")
    at = app("runs")
    next(b for b in at.button if b.label == "Load architecture").click().run()
    assert at.session_state["arch"] == PRESETS["seed-first"]
    at = app("runs")
    next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert RunStore(lab_home).get(run_id) is None
