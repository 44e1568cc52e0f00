"""Error analysis of a trained model on the test set: confusion matrix, per-digit accuracy, mistakes.

Saved beside the run as runs/<id>/analysis.json:
    {"version": 1,
     "accuracy": 0.9861,                  # derived from "confusion", for readers; checked on load
     "per_class_accuracy": [0.99, ...],   # derived likewise; null for a digit absent from the labels
     "confusion": [[977, 0, ...], ...],   # 10 rows (true digit) of 10 counts (predicted digit)
     "mistakes": [[index, true, predicted, confidence], ...]}  # most confident first
The worker writes it before marking a run finished; `analyse_run` makes it on demand for older runs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .data import Mnist, as_model_input
from .files import write_atomically
from .predict import Predictor
from .spec import NUM_CLASSES, SpecError
from .runs import RunStore
from .weights import ModelFileError, ensure_weights

FILE_NAME = "analysis.json"
VERSION = 1  # a file of another version reads as damaged, and analysing the run again replaces it


class AnalysisError(ValueError):
    """An analysis cannot be made, saved or read; the message says which run or file and why."""


@dataclass(frozen=True)
class Mistake:
    """One misclassified test digit."""

    index: int  # position in the test set, to show the image
    true: int
    predicted: int
    confidence: float  # the probability the model gave its wrong answer


@dataclass(frozen=True)
class Analysis:
    """How a model fares on each digit; accuracies are derived from the confusion matrix."""

    confusion: tuple[tuple[int, ...], ...]  # confusion[true][predicted]: a count
    mistakes: tuple[Mistake, ...]  # most confident first: the errors most worth a look

    @property
    def total(self) -> int:
        """How many digits were analysed (10,000 for the MNIST test set)."""
        return sum(map(sum, self.confusion))

    @property
    def correct(self) -> int:
        """How many were read right: the diagonal."""
        return sum(self.confusion[d][d] for d in range(NUM_CLASSES))

    @property
    def accuracy(self) -> float:
        """The share read right: what Keras reports as test accuracy."""
        return self.correct / self.total

    @property
    def per_class_accuracy(self) -> tuple[float | None, ...]:
        """Per true digit, the share read correctly: diagonal / row sum; None for a digit never shown."""
        return tuple(row[d] / sum(row) if sum(row) else None for d, row in enumerate(self.confusion))

    def to_dict(self) -> dict[str, Any]:
        """The JSON form described in the module docstring."""
        return {"version": VERSION, "accuracy": self.accuracy, "per_class_accuracy": list(self.per_class_accuracy),
                "confusion": [list(row) for row in self.confusion],
                "mistakes": [[m.index, m.true, m.predicted, m.confidence] for m in self.mistakes]}

    @classmethod
    def from_dict(cls, data: Any) -> Analysis:
        """Read `to_dict`'s form back; raises AnalysisError saying what is wrong with it."""
        _require(isinstance(data, dict) and data.get("version") == VERSION, f"not a version {VERSION} analysis")
        confusion = data.get("confusion")
        _require(isinstance(confusion, list) and len(confusion) == NUM_CLASSES
                 and all(isinstance(row, list) and len(row) == NUM_CLASSES and all(map(_is_count, row))
                         for row in confusion), "'confusion' is not 10 rows of 10 counts")
        analysis = cls(tuple(map(tuple, confusion)), ())
        _require(analysis.total > 0, "'confusion' counts no digits")
        rows = data.get("mistakes")
        _require(isinstance(rows, list) and all(_is_mistake(row, analysis.total) for row in rows),
                 "'mistakes' must be [index, true, predicted, confidence] rows of wrong answers")
        wrong = analysis.total - analysis.correct
        _require(len(rows) == wrong, f"{len(rows)} mistakes listed, but 'confusion' counts {wrong}")
        _require(_close(data.get("accuracy"), analysis.accuracy)
                 and isinstance(data.get("per_class_accuracy"), list)
                 and len(data["per_class_accuracy"]) == NUM_CLASSES
                 and all(map(_close, data["per_class_accuracy"], analysis.per_class_accuracy)),
                 "the accuracies disagree with 'confusion'")
        return cls(analysis.confusion, tuple(Mistake(*row) for row in rows))


