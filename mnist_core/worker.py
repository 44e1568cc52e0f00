"""The local training worker process: holds a slot lock, imports TensorFlow once, trains queued runs.

Started by the local executor (`mnist_core.executors`); run by hand only for debugging:
    python -m mnist_core.worker --home ~/.mnist-budget-lab --slot 0 --parent-pid <pid>
It exits when idle for `--idle-timeout` seconds, on SIGTERM, or when its parent process dies,
marking a run it was training as interrupted, unless another live process submitted that run:
then it finishes the run first, and claims no more (the rules live in `mnist_core.runner`).
Once TensorFlow is imported it marks its lock file ready: a worker that died before that failed to start.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from .data import MnistDataError, load_mnist
from .db import StoreError
from .runner import RUNS_BEFORE_RECYCLE, Runner
from .runs import RunStore
from .slots import mark_ready, open_slot, slot_arguments
from .train import limit_threads, yield_to_pages

IDLE_POLL_SECONDS = 0.2  # how quickly a queued run is picked up


def serve(runner: Runner, data_dir: str | None, idle_timeout: float) -> bool:
    """Train queued runs until idle, told to leave, or due for recycling (returns True then: the worker
    re-executes itself, same pid, fresh memory, one TensorFlow import)."""
    idle_since, runs = time.monotonic(), 0
    while not runner.leaving():
        run = runner.claim()
        if run is None:
            if time.monotonic() - idle_since > idle_timeout:
                return False
            time.sleep(IDLE_POLL_SECONDS)
            continue
        runner.train(run, data_dir)
        runs += 1
        if runs >= RUNS_BEFORE_RECYCLE:
            return not runner.leaving()
        idle_since = time.monotonic()
    return False


def read_mnist_ahead(data_dir: str | None) -> None:
    """Read MNIST into this process's cache while no run waits for it: the first run's chart starts a quarter
    of a second sooner (`bench.first_point`). A folder that cannot be read fails the run that needs it, with
    its own message, as before."""
    try:
        load_mnist(data_dir)
    except MnistDataError:
        pass


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
    runner = Runner(store, args.parent_pid, lock)
    signal.signal(signal.SIGTERM, runner.on_sigterm)
    if args.threads:
        limit_threads(args.threads)
    yield_to_pages()
    import keras  # warm up: a later run starts without paying the import

    mark_ready(lock)
    print(f"worker {os.getpid()} ready on slot {args.slot} (keras {keras.__version__})", flush=True)
    read_mnist_ahead(args.data_dir)
    if serve(runner, args.data_dir, args.idle_timeout):
        lock.close()  # the re-executed worker takes the slot again
        os.execv(sys.executable, [sys.executable, "-m", "mnist_core.worker", *(argv or sys.argv[1:])])
    return 0


if __name__ == "__main__":
    sys.exit(main())
