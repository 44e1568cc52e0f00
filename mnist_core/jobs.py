"""Training jobs: queue runs in the store and keep the executor that trains them going.

Where runs train is the executor's business (`mnist_core.executors`: local worker processes, or a Ray
cluster, as MNIST_LAB_EXECUTOR says); the Lab keeps it going itself whenever it is asked something that
needs it (a submit, the active runs, its status), and marks a run whose trainer died interrupted.
Each run records the pid of the process that submitted it, and a worker told to leave (its Lab
shut down, or its parent died) still finishes a run another live process is waiting for.
An ablation study (`submit_study`, see study.py) is just many runs in the same queue, tagged with
its id: workers train them like any other run, and a restarted app's workers pick up those still queued.
In a class (`classroom`), every call that acts on a run is made by a `Visitor` and checked here: a page
that forgot to hide a button still cannot stop another student's run.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import config
from .budget import summarize
from .classroom import (LAB_USER, STUDY_RUNS_CAP, ClassSettings, NotAllowed, Visitor, check_not_duplicate,
                        check_share, queue_order, read_settings, write_settings)
from .cost import DEFAULT_FLOPS_PER_SECOND, LimitError, RunCost, check_cost, estimate, estimate_words, server_rate
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


# Every student's live view asks for the queue's times each redraw; the rate behind them changes only as runs
# complete, so it is read from every completed run at most this often.
RATE_SECONDS = 30.0
SOON_SECONDS = 5.0  # a running run past its estimate is counted as this close to its end: its true end is unknown
KEEPER_SECONDS = 5.0  # how often a server's keeper looks for queued runs without a trainer, and overdue runs
LIVE_SECONDS = 1.0  # a page watching a run in training (or about to start) looks again this often
WAITING_SECONDS = 3.0  # ... a run waiting behind others, a finished run or none: 30 students each looking every
# second kept a core of this 2-core server busy and took it from the trainings (bench.classroom)


def ahead_of(run: Run, active: list[Run]) -> list[Run]:
    """The active runs that train before queued `run`: those running, then the queue's order
    (`classroom.queue_order`, as `RunStore.claim_next` takes them)."""
    running = [other for other in active if other.status == "running" and other.id != run.id]
    order = queue_order(active)
    place = next((index for index, other in enumerate(order) if other.id == run.id), 0)
    return running + order[:place]


def watch_seconds(run: Run | None, active: list[Run], slots: int) -> float:
    """How often a page showing `run` should look at the store again: LIVE_SECONDS while it trains or a slot is
    free for it (its first chart point is seconds away), WAITING_SECONDS while it waits behind others, has ended,
    or there is none."""
    if run is not None and (run.status == "running"
                            or (run.status == "queued" and len(ahead_of(run, active)) < slots)):
        return LIVE_SECONDS
    return WAITING_SECONDS


def timetable(active: list[Run], seconds: dict[int, float], slots: int) -> dict[int, tuple[float, float]]:
    """Queued run id -> (start, finish) in seconds from now, with `slots` trainings at once: each running
    run's `seconds` left, then each queued run (`seconds`: its estimate) takes the first slot to free up."""
    free = sorted(seconds.get(run.id, 0.0) for run in active if run.status == "running")[:slots]
    free += [0.0] * (slots - len(free))
    times = {}
    for run in queue_order(active):
        free.sort()
        start = free[0]
        free[0] = start + seconds.get(run.id, 0.0)
        times[run.id] = (start, free[0])
    return times


def from_now(seconds: float) -> str:
    """A time in `timetable` as words: 'now' for a free slot, 'soon' when it waits on a run that is due or past
    its estimate (never a made-up 'about 5 s'), else 'in about ...'."""
    if seconds < 1:
        return "now"
    return "soon" if seconds <= SOON_SECONDS else f"in {estimate_words(seconds)}"