def analyse(probabilities: np.ndarray, labels: np.ndarray) -> Analysis:
    """The analysis of class probabilities (N, 10) against true labels (N,); raises AnalysisError for bad input."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if probabilities.ndim != 2 or probabilities.shape[1] != NUM_CLASSES or labels.shape != probabilities.shape[:1] \
            or not len(labels):
        raise AnalysisError(f"Expected probabilities (N, {NUM_CLASSES}) and labels (N,) for some N >= 1, "
                            f"got {probabilities.shape} and {labels.shape}.")
    if labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() >= NUM_CLASSES:
        raise AnalysisError(f"Labels must be integers 0-{NUM_CLASSES - 1}.")
    if not np.isfinite(probabilities).all():
        raise AnalysisError("The model outputs NaN or infinite probabilities (its training diverged).")
    labels = labels.astype(np.int64)
    predicted = probabilities.argmax(axis=1)
    confusion = np.bincount(labels * NUM_CLASSES + predicted, minlength=NUM_CLASSES ** 2)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = np.lexsort((wrong, -confidence))  # most confident first; ties by test-set position
    mistakes = tuple(Mistake(int(wrong[i]), int(labels[wrong[i]]), int(predicted[wrong[i]]), float(confidence[i]))
                     for i in order)
    return Analysis(tuple(map(tuple, confusion.reshape(NUM_CLASSES, NUM_CLASSES).tolist())), mistakes)


def analysis_path(store: RunStore, run_id: int) -> Path:
    """runs/<id>/analysis.json, beside the run's model."""
    return store.run_dir(run_id) / FILE_NAME


def save_analysis(store: RunStore, run_id: int, analysis: Analysis) -> None:
    """Write runs/<id>/analysis.json atomically: a reader sees the old file or the new one, never half of one."""
    path = analysis_path(store, run_id)
    try:
        write_atomically(path, json.dumps(analysis.to_dict()))
    except OSError as err:
        raise AnalysisError(f"Cannot save the analysis of run {run_id} as {path}: {err.strerror or err}.") from None


def load_analysis(store: RunStore, run_id: int) -> Analysis | None:
    """The run's saved analysis, None if it has none; raises AnalysisError for an unreadable or damaged file."""
    path = analysis_path(store, run_id)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise AnalysisError(f"The analysis file {path} cannot be read ({err.strerror or err}).") from None
    try:
        return Analysis.from_dict(json.loads(raw))
    except (ValueError, RecursionError) as err:  # bad JSON, bad UTF-8, or AnalysisError from from_dict
        raise AnalysisError(f"The analysis file {path} is damaged ({err}); analyse the run again "
                            f"to replace it.") from None


def analyse_run(store: RunStore, run_id: int, data: Mnist) -> Analysis:
    """Evaluate the run's saved model on the test set with the numpy forward pass (no TensorFlow), save, return.

    For runs that finished before analyses were saved, or whose file is damaged: ~4 s for the 10k test
    digits on 2 CPU cores with single-threaded BLAS, ten times that when BLAS threads fight other busy
    processes for the cores. Raises AnalysisError when the run or its model cannot be used.
    """
    run = store.get(run_id)
    if run is None:
        raise AnalysisError(f"Run {run_id} does not exist (it was deleted).")
    try:
        predictor = Predictor(run.spec, ensure_weights(store.model_path(run_id), run.spec_json))
    except (SpecError, ModelFileError) as err:
        raise AnalysisError(f"Run {run_id} cannot be analysed: {err}") from None
    analysis = analyse(predictor.probabilities_batch(as_model_input(data.x_test)), data.y_test)
    save_analysis(store, run_id, analysis)
    return analysis


def _require(ok: bool, problem: str) -> None:
    if not ok:
        raise AnalysisError(problem)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_mistake(row: Any, total: int) -> bool:
    """[index, true, predicted, confidence]: a test-set position, two different digits, a probability."""
    if not (isinstance(row, list) and len(row) == 4 and all(map(_is_count, row[:3]))):
        return False
    index, true, predicted, confidence = row
    return (index < total and true < NUM_CLASSES and predicted < NUM_CLASSES and true != predicted
            and isinstance(confidence, (int, float)) and not isinstance(confidence, bool) and 0 <= confidence <= 1)


def _close(stored: Any, derived: float | None) -> bool:
    """A stored accuracy matches the derived one (None for a digit never shown)."""
    if derived is None or stored is None:
        return stored is derived
    return isinstance(stored, (int, float)) and not isinstance(stored, bool) and math.isclose(stored, derived,
                                                                                           abs_tol=1e-9)
