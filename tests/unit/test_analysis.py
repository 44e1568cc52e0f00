"""Error analysis per run: counts checked against direct counts, the JSON file, the worker and on-demand paths."""

import json
import os
import time

import numpy as np
import pytest

from mnist_core.analysis import (Analysis, AnalysisError, analyse, analyse_run, analysis_path, load_analysis,
                                 save_analysis)
from mnist_core.budget import summarize
from mnist_core.catalogue import BUNDLED_DIR, bundled_model, load_predictor
from mnist_core.charts import confusion_figure, per_class_figure
from mnist_core.data import as_model_input
from mnist_core.jobs import Lab
from mnist_core.predict import Predictor
from mnist_core.recipe import Recipe
from mnist_core.runner import analysis_or_log
from mnist_core.spec import PRESETS, Architecture
from mnist_core.runs import RunStore
from tests.models import copy_model

QUICK = Recipe(epochs=1, train_subset=256, progress_every=1)
BUNDLED = bundled_model().spec  # the architecture the shipped model has
SAMPLE = 500  # test digits checked through the single-image forward pass (~40 ms each on a busy CPU)


def one_hot(predicted, confidence):
    """Probabilities that put `confidence` on each predicted digit and spread the rest evenly."""
    probabilities = np.full((len(predicted), 10), 0.0)
    for row, (digit, p) in enumerate(zip(predicted, confidence)):
        probabilities[row] = (1 - p) / 9
        probabilities[row, digit] = p
    return probabilities


def direct_count(labels, predicted):
    """The confusion matrix counted one digit at a time: the oracle for `analyse`'s bincount."""
    matrix = [[0] * 10 for _ in range(10)]
    for true, guess in zip(labels, predicted):
        matrix[true][guess] += 1
    return tuple(map(tuple, matrix))


@pytest.fixture(scope="module")
def bundled_probabilities(mnist):
    """The bundled model's probabilities for the first SAMPLE test digits, one image at a time."""
    predictor = load_predictor(bundled_model())
    return np.stack([predictor.probabilities(image) for image in as_model_input(mnist.x_test[:SAMPLE])])


@pytest.fixture
def store(lab_home):
    return RunStore(lab_home)


def finished_run(store, model_path=None, status="completed", accuracy=None) -> int:
    """A run as a worker leaves it: created, claimed, its model copied in, finished."""
    summary = summarize(BUNDLED)
    run_id = store.create_run("analysed", BUNDLED, QUICK.to_dict(), summary.total, summary.trainable)
    store.claim_next(os.getpid())
    if model_path is not None:
        copy_model(model_path, store.model_path(run_id))
    store.finish(run_id, status, test_accuracy=accuracy)
    return run_id


def test_a_hand_made_case_counts_rows_as_true_and_columns_as_predicted():
    """Five digits, two read wrong: the matrix, per-digit and overall accuracy match a count by hand."""
    labels = np.array([0, 0, 1, 2, 2], dtype=np.uint8)
    probabilities = one_hot([0, 1, 1, 2, 0], [0.9, 0.6, 0.8, 0.7, 0.95])
    analysis = analyse(probabilities, labels)
    assert analysis.confusion[0][:3] == (1, 1, 0) and analysis.confusion[1][:3] == (0, 1, 0)
    assert analysis.confusion[2][:3] == (1, 0, 1)
    assert analysis.confusion == direct_count(labels, [0, 1, 1, 2, 0])
    assert analysis.per_class_accuracy[:3] == (0.5, 1.0, 0.5)
    assert analysis.per_class_accuracy[3:] == (None,) * 7  # digits never shown have no accuracy
    assert analysis.accuracy == 3 / 5 and analysis.total == 5


def test_mistakes_come_most_confident_first_with_ties_by_position():
    labels = np.array([3, 3, 3, 3, 5, 7])
    analysis = analyse(one_hot([8, 3, 5, 8, 6, 1], [0.5, 0.99, 0.9, 0.5, 0.7, 0.3]), labels)
    assert [(m.index, m.true, m.predicted) for m in analysis.mistakes] == \
        [(2, 3, 5), (4, 5, 6), (0, 3, 8), (3, 3, 8), (5, 7, 1)]
    assert [m.confidence for m in analysis.mistakes] == pytest.approx([0.9, 0.7, 0.5, 0.5, 0.3])


