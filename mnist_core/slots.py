"""Worker slots: `worker-<slot>.lock` in the run store's folder, held by the process serving the slot.

The serving process (a local worker, or the Ray dispatcher) holds an exclusive lock on its slot's file
for as long as it lives, so the lock tells any process whether it is alive, even after SIGKILL. Its text
is "<pid>", then "<pid> ready" once it can train: a process that died before that failed to start.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import time
from pathlib import Path

LOCK_TRIES = 20  # x 50 ms: rides out another process briefly probing the slot lock


def lock_path(home: Path, slot: int) -> Path:
    """The lock file of `slot` in the run store's folder `home`."""
    return home / f"worker-{slot}.lock"


def live_slots(home: Path) -> dict[int, int]:
    """slot -> pid of each process that holds its slot's lock right now, whichever process started it."""
    alive = {}
    for path in home.glob("worker-*.lock"):
        slot, text = path.stem.removeprefix("worker-"), held_text(path)
        if slot.isdigit() and text is not None:
            pid = text.split()[0] if text else ""
            alive[int(slot)] = int(pid) if pid.isdigit() else -1
    return alive


def held_text(path: Path) -> str | None:
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


def slot_arguments(argv: list[str] | None, description: str) -> argparse.Namespace:
    """The arguments a serving process (worker or Ray dispatcher) is started with."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--home", required=True)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--idle-timeout", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow's threads for ops (0: every core)")
    return parser.parse_args(argv)


def open_slot(args: argparse.Namespace):
    """This slot's lock file, taken and holding our pid; None when another process already serves the slot."""
    lock = open(lock_path(Path(args.home), args.slot), "a+")
    if not _take(lock):
        lock.close()
        return None
    write_lock_text(lock, str(os.getpid()))
    return lock


def mark_ready(lock) -> None:
    """Say in the lock file that this process can train now (no longer a start that may fail)."""
    write_lock_text(lock, f"{os.getpid()} ready")


def write_lock_text(lock, text: str) -> None:
    """Replace the lock file's text (read by `live_slots` and the start-up check)."""
    lock.truncate(0)
    lock.write(text)
    lock.flush()


def _take(lock) -> bool:
    """Take the slot lock, waiting briefly: a Lab checking for live workers holds it for a moment."""
    for _ in range(LOCK_TRIES):
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05)
    return False
