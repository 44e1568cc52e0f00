"""Home, Train (budget rule), Predict and Runs pages in AppTest, against a real run store."""

from mnist_core.budget import summarize
from mnist_core.catalogue import bundled_model
from mnist_core.evidence import accuracy_text
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from mnist_core.study import variants
from tests.app.conftest import metrics, texts
from tests.models import copy_model

BUNDLED = bundled_model().spec.name  # the preset the shipped model was trained as


def finished_run(home, name="seed-final", accuracy=0.985, status="completed", epochs=2, planned=2,
                 model_from=None):
    """A run as the worker would leave it, with `epochs` epochs of events (and a copy of a model file)."""

    from mnist_core.events import Event

    store = RunStore(home)
    arch = PRESETS[name]
    summary = summarize(arch)
    run_id = store.create_run(name, arch, {"epochs": planned, "batch_size": 128, "learning_rate": 0.003,
                                           "seed": 0}, summary.total, summary.trainable)
    store.claim_next(worker_pid=0)
    for seq, epoch in enumerate(range(1, epochs + 1)):
        store.add_event(run_id, seq, Event("epoch", epoch, 10, 10 * epoch, 0.003 / (1 + 0.319 * (epoch - 1)),
                                           0.1, 0.97, 0.08, accuracy, 5.0 * epoch, 0.0))
    if model_from is not None:
        copy_model(model_from, store.model_path(run_id))
    store.finish(run_id, status, test_accuracy=accuracy, test_loss=0.05)
    return run_id


def test_home_shows_the_count_and_the_best_model(app, lab_home):
    """Before any run the bundled model is the best; a better run, even a stopped one, takes over."""
    at = app()
    assert metrics(at)["Current architecture (seed-final), total params"] == "14,960"
    assert metrics(at)[f"Best model so far: Bundled {BUNDLED}"] == accuracy_text(bundled_model().test_accuracy)
    finished_run(lab_home, accuracy=0.9812)
    best = finished_run(lab_home, name="seed-first", accuracy=0.9961, status="stopped",
                        model_from=bundled_model().path)
    at = app()
    assert metrics(at)[f"Best model so far: Run {best}: seed-first, stopped"] == "99.61%"


def test_over_budget_needs_an_explicit_confirmation(app, lab_home, idle_executor):
    """seed-first cannot start until 'Train anyway' (88 over) is ticked; then it is queued."""
    at = app(query={"arch": PRESETS["seed-first"].to_code()})
    at.switch_page("pages/train.py").run()
    def confirmations():
        return [box for box in at.checkbox if box.label.startswith("Train anyway")]

    assert [box.label for box in confirmations()] == ["Train anyway: this network is 88 params over the 15,000 budget"]
    at.button[0].click().run()  # the form's Start button
    assert "This network is 88 params over the 15,000 budget: tick 'Train anyway' to train it regardless." \
        in texts(at.error)
    assert RunStore(lab_home).list() == []
    confirmations()[0].check()
    at.button[0].click().run()
    runs = RunStore(lab_home).list()
    assert len(runs) == 1 and runs[0].total_params == 15_088


def test_a_network_exactly_at_the_budget_is_never_called_over_by_zero(app, lab_home, idle_executor):
    """seed-final has 14,960 params; with a budget of 14,960 the strict rule makes it 1 over, said so."""
    at = app(query={"budget": "14960"})
    assert not at.exception
    assert [metric.proto.delta for metric in at.metric][0] == "at limit, 1 over"
    at.switch_page("pages/train.py").run()
    assert not at.exception
    label = "Train anyway: this network is at the 14,960 budget, which it must stay under: 1 param over"
    assert [box.label for box in at.checkbox if box.label.startswith("Train anyway")] == [label]
    finished_run(lab_home, accuracy=0.98)
    at.switch_page("pages/runs.py").run()
    assert list(at.dataframe[0].value["budget"]) == ["at limit, 1 over"]


def test_predict_page_hints_on_a_blank_canvas(app):
    at = app("predict")
    assert "Draw a digit on the black square to see what the model thinks." in texts(at.info)
    assert at.selectbox[0].value.label.startswith(f"Bundled {BUNDLED}")


def test_predict_defaults_to_the_most_accurate_model_and_follows_the_link(app, lab_home):
    """A weak newer run does not replace a stronger model as the default; ?model=<run> picks that run."""
    strong = finished_run(lab_home, name=BUNDLED, accuracy=0.996, status="stopped", model_from=bundled_model().path)
    weak = finished_run(lab_home, name=BUNDLED, accuracy=0.969, model_from=bundled_model().path)
    at = app("predict")
    assert at.selectbox[0].value.run_id == strong
    described = f"Run {strong}, stopped: test accuracy 99.60%. Trained in this lab, recipe: notebook with epochs 2"
    assert any(text.startswith(described) for text in texts(at.caption))
    at = app("predict", query={"model": str(weak)})
    assert at.selectbox[0].value.run_id == weak


