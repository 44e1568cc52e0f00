"""Judging models on the user's digits, checked against a direct count with the same predictor."""

import numpy as np
import pytest

from mnist_core.budget import summarize
from mnist_core.catalogue import bundled_model, load_predictor
from mnist_core.judge import Miss, evaluate, evaluate_all
from mnist_core.predict import Predictor
from mnist_core.samples import SampleStore
from mnist_core.spec import PRESETS
from mnist_core.runs import RunStore
from mnist_core.weights import weights_path
from tests.models import copy_model


def finished(store: RunStore) -> int:
    """A completed run whose model file is a copy of the bundled model, with its architecture."""
    arch = bundled_model().spec
    summary = summarize(arch)
    run_id = store.create_run(arch.name, arch, {"epochs": 1}, summary.total, summary.trainable)
    store.claim_next(0)
    store.finish(run_id, "completed", test_accuracy=0.97)
    copy_model(bundled_model().path, store.model_path(run_id))
    return run_id


@pytest.fixture
def mislabelled(lab_home, mnist):
    """50 MNIST test digits, every 7th given the wrong label, as the user's samples."""
    samples = SampleStore(RunStore(lab_home))
    labels = [int(label) for label in mnist.y_test[:50]]
    for index in range(0, 50, 7):
        labels[index] = (labels[index] + 1) % 10
    for image, label in zip(mnist.x_test[:50], labels):
        samples.add(image, label, "canvas")
    return samples, labels


def test_accuracy_and_wrong_list_equal_a_direct_count(mnist, mislabelled):
    samples, labels = mislabelled
    predictor = load_predictor(bundled_model())
    expected = []
    for index, (image, label) in enumerate(zip(mnist.x_test[:50], labels)):
        probabilities = predictor.probabilities(image.astype(np.float32) / 255.0)
        digit = int(probabilities.argmax())
        if digit != label:
            expected.append(Miss(index + 1, label, digit, pytest.approx(float(probabilities.max()))))
    verdict = evaluate(bundled_model(), samples.list())
    assert verdict.n == 50 and verdict.error is None
    assert verdict.accuracy == (50 - len(expected)) / 50
    assert sorted(verdict.misses, key=lambda miss: miss.sample_id) == expected
    assert {index + 1 for index in range(0, 50, 7)} <= {miss.sample_id for miss in verdict.misses}
    assert verdict.row() == {"model": bundled_model().label, "accuracy": verdict.accuracy,
                             "wrong": len(expected), "n": 50, "error": ""}


def test_a_broken_model_is_reported_and_the_others_still_evaluate(mislabelled):
    """A damaged file is not offered at all (`catalogue.model_problem`); one that only fails as it loads, here
    weights saved for another architecture, is judged as failed, with why."""
    samples, _ = mislabelled
    store = samples.runs
    good, broken, damaged = finished(store), finished(store), finished(store)
    with np.load(weights_path(store.model_path(broken))) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(weights_path(store.model_path(broken)), **{**arrays, "spec": np.array(PRESETS["seed-final"].to_json())})
    store.model_path(damaged).write_bytes(b"garbage, not a .keras archive")
    verdicts = evaluate_all(store, samples.list()[:10])
    assert [verdict.run_id for verdict in verdicts] == [None, broken, good]  # most accurate first, as Predict lists
    bundled, failed, run = verdicts
    assert "does not hold weights for this architecture" in failed.error and failed.accuracy is None
    assert failed.row()["wrong"] is None and failed.row()["n"] == 10
    assert run.error is None and run.misses == bundled.misses and run.accuracy == bundled.accuracy


def test_an_empty_set_has_no_accuracy():
    verdict = evaluate(bundled_model(), [])
    assert (verdict.n, verdict.accuracy, verdict.misses, verdict.error) == (0, None, (), None)


def test_judging_reads_the_set_in_one_batched_pass_with_the_answers_of_one_at_a_time(mislabelled, monkeypatch):
    """evaluate runs the model once on all 50 samples, never digit by digit, and misses what reading each alone misses."""
    samples, _ = mislabelled
    saved = samples.list()
    predictor = load_predictor(bundled_model())
    alone = [predictor.probabilities(sample.digit28) for sample in saved]
    expected = tuple(Miss(sample.id, sample.label, int(p.argmax()), pytest.approx(float(p.max()), abs=1e-6))
                     for sample, p in zip(saved, alone) if p.argmax() != sample.label)
    batches, batch = [], Predictor.probabilities_batch
    monkeypatch.setattr(Predictor, "probabilities", lambda self, digit28: pytest.fail("read one digit at a time"))
    monkeypatch.setattr(Predictor, "probabilities_batch",
                        lambda self, images: batches.append(len(images)) or batch(self, images))
    verdict = evaluate(bundled_model(), saved)
    assert batches == [50] and verdict.misses == expected and len(expected) >= 8
