"""What the run history holds, as plain records: a Run, a Study, and the rules about a run's status.

The records are read from the database by `runs.RunStore` and `studies`; pages, reports and the trainer
use them without touching the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .spec import Architecture

TERMINAL = ("completed", "stopped", "failed", "interrupted")
STATUSES = ("queued", "running", *TERMINAL)


def keeps_model(status: str, epochs_done: int) -> bool:
    """The one rule for a run's model: kept when the run completed, or was stopped after at least one whole
    epoch (stopped earlier, it was never tested, so nobody should draw with it)."""
    return status == "completed" or (status == "stopped" and epochs_done > 0)


class SpecAndRecipe:
    """What a run and a study share: a stored spec and recipe, read back on demand."""

    spec_json: str
    recipe_json: str

    @property
    def spec(self) -> Architecture:
        """The validated architecture; raises SpecError if the stored spec is damaged."""
        return Architecture.from_json(self.spec_json)

    @property
    def recipe(self) -> dict[str, Any]:
        return json.loads(self.recipe_json)


@dataclass(frozen=True)
class Run(SpecAndRecipe):
    """One row of the run history."""

    id: int
    name: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    spec_json: str
    recipe_json: str
    total_params: int
    trainable_params: int
    test_accuracy: float | None
    test_loss: float | None
    duration: float | None
    error: str | None
    versions_json: str | None
    stop_requested: int
    worker_pid: int | None
    submitter_pid: int | None = None  # the process that queued it: its worker must not abandon it
    study_id: int | None = None  # the ablation study it belongs to, if any
    variant: str | None = None  # its place in that study: 'baseline', an edit key like 'bn-off:conv2', 'preset:...'
    owner: str | None = None  # the student who queued it (classroom.Visitor.owner); None in a lab of one

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def has_model(self) -> bool:
        """Whether the run ended with a model to draw with, download and analyse (`keeps_model`); its file may
        still be missing or damaged, which the page that reads it says."""
        return keeps_model(self.status, 1 if self.test_accuracy is not None else 0)


@dataclass(frozen=True)
class Study(SpecAndRecipe):
    """One ablation study: a baseline spec, a recipe and the seeds its runs were queued with."""

    id: int
    name: str
    created_at: float
    spec_json: str
    recipe_json: str  # the shared recipe; each run's own recipe has one of `seeds` as its seed
    seeds_json: str
    owner: str | None = None  # the student who started it, as for a run

    @property
    def seeds(self) -> list[int]:
        return json.loads(self.seeds_json)