def test_predict_hides_models_that_did_not_learn_behind_a_toggle(app, lab_home):
    """A newer run at always-"1" (11.35%) is neither the default nor in the picker until asked for."""
    learned = finished_run(lab_home, name=BUNDLED, accuracy=0.969, model_from=bundled_model().path)
    chance = finished_run(lab_home, name=BUNDLED, accuracy=0.1135, model_from=bundled_model().path)
    at = app("predict")
    assert not at.exception
    assert at.selectbox[0].value.run_id is None  # the bundled model, the most accurate
    assert [option.split(" (")[0] for option in at.selectbox[0].options] == [f"Bundled {BUNDLED}",
                                                                             f"Run {learned}: {BUNDLED}, completed"]
    toggle = at.toggle(key="show_hidden_models")
    assert toggle.label == "Show 1 more"
    toggle.set_value(True).run()
    assert not at.exception
    assert at.selectbox[0].options[-1] == f"Run {chance}: {BUNDLED}, completed (11.35% (did not learn))"
    at = app("predict", query={"model": str(chance)})  # a link to it shows it, said plainly
    assert at.selectbox[0].value.run_id == chance and not at.exception


def test_a_studys_many_runs_give_way_to_the_classs_own_run(app, lab_home, idle_executor):
    """A first-look study of 3 variants after one run of one's own: Train, Runs and Predict show the own run;
    the study's models wait behind Predict's toggle, and its recipe is called a first look."""

    from mnist_core.recipe import FIRST_LOOK

    own = finished_run(lab_home, name=BUNDLED, accuracy=0.97, model_from=bundled_model().path)
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    study_id = store.create_study("Ablation of seed-final", arch, FIRST_LOOK.to_dict(), [0])
    for variant in variants(arch)[:3]:
        counts = summarize(variant.arch)
        run_id = store.create_run(variant.label, variant.arch, FIRST_LOOK.to_dict(), counts.total, counts.trainable,
                                  study_id=study_id, variant=variant.key)
        store.claim_next(0)
        copy_model(bundled_model().path, store.model_path(run_id))
        store.finish(run_id, "completed", test_accuracy=0.975)
    at = app("train")
    assert not at.exception
    assert [h for h in texts(at.subheader) if h.startswith("Run ")][0] == f"Run {own}: {BUNDLED} · completed"
    at.switch_page("pages/runs.py").run()
    assert at.selectbox(key="runs_chosen").value == own
    assert "first look · seed 0" in list(at.dataframe[0].value["recipe"])
    at.switch_page("pages/predict.py").run()
    assert not at.exception
    assert [option.split(" (")[0] for option in at.selectbox[0].options] == [f"Bundled {BUNDLED}",
                                                                             f"Run {own}: {BUNDLED}, completed"]
    assert at.toggle(key="show_hidden_models").label == "Show 3 more"


def test_predict_page_reports_a_broken_model_file(app, lab_home):
    """A link to a run whose model file is damaged says why that model is not offered, and shows another."""
    run_id = finished_run(lab_home)
    (RunStore(lab_home).model_path(run_id)).write_bytes(b"garbage")
    at = app("predict", query={"model": str(run_id)})
    assert not at.exception
    assert any(text.startswith(f"Run {run_id}'s model cannot be used:") and "corrupted" in text
               and text.endswith(f"Showing Bundled {BUNDLED}.") for text in texts(at.info))


def test_a_run_that_did_not_learn_is_said_so_in_the_table_and_its_view(app, lab_home):
    run_id = finished_run(lab_home, accuracy=0.1135, epochs=1, planned=1)
    at = app("runs")
    assert not at.exception
    assert list(at.dataframe[0].value["test accuracy"]) == ["11.35% (did not learn)"]
    assert any(text.startswith("completed · test accuracy 11.35% (did not learn) · 1 / 1 epoch")
               for text in texts(at.caption))
    assert any(text.startswith("This run did not learn: 11.35% is within noise of what always answering")
               for text in texts(at.warning)), run_id


def test_runs_table_lists_runs_with_their_numbers(app, lab_home):
    finished_run(lab_home, accuracy=0.9812)
    finished_run(lab_home, name="seed-first", accuracy=0.99, status="stopped", epochs=7, planned=20)
    at = app("runs")
    table = at.dataframe[0].value
    assert list(table["run"]) == [2, 1]
    assert list(table["total params"]) == [15_088, 14_960]
    assert list(table["budget"]) == ["over by 88", "within"]
    assert list(table["test accuracy"]) == ["99.00%", "98.12%"]
    assert list(table["epochs"]) == ["7 / 20", "2 / 2"]
    assert list(table["recipe"]) == ["notebook · seed 0", "notebook with epochs 2 · seed 0"]
    assert list(table.columns[:6]) == ["run", "status", "test accuracy", "total params", "budget", "architecture"]


