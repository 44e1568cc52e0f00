"""The trained models the app can use: runs that kept a usable model, and the one shipped with the app.

Whether a run has a usable model is decided here once (`model_problem`): the run's state keeps a model
(`Run.has_model`), and its file is present and readable. The Predict, Runs and Train pages and the
home page all ask this module, never the disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .evidence import accuracy_text, learned
from .predict import Predictor
from .recipe import Recipe, recipe_name
from .report import recipe_text
from .spec import Architecture
from .history import Run
from .runs import RunStore
from .weights import ModelFileError, check_model_file, ensure_weights
from .words import plural

BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
ENDED = {"completed": "completed", "stopped": "was stopped", "failed": "failed", "interrupted": "was interrupted"}


@dataclass(frozen=True)
class ModelChoice:
    """A trained model the Predict page can use: a run's, or the one shipped with the app."""

    title: str  # 'Run 3: seed-final, stopped' or 'Bundled seed-final'
    spec_json: str
    path: Path  # its .keras file; the weights file lies beside it
    test_accuracy: float | None
    run_id: int | None = None
    description: str = ""  # how it was trained, in one line
    from_study: bool = False  # one of a study's many runs

    @property
    def spec(self) -> Architecture:
        """The validated architecture; raises SpecError if the spec is damaged."""
        return Architecture.from_json(self.spec_json)

    @property
    def learned(self) -> bool:
        """Whether its test accuracy is clearly above always answering one digit (`evidence.learned`)."""
        return learned(self.test_accuracy)

    @property
    def label(self) -> str:
        return f"{self.title} ({accuracy_text(self.test_accuracy)})"


def model_problem(store: RunStore, run: Run) -> str | None:
    """Why `run` has no usable model, in one sentence for the page; None when it has one.

    Usable: the run ended keeping a model (`Run.has_model`: an epoch finished) and its file is present and
    readable (`check_model_file`).
    """
    if not run.has_model:
        if not run.finished:
            return f"Run {run.id} has no model yet: it is {run.status}."
        return f"Run {run.id} has no model: it {ENDED[run.status]} before its first epoch ended."
    try:
        check_model_file(store.model_path(run.id))
    except ModelFileError as err:
        return f"Run {run.id}'s model cannot be used: {err}"
    return None


def usable(store: RunStore, run: Run) -> bool:
    """Whether `run` has a model to draw with, download and analyse (`model_problem`)."""
    return model_problem(store, run) is None


def unavailable_reason(store: RunStore, run_id: int) -> str:
    """Why run `run_id` is not offered, for a link that names it."""
    run = store.get(run_id)
    if run is None:
        return f"Run {run_id} does not exist (it was deleted, or never started)."
    return model_problem(store, run) or f"Run {run_id}'s model is not offered."


def bundled_model() -> ModelChoice:
    """The model shipped in `mnist_core/bundled`, so a first visitor can draw at once."""
    meta = json.loads((BUNDLED_DIR / "model.json").read_text())
    recipe = Recipe.from_dict(meta["recipe"])
    return ModelChoice(f"Bundled {meta['spec']['name']}", json.dumps(meta["spec"]), BUNDLED_DIR / "model.keras",
                       meta["test_accuracy"],
                       # Two lines at 1024 px, so the canvas below still fits a 768 px projector.
                       description=f"Shipped with the app: {meta['spec']['name']}, {meta['test_accuracy']:.2%} on "
                                   f"MNIST's 10,000 test digits after the {recipe_name(recipe)} recipe "
                                   f"({plural(recipe.epochs, 'epoch')}{', augmented' if recipe.augments else ''}; the Train "
                                   f"page shows its settings).")


def available_models(store: RunStore) -> list[ModelChoice]:
    """Finished runs with a usable model (`model_problem`), and the bundled model, most accurate first (the
    newest first among equals). Models that did not learn come last (`ModelChoice.learned`)."""
    runs = [run for run in store.list(("completed", "stopped")) if usable(store, run)]
    choices = [ModelChoice(f"Run {run.id}: {run.name}, {run.status}", run.spec_json, store.model_path(run.id),
                           run.test_accuracy, run.id,
                           f"Run {run.id}, {run.status}: test accuracy {accuracy_text(run.test_accuracy)}. Trained in "
                           f"this lab, recipe: {recipe_text(run.recipe)}.", run.study_id is not None)
               for run in runs] + [bundled_model()]
    # sorted() keeps the store's newest-first order among equal accuracies
    return sorted(choices, key=lambda choice: -1.0 if choice.test_accuracy is None else -choice.test_accuracy)


def best_model(choices: list[ModelChoice]) -> ModelChoice:
    """The most accurate choice that learned (choices come most accurate first, as `available_models` gives them)."""
    return next((choice for choice in choices if choice.learned), choices[0])


def load_predictor(choice: ModelChoice) -> Predictor:
    """The numpy engine for the choice's validated spec and weights file (built once from an older run's
    .keras file); raises ModelFileError or SpecError with a sentence for the page."""
    return Predictor(choice.spec, ensure_weights(choice.path, choice.spec_json))
