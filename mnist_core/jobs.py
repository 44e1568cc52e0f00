"""Training jobs: queue runs in the store and keep warm worker processes that train them.

A worker (`python -m mnist_core.worker`) holds an exclusive lock on `worker-<slot>.lock` for as
long as it lives, so the lock tells any process whether a worker is alive, even after SIGKILL.
With one slot (the default) runs train one at a time and later ones wait in the queue.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import config
from .budget import summarize
from .spec import Architecture
from .store import Run, RunStore
from .train import Recipe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INTERRUPTED = "The training worker stopped unexpectedly (killed, crashed, or the app was restarted)."


@dataclass(frozen=True)
class Submitted:
    """A queued run and how many runs are ahead of it."""

    run_id: int
    ahead: int


class Lab:
    """The run store plus the worker processes that train its queued runs."""

    def __init__(self, home: str | Path | None = None, data_dir: str | Path | None = None,
                 max_workers: int | None = None, idle_timeout: float = 600.0):
        self.home = Path(home) if home is not None else config.lab_home()
        self.data_dir = data_dir if data_dir is not None else config.data_dir()
        self.max_workers = max_workers or config.max_workers()
        self.idle_timeout = idle_timeout
        self.store = RunStore(self.home)
        self._children: list[subprocess.Popen] = []
        self.reap()

    # -- workers ---------------------------------------------------------------------------

    def lock_path(self, slot: int) -> Path:
        return self.home / f"worker-{slot}.lock"

    def live_workers(self) -> dict[int, int]:
        """slot -> pid of each worker that holds its lock right now."""
        alive = {}
        for slot in range(self.max_workers):
            path = self.lock_path(slot)
            if not path.exists():
                continue
            with open(path, "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    handle.seek(0)
                    text = handle.read().strip()
                    alive[slot] = int(text) if text.isdigit() else -1
                    continue
                fcntl.flock(handle, fcntl.LOCK_UN)
        return alive

    def ensure_worker(self) -> None:
        """Start a worker on each free slot, so queued runs start and the next start is warm."""
        self._collect_children()
        alive = self.live_workers()
        for slot in range(self.max_workers):
            if slot not in alive and not self._starting(slot):
                self._spawn(slot)

    def _starting(self, slot: int) -> bool:
        """A worker we spawned for `slot` is still importing TensorFlow and has no lock yet."""
        return any(getattr(child, "slot", None) == slot and child.poll() is None for child in self._children)

    def _spawn(self, slot: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])), TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, "-m", "mnist_core.worker", "--home", str(self.home), "--slot", str(slot),
                   "--parent-pid", str(os.getpid()), "--idle-timeout", str(self.idle_timeout)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        with open(self.home / "worker.log", "ab") as log:
            # A new session: a terminal's Ctrl-C goes to the caller, which decides to stop runs.
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        child.slot = slot  # type: ignore[attr-defined]
        self._children.append(child)

    def _collect_children(self) -> None:
        """Wait for exited workers so none lingers as a zombie."""
        self._children = [child for child in self._children if child.poll() is None]

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the workers this process started; a run they were training is marked interrupted."""
        for child in self._children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self._children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self._children = []
        self.reap()

    def reap(self) -> list[int]:
        """Mark 'running' runs whose worker is gone as interrupted; returns their ids."""
        running = self.store.list(("running",))
        if not running:
            return []
        alive = set(self.live_workers().values())
        dead = [run.id for run in running if run.worker_pid not in alive]
        self.store.mark_interrupted(dead, INTERRUPTED)
        return dead

    # -- runs ------------------------------------------------------------------------------

    def submit(self, arch: Architecture, recipe: Recipe, name: str | None = None) -> Submitted:
        """Queue a run of `arch` and make sure a worker will train it.

        Raises StoreError (with a clear message) when the store cannot take a run.
        """
        summary = summarize(arch)
        run_id = self.store.create_run(name or arch.name, arch, recipe.to_dict(), summary.total,
                                       summary.trainable)
        self.ensure_worker()
        # Counted after inserting, so two simultaneous starts cannot both see an empty queue.
        return Submitted(run_id, sum(run.id < run_id for run in self.active()))

    def stop(self, run_id: int) -> None:
        """Ask for a run to stop; a queued run is cancelled at once."""
        self.store.request_stop(run_id)

    def active(self) -> list[Run]:
        """Queued and running runs, oldest first, after reaping dead workers' runs."""
        self.reap()
        return sorted(self.store.list(("queued", "running")), key=lambda run: run.id)

    def wait(self, run_id: int, poll: float = 0.25, timeout: float | None = None) -> Run:
        """Block until the run is finished (or `timeout` seconds pass); returns its latest row."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.store.get(run_id)
            if run is None or run.finished or (deadline and time.monotonic() > deadline):
                return run
            if run.status == "queued" or not self.live_workers():
                self.reap()
                self.ensure_worker()
            time.sleep(poll)
