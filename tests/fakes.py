"""A fake executor for tests whose subject is a page, not training: it starts no worker process (no
TensorFlow import per test) and trains nothing, so queued runs stay queued until the test says otherwise."""

from __future__ import annotations

from mnist_core.executors import ExecutorStatus, LocalExecutor


class IdleExecutor:
    """Says what the local executor says about one slot, and serves it with `workers` (slot -> pid): a test
    that puts a 'running' row in the store names the pid that trains it here, so no Lab marks it interrupted."""

    def __init__(self) -> None:
        self.workers: dict[int, int] = {}
        self.slots = 1

    def ensure_running(self, retry: bool = False) -> None:
        pass

    def live_workers(self) -> dict[int, int]:
        return dict(self.workers)

    def status(self) -> ExecutorStatus:
        return ExecutorStatus("on this machine, one at a time")

    waiting_text = LocalExecutor.waiting_text

    def shutdown(self, timeout: float = 10.0) -> None:
        pass