class Lab:
    """The run store plus the executor that trains its queued runs; safe to share between threads."""

    def __init__(self, home: str | Path | None = None, data_dir: str | Path | None = None,
                 max_workers: int | None = None, idle_timeout: float = 600.0):
        self.home = Path(home) if home is not None else config.lab_home()
        kind = config.executor()  # a bad setting is said before anything is created
        self.store = RunStore(self.home)
        self.slots = max_workers or config.max_workers()
        self.executor = make_executor(kind, self.store, data_dir if data_dir is not None else config.data_dir(),
                                      idle_timeout, self.slots)
        self.passcode = config.teacher_passcode()
        self._keeper_stop = threading.Event()
        self._studies_lock = threading.Lock()  # a study's share check and its runs, one study at a time
        self._rate = (-RATE_SECONDS, DEFAULT_FLOPS_PER_SECOND)  # (when learnt, FLOP/s): see training_rate
        self.reap()

    @property
    def in_class(self) -> bool:
        """A class is configured (a teacher passcode is set): owners and caps matter."""
        return self.passcode is not None

    def keep_queue_moving(self, every: float = KEEPER_SECONDS) -> None:
        """Start a thread that, every `every` seconds, gives queued runs a trainer (runs left queued by a
        restart included) and stops runs over the time limit, so nothing waits for someone to open a page."""
        def keep() -> None:
            while not self._keeper_stop.wait(every):
                try:
                    self.active()
                except StoreError:
                    pass  # a locked or deleted store: the next look tries again
        threading.Thread(target=keep, name="lab-keeper", daemon=True).start()

    def status(self) -> ExecutorStatus:
        """Where runs train and why they cannot now, after warming the executor: a page that may start a run
        asks this first, so TensorFlow loads while the user reads."""
        self.executor.ensure_running()
        return self.executor.status()

    def waiting_text(self, run: Run, active: list[Run]) -> str:
        """What a queued run waits for, in words, for the Train page."""
        return self.executor.waiting_text(run, ahead_of(run, active), self.executor.status())

    def reap(self) -> list[int]:
        """Mark 'running' runs whose trainer is gone as interrupted, and stop those over the time limit;
        returns the ids of the interrupted ones."""
        running = self.store.list(("running",))
        if not running:
            return []
        self._stop_overdue(running)
        alive = set(self.executor.live_workers().values())
        dead = [run.id for run in running if run.worker_pid not in alive]
        self.store.mark_interrupted(dead, INTERRUPTED)
        return dead

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the processes this Lab started; a run they were training is marked interrupted.

        A worker training a run that another live process submitted finishes it first and then exits;
        this call does not wait for it.
        """
        self._keeper_stop.set()
        self.executor.shutdown(timeout)
        self.reap()

    # -- runs ------------------------------------------------------------------------------

    def _stop_overdue(self, running: list[Run]) -> None:
        """Ask runs training for longer than this server's limit to stop, with the reason 'time limit'."""
        try:
            minutes = config.run_caps()[0]
        except config.ConfigError:
            return  # the Train page names the bad setting; no run is stopped by a limit nobody can read
        for run in running:
            if run.started_at and not run.stop_requested and time.time() - run.started_at > minutes * 60:
                self.store.request_stop(run.id, f"time limit: it trained for longer than this server's "
                                                f"{minutes:g} minutes a run ({config.MAX_RUN_MINUTES_ENV}).")

    def settings(self) -> ClassSettings:
        """The teacher's switches: queue paused, runs per student."""
        return read_settings(self.home)

    def change_settings(self, settings: ClassSettings, visitor: Visitor) -> None:
        """Pause or resume the queue, or change the runs each student may have; the teacher's alone."""
        if visitor.capped:
            raise NotAllowed("Only the teacher can pause the queue or change the class's limits.")
        write_settings(self.home, settings)

    def visitor(self, owner: str | None, teacher: bool = False) -> Visitor:
        """Who a browser is here: in a class, the student `owner` (the teacher when `teacher`); else the lab's
        one user, whatever the browser."""
        return Visitor(owner, teacher, in_class=True) if self.in_class else LAB_USER

    def submit(self, arch: Architecture, recipe: Recipe, name: str | None = None,
               visitor: Visitor = LAB_USER) -> Submitted:
        """Queue a run of `arch` for `visitor` and make sure a worker will train it.

        Raises, each with one sentence: LimitError for a run over this server's caps (`cost.check_cost`),
        classroom.Duplicate when the visitor's identical run is already queued or training (its `run_id` says
        which), ShareExceeded when a student already has their share of the queue, and StoreError when the
        store cannot take a run.
        """
        check_cost(self.estimate(arch, recipe))
        summary = summarize(arch)
        cap = self.settings().runs_per_student

        def admit(own_active: list[Run], run_name: str, spec_json: str, recipe_json: str) -> None:
            check_not_duplicate(own_active, run_name, spec_json, recipe_json)
            check_share(visitor, own_active, cap)

        run_id = self.store.create_run(name or arch.name, arch, recipe.to_dict(), summary.total,
                                       summary.trainable, submitter_pid=os.getpid(), owner=visitor.owner,
                                       admit=admit)
        self.executor.ensure_running(retry=True)  # a new start may succeed (e.g. after a fix)
        # Counted after inserting, so two simultaneous starts cannot both see an empty queue.
        return Submitted(run_id, len(ahead_of(self.store.get(run_id), self.active())))

    def submit_study(self, arch: Architecture, recipe: Recipe, seeds: tuple[int, ...] = (0,),
                     include_presets: bool = False, name: str | None = None, visitor: Visitor = LAB_USER) -> int:
        """Queue an ablation study of `arch` and make sure a worker will train it; returns the study id.

        One run per variant (`study.variants`: the baseline, each BatchNorm and Dropout toggle, the
        presets if asked) and seed (1 to 5), all with `recipe` but for its seed. Every variant's first
        seed is queued before any second seed, so a partial study already compares every variant.
        A student's study counts as one of their share of the queue and is capped at STUDY_RUNS_CAP runs.
        Raises ValueError for bad seeds, LimitError for a variant over this server's caps or a student's study
        over its cap, ShareExceeded when a student already has their share, StoreError when the store cannot
        take the runs.
        """
        seeds = check_seeds(seeds)
        plan = variants(arch, include_presets)
        if visitor.capped and len(plan) * len(seeds) > STUDY_RUNS_CAP:
            raise LimitError(f"this study would queue {len(plan) * len(seeds)} runs, over the {STUDY_RUNS_CAP} a "
                             f"student's study may queue: use fewer seeds, or leave the presets out.")
        rate = self.training_rate()
        for variant in plan:  # each of its runs is held to the caps of a run
            check_cost(estimate(variant.arch, recipe, rate))
        # The share is checked and the study queued under one lock: several tabs starting studies at once
        # (the server's sessions are threads of one process) cannot all pass the check before any is queued.
        with self._studies_lock:
            check_share(visitor, self.store.owner_active(visitor.owner), self.settings().runs_per_student)
            return self._queue_study(arch, recipe, seeds, plan, name or f"Ablation of {arch.name}", visitor)

    def _queue_study(self, arch: Architecture, recipe: Recipe, seeds: tuple[int, ...], plan: list, name: str,
                     visitor: Visitor) -> int:
        """Record the study, then its runs seed by seed, each seed's runs given a trainer as they land."""
        study_id = self.store.create_study(name, arch, recipe.to_dict(), seeds, owner=visitor.owner)
        for seed in seeds:
            seeded = replace(recipe, seed=seed).to_dict()
            for variant in plan:
                counts = summarize(variant.arch)
                self.store.create_run(f"{name}: {variant.label}, seed {seed}", variant.arch, seeded, counts.total,
                                      counts.trainable, submitter_pid=os.getpid(), study_id=study_id,
                                      variant=variant.key, owner=visitor.owner)
            # After each seed's runs: training starts while later seeds are queued; as in `submit`, a new
            # start may succeed (once, or failed starts would be retried for every seed).
            self.executor.ensure_running(retry=seed == seeds[0])
        return study_id

    def training_rate(self) -> float:
        """FLOP/s this server trains at, learnt from its newest completed runs (`cost.server_rate`) and kept for
        RATE_SECONDS; the measured default while the store cannot be read (an estimate is no reason to fail a
        page)."""
        learnt_at, rate = self._rate
        if time.monotonic() - learnt_at < RATE_SECONDS:
            return rate
        try:
            rate = server_rate(self.store.list(("completed",)))
        except StoreError:
            return DEFAULT_FLOPS_PER_SECOND
        self._rate = (time.monotonic(), rate)
        return rate

    def estimate(self, arch: Architecture, recipe: Recipe) -> RunCost:
        """What a run of `arch` with `recipe` would cost here: time, work and training memory."""
        return estimate(arch, recipe, self.training_rate())

    def stop(self, run_id: int, visitor: Visitor = LAB_USER) -> None:
        """Ask for a run to stop; a queued run is cancelled at once. NotAllowed unless the visitor may manage it."""
        if self._may_manage(run_id, visitor):
            self.store.request_stop(run_id)

    def delete(self, run_id: int, visitor: Visitor = LAB_USER) -> None:
        """Delete a run and its files; NotAllowed unless the visitor may manage it."""
        if self._may_manage(run_id, visitor):
            self.store.delete(run_id)

    def _may_manage(self, run_id: int, visitor: Visitor) -> bool:
        """False when there is no such run (nothing to do); NotAllowed when it is another student's."""
        run = self.store.get(run_id)
        if run is not None:
            visitor.check_may_manage(run.owner, f"run {run_id}")
        return run is not None

    def stop_study(self, study_id: int, visitor: Visitor = LAB_USER) -> list[int]:
        """Stop every queued and running run of a study (queued ones at once); returns their ids.
        NotAllowed unless the visitor may manage the study."""
        study = self.store.get_study(study_id)
        if study is None:
            return []
        visitor.check_may_manage(study.owner, f"study {study_id}")
        return self.store.request_stop_study(study_id)

    def clear_student(self, owner: str, visitor: Visitor) -> tuple[int, int]:
        """The teacher's clean slate for one student: their active runs stopped, their finished runs deleted;
        returns (stopped, deleted)."""
        if visitor.capped:
            raise NotAllowed("Only the teacher can clear a student's runs.")
        theirs = [run for run in self.store.list() if run.owner == owner]
        for run in theirs:
            if run.finished:
                self.store.delete(run.id)
            else:
                self.store.request_stop(run.id)
        return sum(not run.finished for run in theirs), sum(run.finished for run in theirs)

    def timetable(self, active: list[Run]) -> dict[int, tuple[float, float]]:
        """Each queued run's estimated start and finish, in seconds from now (`timetable`); none while the
        teacher has paused the queue: nobody can say when it goes on."""
        if self.settings().paused:
            return {}
        rate, seconds = self.training_rate(), {}
        for run in active:
            try:
                cost = estimate(run.spec, Recipe.from_dict(run.recipe), rate).seconds
            except (ValueError, TypeError, KeyError):
                continue  # a stored spec this version cannot read: it counts as no time
            elapsed = time.time() - run.started_at if run.status == "running" and run.started_at else 0.0
            seconds[run.id] = max(cost - elapsed, SOON_SECONDS) if run.status == "running" else cost
        return timetable(active, seconds, self.slots)

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
            else:
                self._stop_overdue([run])  # a CLI waiting on its run holds it to the time limit, as the keeper does
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

