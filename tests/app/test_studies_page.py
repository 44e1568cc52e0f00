"""The Studies page and the Runs page's error analysis in AppTest, against a real run store."""

from mnist_core.budget import summarize
from mnist_core.catalogue import bundled_model
from mnist_core.evidence import accuracy_text
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from mnist_core.study import variants
from tests.app.conftest import texts
from tests.app.test_other_pages import BUNDLED, finished_run


def test_one_click_queues_a_study_and_stop_ends_all_of_it(app, lab_home):
    at = app("studies", query={"arch": PRESETS["seed-first"].to_code()})
    assert "No studies yet. Press 'Study this architecture' to queue one." in texts(at.info)
    next(b for b in at.button if b.label == "Study this architecture").click().run()
    store = RunStore(lab_home)
    runs = store.list()
    assert len(runs) == len(variants(PRESETS["seed-first"]))
    assert {run.recipe["epochs"] for run in runs} == {1} and {run.recipe["seed"] for run in runs} == {0}
    assert at.get("progress")[0].proto.text.startswith(f"0 of {len(runs)} runs done")
    next(b for b in at.button if b.label == "Stop the whole study").click().run()
    assert all(store.get(run.id).status in ("stopped", "running") for run in runs)
    assert sum(store.get(run.id).status == "queued" for run in runs) == 0


def test_a_finished_study_shows_each_variant_against_the_baseline(app, lab_home):
    """Hand-made results: the table lists every variant with its change in params and accuracy."""
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    plan = variants(arch)
    study_id = store.create_study("Ablation of seed-final", arch, {"epochs": 2, "seed": 0}, [0])
    for number, variant in enumerate(plan):
        counts = summarize(variant.arch)
        run_id = store.create_run(variant.label, variant.arch, {"epochs": 2, "seed": 0}, counts.total,
                                  counts.trainable, study_id=study_id, variant=variant.key)
        store.claim_next(0)
        store.finish(run_id, "completed", test_accuracy=0.97 + 0.001 * (number % 3))
    at = app("studies")
    table = at.dataframe[0].value
    assert list(table["variant"])[0] == "Baseline" and len(table) == len(plan)
    assert "Drop BatchNorm after conv 2" in list(table["variant"])
    assert at.get("plotly_chart"), "the scatter of params against accuracy"
    at = app("architecture")  # the advisor now shows what each measured toggle did
    effects = dict(zip(at.dataframe[0].value["edit"], at.dataframe[0].value["measured effect"]))
    effect = effects["Drop BatchNorm after conv 2"]
    assert effect.startswith(("+", "-")) and " points, " in effect and "(study 1: 1 seed x 120,000 training images)" in effect


def test_a_study_that_did_not_learn_shows_no_findings_here_or_in_the_advisor(app, lab_home):
    """Every run at always-"1" (11.35%) but one lucky variant: the table says so, and no verdict or
    measured effect is drawn from it (the old first look reported "better, +4.75%" here)."""
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    plan = variants(arch)[:3]
    study_id = store.create_study("Ablation of seed-final", arch, {"epochs": 1, "seed": 0}, [0])
    for variant, accuracy in zip(plan, (0.1135, 0.161, 0.1135)):
        counts = summarize(variant.arch)
        run_id = store.create_run(variant.label, variant.arch, {"epochs": 1, "seed": 0}, counts.total,
                                  counts.trainable, study_id=study_id, variant=variant.key)
        store.claim_next(0)
        store.finish(run_id, "completed", test_accuracy=accuracy)
    at = app("studies")
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["test accuracy"]) == ["—", "16.10%", "—"]  # a mean of the seeds that learned
    assert list(table["verdict"]) == ["did not learn: no evidence", "no comparison: the baseline did not learn",
                                      "did not learn: no evidence"]
    assert list(table["seeds"])[0] == "0: did not learn"
    at = app("architecture")
    assert not at.exception
    assert set(at.dataframe[0].value["measured effect"]) == {""}


def test_runs_page_analyses_an_old_runs_mistakes_on_demand(app, lab_home):
    run_id = finished_run(lab_home, name=BUNDLED, accuracy=0.9946, model_from=bundled_model().path)
    at = app("runs")
    next(b for b in at.button if b.label == "Analyse this run's mistakes").click().run()
    accuracy = bundled_model().test_accuracy  # the analysis of the bundled model's file says what its metadata says
    misread = f"{accuracy_text(accuracy)} right: {round((1 - accuracy) * 10_000)} of 10,000 test digits misread."
    assert any(text.startswith(misread) for text in texts(at.markdown))
    assert len(at.get("plotly_chart")) >= 3  # overlay, confusion matrix, per-class accuracy
    assert len(at.image) == 30
    assert (RunStore(lab_home).run_dir(run_id) / "analysis.json").exists()
