"""Training jobs: queue runs in the store and keep warm worker processes that train them.

A worker (`python -m mnist_core.worker`) holds an exclusive lock on `worker-<slot>.lock` for as
long as it lives, so the lock tells any process whether a worker is alive, even after SIGKILL.
With one slot (the default) runs train one at a time and later ones wait in the queue.
Each run records the pid of the process that submitted it, and a worker told to leave (its Lab
shut down, or its parent died) still finishes a run another live process is waiting for.
A worker that dies before it is ready MAX_FAILED_STARTS times in a row (TensorFlow fails to import,
a CPU without AVX) is not started again until the next submit: this process's queued runs fail
with the worker's own error, which `Lab.worker_error` also holds.
An ablation study (`submit_study`, see study.py) is just many runs in the same queue, tagged with
its id: workers train them like any other run, and a restarted app's workers pick up those still queued.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import config
from .budget import summarize
from .db import StoreError
from .history import Run
from .lifecycle import INTERRUPTED, pid_alive
from .recipe import Recipe
from .runs import RunStore
from .spec import Architecture
from .study import check_seeds, variants
from .words import plural

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_FAILED_STARTS = 3  # one failed start can be bad luck; three in a row is this machine or install
SIGNAL_HINTS = {signal.SIGILL: "this CPU may lack instructions TensorFlow needs"}
LOG_TAIL_BYTES = 65536  # enough of worker.log to find a dead worker's last words


@dataclass(frozen=True)
class Submitted:
    """A queued run and how many runs are ahead of it."""

    run_id: int
    ahead: int


@dataclass
class _Child:
    """A worker process this Lab started, and what judging its exit needs."""

    process: subprocess.Popen
    slot: int
    log_offset: int  # worker.log's size at its start: its own output comes after
    ready: bool = False  # it imported TensorFlow and served its slot


def ahead_of(run: Run, active: list[Run]) -> list[Run]:
    """The active runs that train before queued `run`: those running, then the queue's order
    (single runs before study runs, each oldest first), as `RunStore.claim_next` takes them."""
    def order(other: Run) -> tuple[bool, int]:
        return other.study_id is not None, other.id

    return [other for other in active if other.id != run.id
            and (other.status == "running" or order(other) < order(run))]


class Lab:
    """The run store plus the worker processes that train its queued runs; safe to share between threads."""

    def __init__(self, home: str | Path | None = None, data_dir: str | Path | None = None,
                 max_workers: int | None = None, idle_timeout: float = 600.0):
        self.home = Path(home) if home is not None else config.lab_home()
        self.data_dir = data_dir if data_dir is not None else config.data_dir()
        self.executor = config.executor()
        # With Ray one dispatcher process serves every run; the cluster decides how many train at once.
        self.max_workers = 1 if self.executor == "ray" else max_workers or config.max_workers()
        self.idle_timeout = idle_timeout
        self.store = RunStore(self.home)
        self.worker_error: str | None = None  # why workers cannot start; cleared by the next submit
        self._children: list[_Child] = []
        self._failed_starts = 0
        self._lock = threading.Lock()  # Streamlit calls one Lab from many session threads
        self.reap()

    # -- workers ---------------------------------------------------------------------------

    def lock_path(self, slot: int) -> Path:
        return self.home / f"worker-{slot}.lock"

    def live_workers(self) -> dict[int, int]:
        """slot -> pid of each worker that holds its lock right now, whichever process started it."""
        alive = {}
        for path in self.home.glob("worker-*.lock"):
            slot, text = path.stem.removeprefix("worker-"), _held_text(path)
            if slot.isdigit() and text is not None:
                pid = text.split()[0] if text else ""
                alive[int(slot)] = int(pid) if pid.isdigit() else -1
        return alive

    def where(self) -> str:
        """Where runs train, in words: this machine's worker processes, or the Ray cluster and its size."""
        if self.executor == "local":
            return "on this machine, " + ("one at a time" if self.max_workers == 1
                                          else f"up to {self.max_workers} at once")
        status = self._cluster_status()
        return status.text() if status else "on a Ray cluster (the dispatcher starts with the first run)"

    def waiting_text(self, run: Run, active: list[Run]) -> str:
        """What a queued run waits for, in words, for the Train page."""
        ahead = ahead_of(run, active)
        if self.executor == "ray":
            if self.executor_problem():
                return f"Run {run.id} is queued until the Ray cluster answers."
            queued_ahead = sum(other.status == "queued" for other in ahead)
            return (f"Run {run.id} is queued: {plural(queued_ahead, 'run')} ahead of it "
                    f"{'waits' if queued_ahead == 1 else 'wait'} for room on the Ray cluster." if queued_ahead else f"Run {run.id} goes to the Ray cluster as soon as it has room...")
        if ahead:
            return (f"Run {run.id} is queued: {plural(len(ahead), 'run')} ahead of it "
                    f"{'trains' if len(ahead) == 1 else 'train'} first "
                    f"(one training at a time keeps this machine responsive).")
        return "Waiting for the training worker (it loads TensorFlow once, then stays warm)..."

    def executor_problem(self) -> str | None:
        """Why queued runs wait for the Ray cluster (it cannot be reached or joined), else None."""
        status = self._cluster_status()
        return status.message if status and status.state != "connected" and status.message else None

    def _cluster_status(self):
        """The dispatcher's last word about its cluster: a live one's, or a failure's until the next try."""
        if self.executor != "ray":
            return None
        from .dispatcher import read_status

        status = read_status(self.home)
        if status and (status.state == "unreachable" or status.pid in self.live_workers().values()):
            return status
        return None

    def ensure_worker(self) -> None:
        """Start a worker on each free slot, so queued runs start and the next start is warm.

        Does nothing while `worker_error` is set (workers keep dying at start-up).
        """
        with self._lock:
            self._collect_children()
            if self.worker_error:
                return
            alive = self.live_workers()
            for slot in range(self.max_workers):
                if slot not in alive and not self._starting(slot):
                    self._spawn(slot)

    def needs_worker(self) -> bool:
        """Runs are queued but a slot has no worker, live or starting: then call `ensure_worker()`.

        Cheap enough for a page to ask every second; False while `worker_error` is set.
        Raises StoreError when the store cannot be read.
        """
        if not self.store.list(("queued",)):
            return False
        with self._lock:
            self._collect_children()
            if self.worker_error:
                return False
            alive = self.live_workers()
            return any(slot not in alive and not self._starting(slot) for slot in range(self.max_workers))

    def _starting(self, slot: int) -> bool:
        """A worker we spawned for `slot` is still importing TensorFlow and has no lock yet."""
        return any(child.slot == slot and child.process.poll() is None for child in self._children)

    def _spawn(self, slot: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])), TF_CPP_MIN_LOG_LEVEL="2")
        module = "mnist_core.dispatcher" if self.executor == "ray" else "mnist_core.worker"
        command = [sys.executable, "-m", module, "--home", str(self.home), "--slot", str(slot),
                   "--parent-pid", str(os.getpid()), "--idle-timeout", str(self.idle_timeout)]
        if self.data_dir is not None:
            command += ["--data-dir", str(self.data_dir)]
        self.home.mkdir(parents=True, exist_ok=True)  # its folder may have been deleted while the app ran
        with open(self.home / "worker.log", "ab") as log:
            offset = log.seek(0, os.SEEK_END)
            # A new session: a terminal's Ctrl-C goes to the caller, which decides to stop runs.
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, start_new_session=True)
        self._children.append(_Child(process, slot, offset))

    def _collect_children(self) -> None:
        """Wait for exited workers (no zombies); after too many failed starts in a row, give up."""
        running = []
        for child in self._children:
            child.ready = child.ready or _text(self.lock_path(child.slot)) == f"{child.process.pid} ready"
            if child.ready:
                self._failed_starts = 0
            if child.process.poll() is None:
                running.append(child)
            elif child.process.returncode != 0 and not child.ready:
                self._failed_starts += 1
                if self._failed_starts >= MAX_FAILED_STARTS:
                    self._give_up(self._start_error(child))
        self._children = running

    def _start_error(self, child: _Child) -> str:
        """What killed a worker at start-up: the signal, or the last line it printed."""
        code = child.process.returncode
        if code < 0:
            sig = signal.Signals(-code)
            detail = f"killed by {sig.name} ({signal.strsignal(sig)})"
            detail += f": {SIGNAL_HINTS[sig]}" if sig in SIGNAL_HINTS else ""
        else:
            detail = _last_line(self.home / "worker.log", child.log_offset) or f"exit code {code}"
        return (f"The training worker failed to start {self._failed_starts} times in a row: {detail} "
                f"(full output in {self.home / 'worker.log'}).")

    def _give_up(self, message: str) -> None:
        """Stop respawning and fail the queued runs nobody else will start: ours and orphans'."""
        self.worker_error = message
        waiting = [run.id for run in self.store.list(("queued",))
                   if run.submitter_pid in (None, os.getpid()) or not pid_alive(run.submitter_pid)]
        self.store.fail_queued(waiting, message)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the workers this process started; a run they were training is marked interrupted.

        A worker training a run that another live process submitted finishes it first and then exits;
        this call does not wait for it.
        """
        with self._lock:
            children, self._children = self._children, []
        waiting = [child.process for child in children if child.process.poll() is None]
        for process in waiting:
            process.send_signal(signal.SIGTERM)  # the worker itself decides whether its run is abandoned
        deadline = time.monotonic() + timeout
        while True:
            waiting = [process for process in waiting
                       if process.poll() is None and not self._serves_another(process.pid)]
            if not waiting or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        for process in waiting:
            process.kill()
            process.wait()
        self.reap()

    def _serves_another(self, worker_pid: int) -> bool:
        """The worker trains a run that another live process submitted (assumed when unreadable)."""
        try:
            running = self.store.list(("running",))
        except StoreError:
            return True  # it checks for itself whether to finish its run
        return any(run.worker_pid == worker_pid and run.submitter_pid and run.submitter_pid != os.getpid()
                   and pid_alive(run.submitter_pid) for run in running)

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
        with self._lock:
            self._failed_starts, self.worker_error = 0, None  # a new start may succeed (e.g. after a fix)
        run_id = self.store.create_run(name or arch.name, arch, recipe.to_dict(), summary.total,
                                       summary.trainable, submitter_pid=os.getpid())
        self.ensure_worker()
        # Counted after inserting, so two simultaneous starts cannot both see an empty queue.
        return Submitted(run_id, len(ahead_of(self.store.get(run_id), self.active())))

    def submit_study(self, arch: Architecture, recipe: Recipe, seeds: tuple[int, ...] = (0,),
                     include_presets: bool = False, name: str | None = None) -> int:
        """Queue an ablation study of `arch` and make sure a worker will train it; returns the study id.

        One run per variant (`study.variants`: the baseline, each BatchNorm and Dropout toggle, the
        presets if asked) and seed (1 to 5), all with `recipe` but for its seed. Every variant's first
        seed is queued before any second seed, so a partial study already compares every variant.
        Raises ValueError for bad seeds, StoreError when the store cannot take the runs.
        """
        seeds = check_seeds(seeds)
        plan = variants(arch, include_presets)
        name = name or f"Ablation of {arch.name}"
        with self._lock:
            self._failed_starts, self.worker_error = 0, None  # as in `submit`: a new start may succeed
        study_id = self.store.create_study(name, arch, recipe.to_dict(), seeds)
        for seed in seeds:
            seeded = replace(recipe, seed=seed).to_dict()
            for variant in plan:
                counts = summarize(variant.arch)
                self.store.create_run(f"{name}: {variant.label}, seed {seed}", variant.arch, seeded, counts.total,
                                      counts.trainable, submitter_pid=os.getpid(), study_id=study_id,
                                      variant=variant.key)
            self.ensure_worker()  # after each seed's runs: training starts while later seeds are queued
        return study_id

    def stop(self, run_id: int) -> None:
        """Ask for a run to stop; a queued run is cancelled at once."""
        self.store.request_stop(run_id)

    def stop_study(self, study_id: int) -> list[int]:
        """Stop every queued and running run of a study (queued ones at once); returns their ids."""
        return self.store.request_stop_study(study_id)

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


def _held_text(path: Path) -> str | None:
    """The text of a lock file that a process holds right now; None when none holds it."""
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # shared: two probing Labs never collide
            except BlockingIOError:
                return handle.read().strip()
    except OSError:
        pass
    return None


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _last_line(path: Path, offset: int) -> str | None:
    """The last non-blank line written to `path` after byte `offset`: a dead worker's own error."""
    try:
        with open(path, "rb") as log:
            log.seek(max(offset, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.strip()), None)
