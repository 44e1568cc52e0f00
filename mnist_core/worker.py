"""The training worker process: holds a slot lock, imports TensorFlow once, trains queued runs.

Started by `mnist_core.jobs.Lab`; run by hand only for debugging:
    python -m mnist_core.worker --home ~/.mnist-budget-lab --slot 0 --parent-pid <pid>
It exits when idle for `--idle-timeout` seconds, on SIGTERM, or when its parent process dies,
marking a run it was training as interrupted, unless another live process submitted that run:
then it finishes the run first, and claims no more.
Once TensorFlow is imported it writes "<pid> ready" into its lock file: the Lab counts a worker
that died before that as a failed start.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import gc
import os
import platform
import signal
import sys
import time
from pathlib import Path

from .analysis import Analysis, AnalysisError, analyse, save_analysis
from .data import Mnist, MnistDataError, as_model_input, load_mnist
from .db import StoreError
from .files import replaced_at_once
from .history import Run, keeps_model
from .lifecycle import INTERRUPTED, ProgressLog, pid_alive
from .recipe import Recipe
from .runs import RunStore
from .spec import SpecError
from .train import train

IDLE_POLL_SECONDS = 0.2  # how quickly a queued run is picked up
STORE_RETRY_SECONDS = 2.0  # a locked or busy database is retried after this pause, not fatal
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # a model that cannot be saved for these waits for space
LOCK_TRIES = 20  # x 50 ms: rides out another process briefly probing the slot lock
# Keras/TF keep ~20-30 MB per trained model even after clear_session(); a worker re-executes
# itself (same pid, fresh memory, one TF import) after this many runs to stay bounded.
RUNS_BEFORE_RECYCLE = 5


class Worker:
    """One worker's loop; `exit_requested` is set by SIGTERM."""

    def __init__(self, store: RunStore, data_dir: str | None, parent_pid: int, idle_timeout: float, lock=None):
        self.store, self.data_dir = store, data_dir
        self.parent_pid, self.idle_timeout = parent_pid, idle_timeout
        self.lock = lock  # the slot's lock file, held open
        self.exit_requested = False

    def on_sigterm(self, *_) -> None:
        self.exit_requested = True

    def parent_gone(self) -> bool:
        return self.parent_pid > 0 and os.getppid() != self.parent_pid

    def leaving(self) -> bool:
        """Told to exit, or orphaned: claim no new run."""
        return self.exit_requested or self.parent_gone()

    def slot_lost(self) -> bool:
        """Our lock file was deleted (the run store's folder with it): a new worker serves the slot now."""
        if self.lock is None:
            return False
        try:
            return os.stat(self.lock.name).st_ino != os.fstat(self.lock.fileno()).st_ino
        except OSError:
            return True

    def must_abandon(self, run: Run) -> bool:
        """Leaving, and nobody else still waits for `run`: its submitter is our parent or dead."""
        if not self.leaving():
            return False
        return not (run.submitter_pid and run.submitter_pid != self.parent_pid and pid_alive(run.submitter_pid))

    def loop(self) -> bool:
        """Train queued runs until idle, told to exit, or due for recycling (returns True then)."""
        idle_since, runs = time.monotonic(), 0
        while not self.leaving() and not self.slot_lost():
            try:
                run = self.store.claim_next(os.getpid())
            except StoreError as err:
                log(f"cannot claim a run ({err}); retrying in {STORE_RETRY_SECONDS:g}s")
                time.sleep(STORE_RETRY_SECONDS)
                continue
            if run is None:
                if time.monotonic() - idle_since > self.idle_timeout:
                    return False
                time.sleep(IDLE_POLL_SECONDS)
                continue
            self.train_run(run)
            runs += 1
            if runs >= RUNS_BEFORE_RECYCLE:
                return not self.leaving()
            idle_since = time.monotonic()
        return False

    def train_run(self, run: Run) -> None:
        """Train one claimed run and record how it ended; never raises."""
        import keras

        progress = ProgressLog(self.store, run.id, log)
        try:
            self.record(run, self.outcome(run, progress), progress=progress)
        finally:
            keras.backend.clear_session()  # drops the run's graphs and variables
            gc.collect()

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

    def should_stop(self, run: Run) -> bool:
        """Asked between batches: stop when leaving for good or asked by the user; a busy store means go on."""
        try:
            return self.must_abandon(run) or self.store.stop_requested(run.id)
        except StoreError:
            return False  # the next poll asks again; a store hiccup never ends a training

    def outcome(self, run: Run, progress: ProgressLog) -> dict | None:
        """Train `run` and save its model: `finish` arguments, or None when it was abandoned.

        A model is saved only when an epoch finished (`keeps_model`), and analysed only when the run
        completed: after a stop the Runs page analyses it on demand, so Stop never waits for 10,000 digits.
        """
        versions = run_versions()
        try:
            data = load_mnist(self.data_dir)
            result = train(run.spec, Recipe.from_dict(run.recipe), data, progress.publish,
                           lambda: self.should_stop(run))
            if result.status == "stopped" and not self.user_stopped(run):
                return None
            if keeps_model(result.status, result.epochs_done):
                self.until_saved(result.model, run)
            if result.status == "completed":
                analysis = analyse_model(result.model, data, run.id)
                if analysis is not None:  # saved before `record`: finished means analysed
                    save_analysis_or_log(self.store, run.id, analysis)
            return dict(status=result.status, test_accuracy=result.test_accuracy, test_loss=result.test_loss,
                        versions=versions)
        except Exception as err:  # a worker must outlive any one bad run
            return dict(status="failed", error=failure_text(err), versions=versions)

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