@pytest.mark.parametrize("probabilities, labels, message", [
    (np.ones((3, 9)), np.zeros(3, dtype=int), r"probabilities \(N, 10\)"),
    (np.ones((3, 10)), np.zeros(2, dtype=int), r"probabilities \(N, 10\)"),
    (np.ones((0, 10)), np.zeros(0, dtype=int), r"N >= 1"),
    (np.ones((2, 10)), np.array([0, 10]), "integers 0-9"),
    (np.ones((2, 10)), np.array([0.0, 1.0]), "integers 0-9"),
    (np.full((2, 10), np.nan), np.array([0, 1]), "diverged"),
])
def test_unusable_input_is_an_analysis_error(probabilities, labels, message):
    with pytest.raises(AnalysisError, match=message):
        analyse(probabilities, labels)


def test_the_bundled_models_confusion_matches_a_direct_count(mnist, bundled_probabilities):
    """500 MNIST test digits through the numpy forward pass: the matrix equals a count, the rows its accuracies."""
    labels = mnist.y_test[:SAMPLE]
    predicted = bundled_probabilities.argmax(axis=1)
    analysis = analyse(bundled_probabilities, labels)
    assert analysis.confusion == direct_count(labels, predicted)
    assert analysis.total == SAMPLE and analysis.accuracy == np.mean(predicted == labels)
    for digit, row in enumerate(analysis.confusion):
        assert analysis.per_class_accuracy[digit] == row[digit] / sum(row)
    assert len(analysis.mistakes) == SAMPLE - analysis.correct
    assert all(labels[m.index] == m.true and predicted[m.index] == m.predicted for m in analysis.mistakes)


def test_the_batched_forward_pass_equals_one_image_at_a_time(mnist, bundled_probabilities):
    predictor = load_predictor(bundled_model())
    batched = predictor.probabilities_batch(as_model_input(mnist.x_test[:SAMPLE]))
    assert batched.shape == (SAMPLE, 10) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, bundled_probabilities, rtol=0, atol=1e-6)
    assert predictor.probabilities_batch(np.zeros((0, 28, 28))).shape == (0, 10)


def test_the_batched_pass_keeps_images_apart_with_strides_that_do_not_divide_28(mnist, tmp_path):
    """Pools of 3 then 2 (stride 6): each image must start on a multiple of 6 in the strip to get its own features."""
    import keras

    from mnist_core.model import build_model
    from mnist_core.weights import weights_path
    from mnist_core.runner import save_model

    arch = Architecture.from_code("c3x8b_p3_c3x8_p2_c1x10l_gap_sm")
    keras.utils.set_random_seed(1)
    save_model(build_model(arch), tmp_path / "model.keras")
    predictor = Predictor(arch, weights_path(tmp_path / "model.keras"))
    images = as_model_input(mnist.x_test[:40])
    single = np.stack([predictor.probabilities(image) for image in images])
    np.testing.assert_allclose(predictor.probabilities_batch(images), single, rtol=0, atol=1e-6)


def test_json_round_trip_and_missing_file(store, bundled_probabilities, mnist):
    analysis = analyse(bundled_probabilities, mnist.y_test[:SAMPLE])
    assert Analysis.from_dict(json.loads(json.dumps(analysis.to_dict()))) == analysis
    run_id = finished_run(store)
    assert load_analysis(store, run_id) is None
    save_analysis(store, run_id, analysis)
    assert load_analysis(store, run_id) == analysis
    assert [p.name for p in store.run_dir(run_id).iterdir() if p.suffix == ".tmp"] == []  # no temp file left


def damage(data: dict, how: str) -> str:
    """The JSON text of `data` damaged in one way."""
    if how == "truncated":
        return json.dumps(data)[:200]
    if how == "not-an-object":
        return "[1, 2, 3]"
    if how == "old-version":
        return json.dumps({**data, "version": 0})
    if how == "negative-count":
        return json.dumps({**data, "confusion": [[-1] + row[1:] for row in data["confusion"]]})
    if how == "count-changed":  # one extra correct 0: the stored accuracies no longer agree
        return json.dumps({**data, "confusion": [[data["confusion"][0][0] + 1] + data["confusion"][0][1:]]
                           + data["confusion"][1:]})
    if how == "mistake-dropped":
        return json.dumps({**data, "mistakes": data["mistakes"][1:]})
    if how == "mistake-correct":
        return json.dumps({**data, "mistakes": [[0, 4, 4, 0.5]] + data["mistakes"][1:]})
    return "\xff\xfe garbage"


