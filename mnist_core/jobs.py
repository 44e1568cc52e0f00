"""Training jobs: queue runs in the store and keep the executor that trains them going.

Where runs train is the executor's business (`mnist_core.executors`: local worker processes, or a Ray
cluster, as MNIST_LAB_EXECUTOR says); the Lab keeps it going itself whenever it is asked something that
needs it (a submit, the active runs, its status), and marks a run whose trainer died interrupted.
Each run records the pid of the process that submitted it, and a worker told to leave (its Lab
shut down, or its parent died) still finishes a run another live process is waiting for.
An ablation study (`submit_study`, see study.py) is just many runs in the same queue, tagged with
its id: workers train them like any other run, and a restarted app's workers pick up those still queued.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import config
from .budget import summarize
from .cost import DEFAULT_FLOPS_PER_SECOND, RunCost, check_cost, estimate, server_rate
from .db import StoreError
from .executors import ExecutorStatus, make_executor
from .history import Run
from .lifecycle import INTERRUPTED
from .recipe import Recipe
from .runs import RunStore
from .spec import Architecture
from .study import check_seeds, variants


@dataclass(frozen=True)
class Submitted:
    """A queued run and how many runs are ahead of it."""

    run_id: int
    ahead: int


def ahead_of(run: Run, active: list[Run]) -> list[Run]:
    """The active runs that train before queued `run`: those running, then the queue's order
    (single runs before study runs, each oldest first), as `RunStore.claim_next` takes them."""
    def order(other: Run) -> tuple[bool, int]:
        return other.study_id is not None, other.id

    return [other for other in active if other.id != run.id
            and (other.status == "running" or order(other) < order(run))]


class Lab:
    """The run store plus the executor that trains its queued runs; safe to share between threads."""

    def __init__(self, home: str | Path | None = None, data_dir: str | Path | None = None,
                 max_workers: int | None = None, idle_timeout: float = 600.0):
        self.home = Path(home) if home is not None else config.lab_home()
        kind = config.executor()  # a bad setting is said before anything is created
        self.store = RunStore(self.home)
        self.executor = make_executor(kind, self.store, data_dir if data_dir is not None else config.data_dir(),
                                      idle_timeout, max_workers or config.max_workers())
        self.reap()

    def status(self) -> ExecutorStatus:
        """Where runs train and why they cannot now, after warming the executor: a page that may start a run
        asks this first, so TensorFlow loads while the user reads."""
        self.executor.ensure_running()
        return self.executor.status()

    def waiting_text(self, run: Run, active: list[Run]) -> str:
        """What a queued run waits for, in words, for the Train page."""
        return self.executor.waiting_text(run, ahead_of(run, active), self.executor.status())

    def reap(self) -> list[int]:
        """Mark 'running' runs whose trainer is gone as interrupted; returns their ids."""
        running = self.store.list(("running",))
        if not running:
            return []
        alive = set(self.executor.live_workers().values())
        dead = [run.id for run in running if run.worker_pid not in alive]
        self.store.mark_interrupted(dead, INTERRUPTED)
        return dead

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the processes this Lab started; a run they were training is marked interrupted.

        A worker training a run that another live process submitted finishes it first and then exits;
        this call does not wait for it.
        """
        self.executor.shutdown(timeout)
        self.reap()

    # -- runs ------------------------------------------------------------------------------

    def submit(self, arch: Architecture, recipe: Recipe, name: str | None = None) -> Submitted:
        """Queue a run of `arch` and make sure a worker will train it.

        Raises LimitError, one sentence naming the cap, for a run over this server's caps (`cost.check_cost`),
        and StoreError (with a clear message) when the store cannot take a run.
        """
        check_cost(self.estimate(arch, recipe))
        summary = summarize(arch)
        run_id = self.store.create_run(name or arch.name, arch, recipe.to_dict(), summary.total,
                                       summary.trainable, submitter_pid=os.getpid())
        self.executor.ensure_running(retry=True)  # a new start may succeed (e.g. after a fix)
        # Counted after inserting, so two simultaneous starts cannot both see an empty queue.
        return Submitted(run_id, len(ahead_of(self.store.get(run_id), self.active())))

    def submit_study(self, arch: Architecture, recipe: Recipe, seeds: tuple[int, ...] = (0,),
                     include_presets: bool = False, name: str | None = None) -> int:
        """Queue an ablation study of `arch` and make sure a worker will train it; returns the study id.

        One run per variant (`study.variants`: the baseline, each BatchNorm and Dropout toggle, the
        presets if asked) and seed (1 to 5), all with `recipe` but for its seed. Every variant's first
        seed is queued before any second seed, so a partial study already compares every variant.
        Raises ValueError for bad seeds, LimitError for a variant over this server's caps, StoreError when
        the store cannot take the runs.
        """
        seeds = check_seeds(seeds)
        plan = variants(arch, include_presets)
        rate = self.training_rate()
        for variant in plan:  # each of its runs is held to the caps of a run
            check_cost(estimate(variant.arch, recipe, rate))
        name = name or f"Ablation of {arch.name}"
        study_id = self.store.create_study(name, arch, recipe.to_dict(), seeds)
        for seed in seeds:
            seeded = replace(recipe, seed=seed).to_dict()
            for variant in plan:
                counts = summarize(variant.arch)
                self.store.create_run(f"{name}: {variant.label}, seed {seed}", variant.arch, seeded, counts.total,
                                      counts.trainable, submitter_pid=os.getpid(), study_id=study_id,
                                      variant=variant.key)
            # After each seed's runs: training starts while later seeds are queued; as in `submit`, a new
            # start may succeed (once, or failed starts would be retried for every seed).
            self.executor.ensure_running(retry=seed == seeds[0])
        return study_id

    def training_rate(self) -> float:
        """FLOP/s this server trains at, learnt from its newest completed runs (`cost.server_rate`); the
        measured default while the store cannot be read (an estimate is no reason to fail a page)."""
        try:
            return server_rate(self.store.list(("completed",)))
        except StoreError:
            return DEFAULT_FLOPS_PER_SECOND

    def estimate(self, arch: Architecture, recipe: Recipe) -> RunCost:
        """What a run of `arch` with `recipe` would cost here: time, work and training memory."""
        return estimate(arch, recipe, self.training_rate())

    def stop(self, run_id: int) -> None:
        """Ask for a run to stop; a queued run is cancelled at once."""
        self.store.request_stop(run_id)

    def stop_study(self, study_id: int) -> list[int]:
        """Stop every queued and running run of a study (queued ones at once); returns their ids."""
        return self.store.request_stop_study(study_id)

    def active(self) -> list[Run]:
        """Queued and running runs, oldest first, after reaping dead trainers' runs; a queued run gets a trainer.

        Cheap enough for a page to ask every second. Raises StoreError when the store cannot be read.
        """
        self.reap()
        active = sorted(self.store.list(("queued", "running")), key=lambda run: run.id)
        if any(run.status == "queued" for run in active):
            self.executor.ensure_running()  # one that died while runs wait is replaced
        return active

    def runs(self) -> list[Run]:
        """Every run, newest first, after reaping dead trainers' runs: none shows 'running' forever."""
        self.reap()
        return self.store.list()

    def wait(self, run_id: int, poll: float = 0.25, timeout: float | None = None) -> Run:
        """Block until the run is finished (or `timeout` seconds pass); returns its latest row."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.store.get(run_id)
            if run is None or run.finished or (deadline and time.monotonic() > deadline):
                return run
            if run.status == "queued" or not self.executor.live_workers():
                self.active()
            time.sleep(poll)

    def wait_study(self, study_id: int, poll: float = 0.25, timeout: float | None = None) -> list[Run]:
        """Block until every run of the study is finished (or `timeout` seconds pass); returns its runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            pending = [run for run in self.store.study_runs(study_id) if not run.finished]
            if not pending:
                break
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self.wait(pending[0].id, poll, left)
        return self.store.study_runs(study_id)

