"""The one runner: trains a claimed run and records it, for whichever process serves a slot.

A local worker trains its runs in its own process; the Ray dispatcher records what its Ray tasks trained.
Each step of a run's life is written here once: claiming it, numbering its events (`ProgressLog`), asking
for Stop between batches, telling a user's Stop from a stop because this process leaves (interrupted),
saving its model and its analysis, and recording how it ended.
"""

from __future__ import annotations

import errno
import gc
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .analysis import Analysis, AnalysisError, analyse, save_analysis
from .data import Mnist, MnistDataError, load_mnist
from .lifecycle import INTERRUPTED, ProgressLog, pid_alive
from .recipe import Recipe
from .spec import Architecture, SpecError
from .db import StoreError
from .events import Event
from .files import replaced_at_once
from .history import Run, keeps_model
from .runs import RunStore
from .train import train

STORE_RETRY_SECONDS = 2.0  # a locked or busy database is retried after this pause, not fatal
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # a model that cannot be saved for these waits for space
# Keras/TF keep ~20-30 MB per trained model even after clear_session(); a process that trains runs (a local
# worker, a Ray worker) is replaced by a fresh one after this many runs to stay bounded.
RUNS_BEFORE_RECYCLE = 5


@dataclass
class Trained:
    """What training a run gave, wherever it trained: its `RunStore.finish` fields and what to keep beside it."""

    status: str
    versions: dict[str, str] | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    error: str | None = None
    model: Any = None  # a Keras model, only when `keeps_model` says so
    analysis: Analysis | None = None  # only for a completed run

    @classmethod
    def failed(cls, err: Exception, versions: dict[str, str] | None = None) -> Trained:
        return cls("failed", versions, error=failure_text(err))

    def ending(self) -> dict[str, Any]:
        """The `RunStore.finish` arguments."""
        if self.status == "failed":
            return dict(status=self.status, error=self.error, versions=self.versions)
        return dict(status=self.status, test_accuracy=self.test_accuracy, test_loss=self.test_loss,
                    versions=self.versions)


def train_here(run_id: int, arch: Architecture, recipe: dict[str, Any], data: Mnist,
               publish: Callable[[Event], None], should_stop: Callable[[], bool], versions: dict[str, str]) -> Trained:
    """Train in this process (a local worker or a Ray task); never raises: a failure is a failed `Trained`.

    A model is kept only when an epoch finished (`keeps_model`), and analysed only when the run completed,
    from its last test pass (no second pass over the test digits); after a stop the Runs page analyses it on
    demand, so Stop never waits for 10,000 digits.
    """
    try:
        result = train(arch, Recipe.from_dict(recipe), data, publish, should_stop)
    except Exception as err:  # a worker must outlive any one bad run
        return Trained.failed(err, versions)
    completed = result.status == "completed"
    return Trained(result.status, versions, result.test_accuracy, result.test_loss,
                   model=result.model if keeps_model(result.status, result.epochs_done) else None,
                   analysis=analysis_or_log(result.test_probabilities, data, run_id) if completed else None)