@pytest.mark.parametrize("how, reason", [
    ("truncated", "Unterminated|Expecting"), ("not-an-object", "not a version 1 analysis"),
    ("old-version", "not a version 1 analysis"), ("negative-count", "10 rows of 10 counts"),
    ("count-changed", "mistakes listed|disagree"), ("mistake-dropped", "mistakes listed"),
    ("mistake-correct", "rows of wrong answers"), ("garbage", "Expecting|decode"),
])
def test_a_damaged_file_is_a_clear_error(store, bundled_probabilities, mnist, how, reason):
    """Each kind of damage: an AnalysisError naming the file, what is wrong and what to do; never a crash."""
    run_id = finished_run(store)
    save_analysis(store, run_id, analyse(bundled_probabilities, mnist.y_test[:SAMPLE]))
    path = analysis_path(store, run_id)
    path.write_bytes(damage(json.loads(path.read_text()), how).encode("latin-1"))
    with pytest.raises(AnalysisError, match=reason) as caught:
        load_analysis(store, run_id)
    assert str(path) in str(caught.value) and "analyse the run again" in str(caught.value)


def test_analyse_run_on_the_bundled_model_matches_its_recorded_accuracy(store, mnist, capsys):
    """All 10,000 test digits, numpy only: the accuracy Keras recorded for the bundled model, within 0.01%."""
    recorded = json.loads((BUNDLED_DIR / "model.json").read_text())["test_accuracy"]
    run_id = finished_run(store, BUNDLED_DIR / "model.keras", accuracy=recorded)
    started = time.perf_counter()
    analysis = analyse_run(store, run_id, mnist)
    with capsys.disabled():
        print(f"\nanalyse_run, 10k test digits, numpy: {time.perf_counter() - started:.1f} s")
    assert analysis.total == 10_000 and abs(analysis.accuracy - recorded) <= 1e-4
    assert load_analysis(store, run_id) == analysis
    assert analysis.mistakes[0].confidence >= analysis.mistakes[-1].confidence


def test_analyse_run_without_a_model_or_run_is_an_analysis_error(store, mnist):
    run_id = finished_run(store, status="failed")
    with pytest.raises(AnalysisError, match=f"Run {run_id} cannot be analysed: .*missing"):
        analyse_run(store, run_id, mnist)
    with pytest.raises(AnalysisError, match="Run 99 does not exist"):
        analyse_run(store, 99, mnist)


def test_a_trained_run_is_finished_with_its_analysis_beside_it(lab_home, mnist_dir):
    """A real worker trains a tiny run: analysis.json is written before the run is marked finished, and its
    accuracy is the test accuracy Keras recorded for the run."""
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    try:
        run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=180)
    finally:
        lab.shutdown()
    assert run.status == "completed", run.error
    analysis = load_analysis(lab.store, run.id)
    assert analysis is not None and analysis.total == 10_000
    assert abs(analysis.accuracy - run.test_accuracy) <= 1e-4
    assert analysis_path(lab.store, run.id).stat().st_mtime <= run.finished_at


def test_an_analysis_failure_in_the_worker_is_logged_not_raised(store, mnist, capsys):
    """A run whose training diverged still completes; its analysis is left for the Runs page, with a log line."""
    run_id = finished_run(store)
    diverged = np.full((len(mnist.y_test), 10), np.nan, dtype=np.float32)
    assert analysis_or_log(diverged, mnist, run_id) is None
    assert f"cannot analyse run {run_id} (AnalysisError: The model outputs NaN" in capsys.readouterr().out
    assert load_analysis(store, run_id) is None


def test_figures_serialise_and_show_the_counts(bundled_probabilities, mnist):
    analysis = analyse(bundled_probabilities, mnist.y_test[:SAMPLE])
    figure = json.loads(confusion_figure(analysis.confusion).to_json())
    correct, errors = figure["data"]
    assert [correct["z"][d][d] for d in range(10)] == [analysis.confusion[d][d] for d in range(10)]
    assert sum(int(text) for row in errors["text"] for text in row if text) == len(analysis.mistakes)
    bars = json.loads(per_class_figure(analysis.per_class_accuracy).to_json())["data"][0]
    weakest = int(np.argmin(analysis.per_class_accuracy))
    assert bars["marker"]["color"][weakest] != bars["marker"]["color"][(weakest + 1) % 10]
    json.loads(per_class_figure([0.9, None] + [1.0] * 8).to_json())  # a digit with no test images
