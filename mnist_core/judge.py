"""Judge models on the user's own digits: each model's accuracy, and which samples it gets wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .catalogue import ModelChoice, available_models, load_predictor
from .samples import SIZE, Sample
from .spec import SpecError
from .runs import RunStore
from .weights import ModelFileError


@dataclass(frozen=True)
class Miss:
    """A sample a model got wrong."""

    sample_id: int
    label: int  # the user's label
    predicted: int
    confidence: float  # the model's probability for `predicted`


@dataclass(frozen=True)
class Verdict:
    """One model's result on the sample set, or why it could not be judged."""

    model: str  # the choice's label, as the Predict page shows it
    run_id: int | None  # None for the bundled model
    n: int  # samples judged
    misses: tuple[Miss, ...] = ()
    error: str | None = None  # why the model could not be loaded; then nothing was judged

    @property
    def accuracy(self) -> float | None:
        """Correct / n; None when the model failed or there were no samples."""
        return None if self.error or not self.n else (self.n - len(self.misses)) / self.n

    def row(self) -> dict[str, Any]:
        """One table row: model, accuracy, wrong, n, error."""
        return {"model": self.model, "accuracy": self.accuracy,
                "wrong": None if self.error else len(self.misses), "n": self.n, "error": self.error or ""}


def evaluate(choice: ModelChoice, samples: Sequence[Sample]) -> Verdict:
    """Every sample through one model, in one batched pass; a model that cannot be loaded gives its error."""
    try:
        predictor = load_predictor(choice)
    except (ModelFileError, SpecError) as err:
        return Verdict(choice.label, choice.run_id, len(samples), error=str(err))
    images = np.array([sample.digit28 for sample in samples], dtype=np.float32).reshape(-1, SIZE, SIZE)
    probabilities = predictor.probabilities_batch(images)
    digits = probabilities.argmax(axis=1)
    misses = tuple(Miss(sample.id, sample.label, int(digit), float(row[digit]))
                   for sample, digit, row in zip(samples, digits, probabilities) if digit != sample.label)
    return Verdict(choice.label, choice.run_id, len(samples), misses)


def evaluate_all(store: RunStore, samples: Sequence[Sample]) -> list[Verdict]:
    """Every available model (runs newest first, the bundled one last) on the same samples."""
    return [evaluate(choice, samples) for choice in available_models(store)]
