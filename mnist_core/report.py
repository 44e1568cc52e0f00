"""Plain rows describing runs, for the history table (the page only renders them)."""

from __future__ import annotations

import time
from typing import Any, Sequence

from .budget import Budget, Verdict
from .events import Event
from .evidence import NO_ACCURACY, accuracy_text
from .history import Run
from .recipe import FIELD, Recipe, closest_recipe
from .spec import Architecture, SpecError

UNSETTLED_GAP = 0.3  # training this far above the test: not overfitting on MNIST, but unsettled BatchNorm


def architecture_text(arch: Architecture) -> str:
    """A one-line summary: '3x3:16 bn do0.1 · 3x3:32 bn do0.1 · 1x1:16 · pool · ... · 1x1:10'."""
    return " · ".join(text for text in (layer.text() for layer in arch.layers) if text)


NONE = NO_ACCURACY  # any table cell with no value is the same dash: Streamlit would print "None"


def percent(value: float | None) -> str:
    """A table cell for an accuracy: '98.61%', or a dash when there is none."""
    return NONE if value is None else f"{value:.2%}"


def epochs_text(run: Run, events: Sequence[Event]) -> str:
    """Full epochs done out of those planned, e.g. '7 / 20'."""
    return f"{sum(event.kind == 'epoch' for event in events)} / {run.recipe.get('epochs', '?')}"


def progress_text(last: Event, recipe: Recipe) -> str:
    """The live progress line, e.g. 'Epoch 2/20, batch 30/79 · ETA 34 s'.

    What follows the last batches is said, so a bar near its end that waits for it does not look stuck:
    the BatchNorm re-estimate (when the recipe has it), then saving the model and reading the test set.
    """
    epoch = int(last.epoch - 1e-9) + 1
    if last.kind == "epoch" and epoch == recipe.epochs:
        return f"Epoch {epoch}/{recipe.epochs} done · saving the model and finding its mistakes on the test set"
    batches = round(last.batch / (last.epoch % 1 or 1)) if last.kind == "batch" else last.batch
    eta = f" · ETA {last.eta:.0f} s" if last.eta is not None else ""
    then = " · then BatchNorm is re-estimated on the clean training images" \
        if recipe.recalibrate_bn and epoch == recipe.epochs else ""
    return f"Epoch {epoch}/{recipe.epochs}, batch {last.batch}/{batches}{eta}{then}"


def spec_or_error(run: Run) -> tuple[Architecture | None, str | None]:
    """A run's architecture, or a message saying why its stored spec cannot be used."""
    try:
        return run.spec, None
    except SpecError as err:
        return None, f"Run {run.id}'s stored architecture is invalid: {err}"


def run_rows(runs: list[Run], budget: Budget, epochs_done: dict[int, int]) -> list[dict[str, Any]]:
    """One dict per run with the columns of the Runs page's table, the most telling first."""
    rows = []
    for run in runs:
        try:
            architecture = architecture_text(run.spec)
        except SpecError as err:
            architecture = f"invalid spec: {err}"
        counted = run.total_params if budget.counting == "total" else run.trainable_params
        verdict = Verdict(counted, budget.limit, budget.counting)
        recipe = run.recipe
        rows.append({
            "run": run.id,
            "status": run.status,
            "test accuracy": accuracy_text(run.test_accuracy),
            "total params": run.total_params,
            "budget": verdict.short,
            "architecture": architecture,
            "epochs": f"{epochs_done.get(run.id, 0)} / {recipe.get('epochs')}",
            "recipe": recipe_text(recipe),
            "name": run.name,
            "trainable params": run.trainable_params,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)),
            "duration": f"{run.duration:,.0f} s" if run.duration is not None else NONE,
            "note": run.error or "",
        })
    return rows


def unsettled_batchnorm(run: Run, events: Sequence[Event]) -> str | None:
    """Why a run's test accuracy is far under its training accuracy, where the cause is BatchNorm's moving
    averages that too few batches left unsettled (a short run without the re-estimate); None otherwise."""
    trained = [event.accuracy for event in events if event.kind == "epoch"]
    if run.test_accuracy is None or not trained or trained[-1] - run.test_accuracy < UNSETTLED_GAP:
        return None
    arch, _ = spec_or_error(run)
    if arch is None or not any(getattr(layer, "batchnorm", False) for layer in arch.layers) \
            or run.recipe.get("recalibrate_bn"):
        return None
    return (f"Training reached {trained[-1]:.0%} accuracy but the test only {run.test_accuracy:.2%}: in so few "
            f"batches BatchNorm's moving averages had not settled, and the test reads them. Tick "
            f"\"{FIELD['recalibrate_bn'].label}\", or train on more images or for more epochs.")


def recipe_text(recipe: dict) -> str:
    """A stored run's recipe in a few words: the named recipe it is closest to, what it changed, its seed."""
    try:
        named = Recipe.from_dict(recipe)
    except (TypeError, ValueError):
        return "unreadable recipe"
    name, changes = closest_recipe(named)
    changed = ", ".join(f"{FIELD[key].short_words if key in FIELD else key.replace('_', ' ')} {_value_text(value)}"
                        for key, value in changes.items())
    return name + (f" with {changed}" if changed else "") + f" · seed {named.seed}"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def leaderboard(runs: list[Run], budget: Budget, names: dict[str, str]) -> list[dict[str, Any]]:
    """The class board's ranking: each student's best under-budget run, best first.

    Only completed runs count, by their final test accuracy (never a best epoch), and only those within
    `budget`; ties go to the fewer params, then the earlier run. Runs of studies count as any other.
    """
    best: dict[str | None, Run] = {}
    for run in runs:
        counted = run.total_params if budget.counting == "total" else run.trainable_params
        if run.status != "completed" or run.test_accuracy is None or not Verdict(counted, budget.limit,
                                                                                 budget.counting).within:
            continue
        held = best.get(run.owner)
        if held is None or (-run.test_accuracy, run.total_params, run.id) < (-held.test_accuracy, held.total_params,
                                                                               held.id):
            best[run.owner] = run
    ranked = sorted(best.values(), key=lambda run: (-run.test_accuracy, run.total_params, run.id))
    return [{"place": place, "student": names.get(run.owner, "the lab"),
             "test accuracy": accuracy_text(run.test_accuracy), "params": run.total_params,
             "recipe": recipe_text(run.recipe), "epochs": run.recipe.get("epochs"), "run": run.id}
            for place, run in enumerate(ranked, 1)]
