"""What every trainer of queued runs shares, local worker or Ray dispatcher: how an unfinished run is
described, whether a process lives, and progress that outlives a busy or full run store."""

from __future__ import annotations

import os
import time
from typing import Callable

from .db import StoreError
from .events import Event
from .runs import RunStore
from .words import plural

INTERRUPTED = "The training worker stopped unexpectedly (killed, crashed, or the app was restarted)."
RETRY_SECONDS = 2.0  # a busy or full store is asked again after this pause, never in every batch


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists but belongs to another user
    return True


class ProgressLog:
    """A run's progress events on their way to the store, in order.

    The store may be locked by another program or its disk full for a while: the events then wait here
    and training goes on; they are written, all at once, when the store answers again.
    """

    def __init__(self, store: RunStore, run_id: int, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.store, self.run_id, self.log, self.clock = store, run_id, log, clock
        self.written = 0  # events the store holds: the next one's number
        self.pending: list[Event] = []
        self.retry_at = 0.0
        self.said: str | None = None  # the last problem logged, so a long outage is logged once

    def publish(self, event: Event) -> None:
        """Keep `event` and pass on what waits, unless the store failed moments ago; never raises."""
        self.pending.append(event)
        self.catch_up()

    def catch_up(self) -> None:
        """Pass on the waiting events if the last failure is long enough ago; never raises."""
        if self.pending and self.clock() >= self.retry_at:
            try:
                self.flush()
            except StoreError:
                pass  # said in the log by `flush`; the events wait for the next try

    def flush(self) -> None:
        """Write every waiting event now; raises StoreError (they wait on) while the store cannot take them."""
        if not self.pending:
            return
        try:
            self.store.add_events(self.run_id, self.written, self.pending, worker_pid=os.getpid())
        except StoreError as err:
            self.retry_at = self.clock() + RETRY_SECONDS
            if str(err) != self.said:
                self.said = str(err)
                self.log(f"run {self.run_id}: {plural(len(self.pending), 'progress event')} held back ({err}); "
                         f"training goes on")
            raise
        if self.said:
            self.log(f"run {self.run_id}: the store answers again; "
                     f"{plural(len(self.pending), 'waiting event')} written")
            self.said = None
        self.written += len(self.pending)
        self.pending = []