def test_a_run_whose_test_is_far_under_its_training_is_explained_on_runs_and_train(app, lab_home, idle_executor):
    """Training at 97%, the test at 40%, BatchNorm and no re-estimate: both pages say why and what to tick."""
    run_id = finished_run(lab_home, accuracy=0.40)
    for page in (app("runs"), app("train", query={"run": str(run_id)})):
        assert any(text.startswith("Training reached 97% accuracy but the test only 40.00%") for text in
                   texts(page.warning)), texts(page.warning)


def test_runs_page_does_not_call_a_never_trained_run_broken(app, lab_home):
    """A run stopped while queued has no model, which is not an error; a trained run is preselected."""
    trained = finished_run(lab_home, name=BUNDLED, model_from=bundled_model().path)
    store = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    never = store.create_run("seed-final", PRESETS["seed-final"], {"epochs": 20}, summary.total, summary.trainable)
    store.request_stop(never)
    at = app("runs")
    assert at.selectbox[0].value == trained
    at.selectbox[0].set_value(never).run()
    assert not at.error
    assert f"Run {never} has no model: it was stopped before its first epoch ended." in texts(at.caption)


def test_a_run_stopped_before_its_first_epoch_offers_no_model_on_any_page(app, lab_home):
    """One rule for every page: a run stopped in its first epoch has no test accuracy and so no model, even when
    an older version of the app left a model file and an analysis beside it (they showed a 91.84% 'mistakes'
    view and a download under 'test accuracy none')."""
    from mnist_core.analysis import analysis_path

    early = finished_run(lab_home, name=BUNDLED, status="stopped", accuracy=None, epochs=0, planned=20,
                         model_from=bundled_model().path)
    store = RunStore(lab_home)
    analysis_path(store, early).write_text("{}")
    at = app("runs")
    at.selectbox[0].set_value(early).run()
    assert f"Run {early} has no model: it was stopped before its first epoch ended." in texts(at.caption)
    assert not [button for button in at.get("download_button") if button.label == "Download model (.keras)"]
    assert not any("mistakes" in text for text in texts(at.subheader))
    predict = app("predict")
    assert not any(f"Run {early}" in option for option in predict.selectbox(key="model_choice").options)
    train = app("train", query={"run": str(early)})
    assert not any(f"run {early}'s model" in str(link.label) for link in train.get("page_link"))


def test_runs_page_makes_an_onnx_file_of_a_runs_model_then_offers_it(app, lab_home):
    """The export is made once, beside the run's model; from then on the page offers its download."""
    run_id = finished_run(lab_home, name=BUNDLED, model_from=bundled_model().path)
    at = app("runs")
    assert {b.label for b in at.button} >= {"Make ONNX file", "Make TFLite file"}
    assert not [b for b in at.get("download_button") if b.label == "Download ONNX"]
    at.button(key=f"export_onnx_{run_id}").click().run()
    made = RunStore(lab_home).run_dir(run_id) / "model.onnx"
    assert made.stat().st_size > 10_000
    [download] = [b for b in at.get("download_button") if b.proto.id.endswith(f"download_onnx_{run_id}")]
    assert download.label == "Download ONNX"
    assert at.button(key=f"export_tflite_{run_id}").label == "Make TFLite file"  # one file at a time
    assert at.button(key="export_onnx_bundled").label == "Make ONNX file"  # the bundled model's own


def test_runs_page_stops_an_active_run_and_keeps_it_selected(app, lab_home):
    """After Stop the page stays on that run (it used to jump to another, with its own Stop in place)."""
    finished_run(lab_home, name=BUNDLED, model_from=bundled_model().path)
    store = RunStore(lab_home)
    summary = summarize(PRESETS["seed-final"])
    queued = store.create_run("seed-final", PRESETS["seed-final"], {"epochs": 20}, summary.total, summary.trainable)
    at = app("runs")
    at.selectbox(key="runs_chosen").set_value(queued).run()
    next(b for b in at.button if b.label == "Stop").click().run()
    assert store.get(queued).status == "stopped"
    assert at.selectbox(key="runs_chosen").value == queued


def test_runs_page_loads_an_architecture_back_and_deletes_after_confirming(app, lab_home):
    run_id = finished_run(lab_home, name="seed-first")
    at = app("runs")
    next(b for b in at.button if b.label == "Load architecture").click().run()
    assert at.session_state["arch"] == PRESETS["seed-first"]
    at = app("runs")
    next(b for b in at.button if b.label == "Yes, delete").click().run()
    assert RunStore(lab_home).get(run_id) is None
