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
from .jobs import INTERRUPTED, pid_alive
from .spec import SpecError
from .store import Run, RunStore, StoreError
from .train import Recipe, train

IDLE_POLL_SECONDS = 0.2  # how quickly a queued run is picked up
STORE_RETRY_SECONDS = 2.0  # a locked or busy database is retried after this pause, not fatal
LOCK_TRIES = 20  # x 50 ms: rides out another process briefly probing the slot lock
# Keras/TF keep ~20-30 MB per trained model even after clear_session(); a worker re-executes
# itself (same pid, fresh memory, one TF import) after this many runs to stay bounded.
RUNS_BEFORE_RECYCLE = 5


class Worker:
    """One worker's loop; `exit_requested` is set by SIGTERM."""

    def __init__(self, store: RunStore, data_dir: str | None, parent_pid: int, idle_timeout: float):
        self.store, self.data_dir = store, data_dir
        self.parent_pid, self.idle_timeout = parent_pid, idle_timeout
        self.exit_requested = False

    def on_sigterm(self, *_) -> None:
        self.exit_requested = True

    def parent_gone(self) -> bool:
        return self.parent_pid > 0 and os.getppid() != self.parent_pid

    def leaving(self) -> bool:
        """Told to exit, or orphaned: claim no new run."""
        return self.exit_requested or self.parent_gone()

    def must_abandon(self, run: Run) -> bool:
        """Leaving, and nobody else still waits for `run`: its submitter is our parent or dead."""
        if not self.leaving():
            return False
        return not (run.submitter_pid and run.submitter_pid != self.parent_pid and pid_alive(run.submitter_pid))

    def loop(self) -> bool:
        """Train queued runs until idle, told to exit, or due for recycling (returns True then)."""
        idle_since, runs = time.monotonic(), 0
        while not self.leaving():
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

        try:
            self.record(run, self.outcome(run))
        finally:
            keras.backend.clear_session()  # drops the run's graphs and variables
            gc.collect()

    def record(self, run: Run, ending: dict | None, reason: str = INTERRUPTED) -> None:
        """Store how `run` ended (None: interrupted for `reason`); a locked database is retried until SIGTERM."""
        def store_ending() -> None:
            if ending is None:
                self.store.mark_interrupted([run.id], reason)
            else:
                self.store.finish(run.id, **ending)

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

    def outcome(self, run: Run) -> dict | None:
        """Train `run` and save its model: `finish` arguments, or None when it was abandoned."""
        seq = 0

        def publish(event) -> None:
            nonlocal seq
            self.store.add_event(run.id, seq, event)
            seq += 1

        def should_stop() -> bool:
            return self.must_abandon(run) or self.store.stop_requested(run.id)

        versions = run_versions()
        try:
            data = load_mnist(self.data_dir)
            result = train(run.spec, Recipe.from_dict(run.recipe), data, publish, should_stop)
            if result.status == "stopped" and not self.store.stop_requested(run.id):
                return None
            save_model(result.model, self.store.model_path(run.id))
            analysis = analyse_model(result.model, data, run.id)
            if analysis is not None:  # saved before `record`: finished means analysed
                save_analysis_or_log(self.store, run.id, analysis)
            return dict(status=result.status, test_accuracy=result.test_accuracy, test_loss=result.test_loss,
                        versions=versions)
        except Exception as err:  # a worker must outlive any one bad run
            return dict(status="failed", error=failure_text(err), versions=versions)


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
    """Write the .keras file atomically: a reader never sees a half-written model."""
    tmp = path.with_name("model.tmp.keras")
    model.save(tmp)
    tmp.replace(path)


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
    print(f"worker {os.getpid()}: {text}", flush=True)


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
    worker = Worker(store, args.data_dir, args.parent_pid, args.idle_timeout)
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