def run_versions() -> dict[str, str]:
    """The versions a run records: Python, Keras and TensorFlow of the process that trained it."""
    import keras

    return {"python": platform.python_version(), "keras": keras.__version__, "tensorflow": _tensorflow_version()}


def failure_text(err: Exception) -> str:
    """What a failed run shows: the message of an error we expect, the type too for any other."""
    if isinstance(err, (MnistDataError, SpecError, ValueError, OSError)):
        return str(err)
    return f"{type(err).__name__}: {err}"


def save_model(model, path: Path) -> None:
    """Write the .keras file and the weights file beside it (`mnist_core.weights`, what prediction reads),
    each atomically: a reader never sees a half-written model. `model` comes from `build_model`, which
    gives it its spec."""
    from .weights import weights_path, write_weights

    write_weights(model, weights_path(path), model.spec_json)
    with replaced_at_once(path, suffix=".keras") as tmp:  # Keras saves only to a '.keras' path
        model.save(tmp)


def analyse_model(model, data: Mnist, run_id: int) -> Analysis | None:
    """The model's error analysis on the test set; None (logged) when it fails, which never fails the run."""
    try:
        return analyse(model.predict(as_model_input(data.x_test), batch_size=1000, verbose=0), data.y_test)
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


def take_slot(lock) -> bool:
    """Take the slot lock, waiting briefly: a Lab checking for live workers holds it for a moment."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05)
    return False


def write_lock_text(lock, text: str) -> None:
    """Replace the lock file's text (read by `Lab.live_workers` and the start-up check)."""
    lock.truncate(0)
    lock.write(text)
    lock.flush()


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__


def slot_arguments(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The arguments `Lab` starts a worker (or the Ray dispatcher) with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--home", required=True)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    return parser.parse_args(argv)


def open_slot(args: argparse.Namespace):
    """This slot's lock file, taken and holding our pid; None when another process already serves the slot."""
    lock = open(Path(args.home) / f"worker-{args.slot}.lock", "a+")
    if not take_slot(lock):
        lock.close()
        return None
    write_lock_text(lock, str(os.getpid()))
    return lock


def main(argv: list[str] | None = None) -> int:
    args = slot_arguments(argv, __doc__)
    lock = open_slot(args)
    if lock is None:
        return 0
    try:
        store = RunStore(args.home)
    except StoreError as err:
        print(err, file=sys.stderr)
        return 1
    worker = Worker(store, args.data_dir, args.parent_pid, args.idle_timeout, lock)
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    import keras  # warm up: a later run starts without paying the import

    write_lock_text(lock, f"{os.getpid()} ready")
    print(f"worker {os.getpid()} ready on slot {args.slot} (keras {keras.__version__})", flush=True)
    if worker.loop():
        lock.close()  # the re-executed worker takes the slot again
        os.execv(sys.executable, [sys.executable, "-m", "mnist_core.worker", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
