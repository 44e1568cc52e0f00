"""Where queued runs train: worker processes on this machine, or a Ray cluster (MNIST_LAB_EXECUTOR).

An executor only keeps the processes going that train the run store's queue, and says in words where runs
train and what keeps them waiting. Runs themselves go through the store for both: a submit queues one, Stop
sets its flag, and the process serving a slot trains or dispatches it with the one `mnist_core.runner`.
"""

from __future__ import annotations

import os

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .cluster import read_status
from .history import Run
from .runs import RunStore
from .supervisor import Supervisor
from .words import plural


@dataclass(frozen=True)
class ExecutorStatus:
    """Where runs train, in words ("on this machine, one at a time"), and why they cannot now (else None)."""

    where: str
    problem: str | None = None


class Executor(Protocol):
    """What the Lab asks of where runs train; as small as `concurrent.futures.Executor`."""

    def ensure_running(self, retry: bool = False) -> None:
        """Start what trains queued runs where nothing does (cheap when it runs); `retry` after failed starts."""

    def live_workers(self) -> dict[int, int]:
        """slot -> pid of each process serving a slot now: a running run of any other pid has lost its trainer."""

    def status(self) -> ExecutorStatus:
        """Where runs train and what stops them now."""

    def waiting_text(self, run: Run, ahead: list[Run], status: ExecutorStatus) -> str:
        """What queued `run` waits for, in words, with `ahead` the active runs that train before it."""

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the processes this process started; a run they were training is interrupted (or finished,
        when another live process submitted it)."""


def start_problem(supervisor: Supervisor) -> str | None:
    return f"The training worker cannot start: {supervisor.start_error}" if supervisor.start_error else None


class LocalExecutor:
    """`max_workers` worker processes on this machine (`python -m mnist_core.worker`), one run each at a time."""

    def __init__(self, store: RunStore, data_dir: str | Path | None, idle_timeout: float, max_workers: int):
        # Side by side, each worker trains on its share of the cores rather than all of them fighting for each.
        threads = max(1, (os.cpu_count() or 1) // max_workers) if max_workers > 1 else 0
        self.supervisor = Supervisor(store, "mnist_core.worker", max_workers, data_dir, idle_timeout, threads)
        self.slots = max_workers
        self.ensure_running, self.live_workers = self.supervisor.ensure, self.supervisor.live
        self.shutdown = self.supervisor.shutdown

    def status(self) -> ExecutorStatus:
        return ExecutorStatus("on this machine, " + ("one at a time" if self.slots == 1 else
                                                     f"up to {self.slots} at once"),
                              start_problem(self.supervisor))

    def waiting_text(self, run: Run, ahead: list[Run], status: ExecutorStatus) -> str:
        if ahead:
            at_once = "one training at a time keeps" if self.slots == 1 else f"{self.slots} trainings at a time keep"
            return (f"Run {run.id} is queued: {plural(len(ahead), 'run')} ahead of it "
                    f"{'trains' if len(ahead) == 1 else 'train'} first ({at_once} this machine responsive).")
        return "Waiting for the training worker (it loads TensorFlow once, then stays warm)..."


class RayExecutor:
    """One dispatcher process (`python -m mnist_core.dispatcher`) that sends runs to a Ray cluster as tasks;
    the cluster decides how many train at once."""

    def __init__(self, store: RunStore, data_dir: str | Path | None, idle_timeout: float):
        self.supervisor = Supervisor(store, "mnist_core.dispatcher", 1, data_dir, idle_timeout)
        self.ensure_running, self.live_workers = self.supervisor.ensure, self.supervisor.live
        self.shutdown = self.supervisor.shutdown

    def status(self) -> ExecutorStatus:
        """The dispatcher's last word about its cluster: a live one's, or a failure's until the next try."""
        cluster = read_status(self.supervisor.home)
        if cluster and not (cluster.state == "unreachable" or cluster.pid in self.live_workers().values()):
            cluster = None
        problem = cluster.message if cluster and cluster.state != "connected" and cluster.message else None
        where = cluster.text() if cluster else "on a Ray cluster (the dispatcher starts with the first run)"
        return ExecutorStatus(where, start_problem(self.supervisor) or problem)

    def waiting_text(self, run: Run, ahead: list[Run], status: ExecutorStatus) -> str:
        if status.problem:
            return f"Run {run.id} is queued until the Ray cluster answers."
        queued_ahead = sum(other.status == "queued" for other in ahead)
        if queued_ahead:
            return (f"Run {run.id} is queued: {plural(queued_ahead, 'run')} ahead of it "
                    f"{'waits' if queued_ahead == 1 else 'wait'} for room on the Ray cluster.")
        return f"Run {run.id} goes to the Ray cluster as soon as it has room..."


def make_executor(kind: str, store: RunStore, data_dir: str | Path | None, idle_timeout: float,
                  max_workers: int) -> Executor:
    """The executor `kind` ("local" or "ray", as `config.executor()` reads MNIST_LAB_EXECUTOR) names."""
    if kind == "ray":
        return RayExecutor(store, data_dir, idle_timeout)
    return LocalExecutor(store, data_dir, idle_timeout, max_workers)