class Runner:
    """Claims runs and records them for the process serving a slot; `exit_requested` is set by SIGTERM.

    `parent_pid` is the process that started this one: once it is gone, no new run is claimed, and a run
    in training is abandoned (interrupted) unless another live process submitted it. `lock` is the slot's
    lock file: once deleted (with the run store's folder), a new process serves the slot and this one leaves.
    """

    def __init__(self, store: RunStore, parent_pid: int = 0, lock=None):
        self.store, self.parent_pid, self.lock = store, parent_pid, lock
        self.exit_requested = False

    def on_sigterm(self, *_) -> None:
        self.exit_requested = True

    def leaving(self) -> bool:
        """Told to exit, orphaned, or our slot given to another process: claim no new run."""
        return self.exit_requested or self.parent_gone() or self.slot_lost()

    def parent_gone(self) -> bool:
        return self.parent_pid > 0 and os.getppid() != self.parent_pid

    def slot_lost(self) -> bool:
        """Our lock file was deleted (the run store's folder with it): a new process serves the slot now."""
        if self.lock is None:
            return False
        try:
            return os.stat(self.lock.name).st_ino != os.fstat(self.lock.fileno()).st_ino
        except OSError:
            return True

    def must_abandon(self, run: Run) -> bool:
        """Leaving, and nobody else still waits for `run`: its submitter is our parent or dead."""
        if not (self.exit_requested or self.parent_gone()):
            return False
        return not (run.submitter_pid and run.submitter_pid != self.parent_pid and pid_alive(run.submitter_pid))

    # -- a run's life ----------------------------------------------------------------------

    def claim(self) -> Run | None:
        """The next queued run, now ours; None when none waits or the store is busy (logged, after a pause)."""
        try:
            return self.store.claim_next(os.getpid())
        except StoreError as err:
            log(f"cannot claim a run ({err}); retrying in {STORE_RETRY_SECONDS:g}s")
            time.sleep(STORE_RETRY_SECONDS)
            return None

    def progress(self, run: Run) -> ProgressLog:
        """Where `run`'s events go, numbered in order, waiting while the store is busy."""
        return ProgressLog(self.store, run.id, log)

    def should_stop(self, run: Run) -> bool:
        """Asked between batches: stop when leaving for good or asked by the user; a busy store means go on."""
        try:
            return self.must_abandon(run) or self.store.stop_requested(run.id)
        except StoreError:
            return False  # the next poll asks again; a store hiccup never ends a training

    def train(self, run: Run, data_dir: str | Path | None) -> None:
        """Train `run` in this process and record how it ended; never raises."""
        progress, versions = self.progress(run), run_versions()
        try:
            data = load_mnist(data_dir)
        except Exception as err:
            trained = Trained.failed(err, versions)
        else:
            trained = train_here(run.id, run.spec, run.recipe, data, progress.publish,
                                 lambda: self.should_stop(run), versions)
        self.settle(run, trained, progress)

    def settle(self, run: Run, trained: Trained, progress: ProgressLog | None = None) -> None:
        """Keep what `trained` gave and record how `run` ended; never raises."""
        try:
            self.record(run, self.conclude(run, trained), progress=progress)
        finally:
            trained.model = None
            if "keras" in sys.modules:
                sys.modules["keras"].backend.clear_session()  # drops the run's graphs and variables
            gc.collect()

    def conclude(self, run: Run, trained: Trained) -> dict[str, Any] | None:
        """Save the model and analysis; the `finish` arguments, None when the run is interrupted: it stopped
        because this process leaves, not because the user asked."""
        if trained.status == "stopped" and not self.user_stopped(run):
            return None
        try:
            if trained.model is not None:
                self.until_saved(trained.model, run)
        except Exception as err:  # a model that cannot be saved fails its run, not this process
            return Trained.failed(err, trained.versions).ending()
        if trained.analysis is not None:  # saved before `record`: finished means analysed
            save_analysis_or_log(self.store, run.id, trained.analysis)
        return trained.ending()

    def record(self, run: Run, ending: dict | None, reason: str = INTERRUPTED,
               progress: ProgressLog | None = None) -> None:
        """Store `run`'s waiting progress, then how it ended (None: interrupted for `reason`); a locked
        database or a full disk is retried until SIGTERM."""
        def store_ending() -> None:
            if progress is not None:
                progress.flush()
            if ending is None:
                self.store.mark_interrupted([run.id], reason)
            else:
                self.store.finish(run.id, **ending, worker_pid=os.getpid())

        self.until_stored(store_ending, f"record how run {run.id} ended")

    def until_stored(self, action, what: str, when_leaving=None):
        """`action()`, retried while the store is locked or busy; `when_leaving` once told to exit
        (the next Lab to look marks an unrecorded run interrupted)."""
        while True:
            try:
                return action()
            except StoreError as err:
                if self.exit_requested:
                    return when_leaving
                log(f"cannot {what} ({err}); retrying in {STORE_RETRY_SECONDS:g}s")
                time.sleep(STORE_RETRY_SECONDS)

    def user_stopped(self, run: Run) -> bool:
        """Whether the user asked `run` to stop; a busy store is asked again, as `record` retries."""
        return self.until_stored(lambda: self.store.stop_requested(run.id), f"read run {run.id}", when_leaving=False)

    def until_saved(self, model, run: Run) -> None:
        """Save `run`'s model; a full disk is waited out (logged) rather than throwing the training away."""
        while True:
            try:
                return save_model(model, self.store.model_path(run.id))
            except OSError as err:
                if err.errno not in DISK_FULL or self.exit_requested:
                    raise
                log(f"cannot save run {run.id}'s model ({err.strerror}); retrying in {STORE_RETRY_SECONDS:g}s")
                time.sleep(STORE_RETRY_SECONDS)


def save_model(model, path: Path) -> None:
    """Write the .keras file and the weights file beside it (`mnist_core.weights`, what prediction reads),
    each atomically: a reader never sees a half-written model. `model` comes from `build_model`, which
    gives it its spec."""
    from .weights import weights_path, write_weights

    write_weights(model, weights_path(path), model.spec_json)
    with replaced_at_once(path, suffix=".keras") as tmp:  # Keras saves only to a '.keras' path
        model.save(tmp)


def run_versions() -> dict[str, str]:
    """The versions a run records: Python, Keras and TensorFlow of the process that trained it."""
    import keras
    import tensorflow as tf

    return {"python": platform.python_version(), "keras": keras.__version__, "tensorflow": tf.__version__}


def failure_text(err: Exception) -> str:
    """What a failed run shows: the message of an error we expect, the type too for any other."""
    if isinstance(err, (MnistDataError, SpecError, ValueError, OSError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def analysis_or_log(probabilities, data: Mnist, run_id: int) -> Analysis | None:
    """The error analysis of the model's `probabilities` for the test digits; None (logged) when it fails,
    which never fails the run."""
    try:
        return analyse(probabilities, data.y_test)
    except Exception as err:  # the trained model matters more than its analysis
        log(f"cannot analyse run {run_id} ({type(err).__name__}: {err}); the Runs page can analyse it later")
        return None


def save_analysis_or_log(store: RunStore, run_id: int, analysis: Analysis) -> None:
    """Save an analysis beside its run; a failure is logged: the Runs page can analyse the run again."""
    try:
        save_analysis(store, run_id, analysis)
    except AnalysisError as err:
        log(f"{err} The Runs page can analyse it later.")


def log(text: str) -> None:
    """One line in worker.log; lost, not raised, when the log's disk is full (training matters more)."""
    try:
        print(f"worker {os.getpid()}: {text}", flush=True)
    except OSError:
        pass
