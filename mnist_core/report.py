"""Plain rows describing runs, for the history table (the page only renders them)."""

from __future__ import annotations

import time
from typing import Any

from .budget import Budget
from .spec import Architecture, Conv, SpecError
from .store import Run


def architecture_text(arch: Architecture) -> str:
    """A one-line summary: 'conv16 bn · conv32 bn · conv16 · pool · ... · gap'."""
    parts = []
    for layer in arch.layers:
        if isinstance(layer, Conv):
            parts.append(f"{layer.kernel}x{layer.kernel}:{layer.filters}" + (" bn" if layer.batchnorm else "")
                         + (f" do{layer.dropout_rate:g}" if layer.dropout else ""))
        elif layer.kind == "maxpool":
            parts.append("pool")
    return " · ".join(parts)


def run_rows(runs: list[Run], budget: Budget) -> list[dict[str, Any]]:
    """One dict per run with the columns of the Runs page's table."""
    rows = []
    for run in runs:
        try:
            architecture = architecture_text(run.spec)
        except SpecError as err:
            architecture = f"invalid spec: {err}"
        counted = run.total_params if budget.counting == "total" else run.trainable_params
        recipe = run.recipe
        rows.append({
            "run": run.id,
            "name": run.name,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(run.created_at)),
            "status": run.status,
            "test accuracy": run.test_accuracy,
            "total params": run.total_params,
            "trainable params": run.trainable_params,
            "budget": "within" if counted < budget.limit else f"over by {counted - budget.limit:,}",
            "recipe": (f"{recipe.get('epochs')} ep · batch {recipe.get('batch_size')} · "
                       f"lr {recipe.get('learning_rate')}"
                       + (f" · {recipe['train_subset']:,} imgs" if recipe.get("train_subset") else "")
                       + f" · seed {recipe.get('seed')}"),
            "duration (s)": round(run.duration, 1) if run.duration is not None else None,
            "architecture": architecture,
            "note": run.error or "",
        })
    return rows
