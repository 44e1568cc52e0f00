"""Starting, watching and stopping the processes that serve worker slots (see `mnist_core.slots`).

Both executors use it: the local one for its worker processes, the Ray one for its single dispatcher.
A process that dies before it is ready MAX_FAILED_STARTS times in a row (TensorFlow fails to import,
a CPU without AVX, no Ray) is not started again until the next submit: this process's queued runs fail
with that process's own error, which `start_error` also holds.

Hand-written rather than a `concurrent.futures.ProcessPoolExecutor`: a serving process must outlive a
Streamlit rerun and serve every server or CLI process on the same run store (one lock file per slot,
whoever started it), keep its pid when it recycles itself, and finish a run another live process waits for.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .lifecycle import pid_alive
from .slots import lock_path, live_slots
from .db import StoreError
from .runs import RunStore

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MAX_FAILED_STARTS = 3  # one failed start can be bad luck; three in a row is this machine or install
SIGNAL_HINTS = {signal.SIGILL: "this CPU may lack instructions TensorFlow needs"}
LOG_TAIL_BYTES = 65536  # enough of worker.log to find a dead worker's last words


@dataclass
class _Child:
    """A process this supervisor started, and what judging its exit needs."""

    process: subprocess.Popen
    slot: int
    log_offset: int  # worker.log's size at its start: its own output comes after
    ready: bool = False  # it could train and served its slot


class Supervisor:
    """Keeps `python -m <module>` serving each of `slots` slots of `store`; safe to share between threads."""

    def __init__(self, store: RunStore, module: str, slots: int, data_dir: str | Path | None, idle_timeout: float,
                 threads: int = 0):
        self.store, self.home, self.module, self.slots, self.threads = store, store.home, module, slots, threads
        self.data_dir, self.idle_timeout = data_dir, idle_timeout
        self.start_error: str | None = None  # why processes cannot start; cleared by `ensure(retry=True)`
        self._children: list[_Child] = []
        self._failed_starts = 0
        self._lock = threading.Lock()  # Streamlit calls one Lab from many session threads

    def live(self) -> dict[int, int]:
        """slot -> pid of each process serving a slot right now, whichever process started it."""
        return live_slots(self.home)

    def ensure(self, retry: bool = False) -> None:
        """Start a process on each free slot; nothing while `start_error` is set, unless `retry`."""
        with self._lock:
            if retry:
                self._failed_starts, self.start_error = 0, None  # a new start may succeed (e.g. after a fix)
            self._collect_children()
            if self.start_error:
                return
            alive = self.live()
            for slot in range(self.slots):
                if slot not in alive and not self._starting(slot):
                    self._spawn(slot)

    def _starting(self, slot: int) -> bool:
        """A process we spawned for `slot` is still starting and has no lock yet."""
        return any(child.slot == slot and child.process.poll() is None for child in self._children)

    def _spawn(self, slot: int) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])), TF_CPP_MIN_LOG_LEVEL="2")
        command = [sys.executable, "-m", self.module, "--home", str(self.home), "--slot", str(slot),
                   "--parent-pid", str(os.getpid()), "--idle-timeout", str(self.idle_timeout),
                   "--threads", str(self.threads)]
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
        """Wait for exited processes (no zombies); after too many failed starts in a row, give up."""
        running = []
        for child in self._children:
            child.ready = child.ready or _text(lock_path(self.home, child.slot)) == f"{child.process.pid} ready"
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
        """What killed a process at start-up: the signal, or the last line it printed."""
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
        self.start_error = message
        waiting = [run.id for run in self.store.list(("queued",))
                   if run.submitter_pid in (None, os.getpid()) or not pid_alive(run.submitter_pid)]
        self.store.fail_queued(waiting, message)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the processes this one started; each decides itself whether its run is abandoned.

        A process training a run that another live process submitted finishes it first and then exits;
        this call does not wait for it.
        """
        with self._lock:
            children, self._children = self._children, []
        waiting = [child.process for child in children if child.process.poll() is None]
        for process in waiting:
            process.send_signal(signal.SIGTERM)
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

    def _serves_another(self, pid: int) -> bool:
        """The process trains a run that another live process submitted (assumed when unreadable)."""
        try:
            running = self.store.list(("running",))
        except StoreError:
            return True  # it checks for itself whether to finish its run
        return any(run.worker_pid == pid and run.submitter_pid and run.submitter_pid != os.getpid()
                   and pid_alive(run.submitter_pid) for run in running)


def _text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _last_line(path: Path, offset: int) -> str | None:
    """The last non-blank line written to `path` after byte `offset`: a dead process's own error."""
    try:
        with open(path, "rb") as log:
            log.seek(max(offset, log.seek(0, os.SEEK_END) - LOG_TAIL_BYTES))
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return None
    return next((line.strip() for line in reversed(lines) if line.strip()), None)
