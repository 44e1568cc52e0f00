"""The Ray dispatcher process: with MNIST_LAB_EXECUTOR=ray it takes the place of the local workers.

Started by the Ray executor (`mnist_core.executors`) exactly like a worker (slot 0, `worker-0.lock`),
so the Lab's liveness checks, reaping and shutdown are the same for both. It joins the Ray cluster at
RAY_ADDRESS (Ray's own variable; unset, it starts a Ray instance of its own on this machine), puts MNIST
in the object store once, and claims queued runs while the cluster has room for another: each becomes a Ray task
asking for MNIST_LAB_RAY_CPUS CPUs (and a GPU where the cluster has one). One relay actor carries
progress and Stop between the tasks and this process, which alone writes to the run store (SQLite)
and records each returned run with the same `Runner` a local worker uses.

Faults: a run whose Ray worker or node dies is marked interrupted with its history kept, not retried
(a second try would restart its curve under the same run). When this process dies, Ray ends its relay
and tasks with it, and the next Lab marks its runs interrupted, as for a local worker. An unreachable
cluster leaves runs queued, says why in `dispatcher.json`, and is tried again every RETRY_SECONDS.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .cluster import STATUS_FILE, ClusterStatus, Relay, read_status, train_task, unshipped
from .data import load_mnist
from .db import StoreError
from .events import Event
from .files import write_atomically
from .history import Run
from .lifecycle import ProgressLog
from .runner import RUNS_BEFORE_RECYCLE, Runner, Trained, log
from .slots import mark_ready, open_slot, slot_arguments
from .runs import RunStore

PACKAGE = Path(__file__).resolve().parent
POLL_SECONDS = 0.2  # how often progress, Stop and finished tasks are looked at
RETRY_SECONDS = 10.0  # how often an unreachable cluster is tried again
CONNECT_TIMEOUT = 3.0  # seconds to wait for the cluster's port before calling it unreachable
HEALTH_SECONDS = 5.0  # how often a joined cluster's port is checked: a cluster gone shows within seconds
JOIN_TIMEOUT = 60.0  # seconds joining a cluster may take: ~1 s here, more on a busy network
RAY_INTERRUPTED = ("The Ray worker training this run stopped unexpectedly (killed, out of memory, or its node "
                   "left the cluster).")
NEEDS_RAY = "MNIST_LAB_EXECUTOR=ray needs Ray on this machine: pip install -r requirements-ray.txt"


def cluster_address() -> str:
    """RAY_ADDRESS as Ray reads it; empty for a Ray instance of this process's own."""
    return os.environ.get("RAY_ADDRESS", "").strip()


def unreachable(address: str) -> str | None:
    """Why a host:port (or ray://host:port) address cannot be reached; None when its port answers."""
    if not address or address in ("auto", "local"):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT):
            return None
    except ValueError:
        return f"RAY_ADDRESS={address!r} is not host:port"
    except OSError as err:
        return f"nothing answers at {address} ({err.strerror or err})"


class Dispatcher:
    """Claims queued runs as Ray tasks and has `runner` record what comes back."""

    def __init__(self, runner: Runner, data_dir: str | None, idle_timeout: float, cpus: float, gpus: float | None):
        self.runner, self.store = runner, runner.store
        self.data_dir, self.idle_timeout = data_dir, idle_timeout
        self.cpus, self.gpus = cpus, gpus
        self.address = cluster_address()
        self.connected = False
        self.tried_at = -RETRY_SECONDS
        self.relay = self.task = self.data_ref = None
        self.described: dict[str, float] = {}  # the cluster's resources when dispatcher.json last said them
        self.inflight: dict[Any, Run] = {}  # Ray object ref -> its run
        self.progress: dict[int, ProgressLog] = {}  # run id -> its events on their way to the store
        self.asked_to_stop: set[int] = set()

    # -- the cluster ------------------------------------------------------------------------

    def say(self, state: str, message: str = "", **resources) -> None:
        """Write `dispatcher.json`; while connecting again, the last failure's message stays readable."""
        last = read_status(self.store.home)
        if state == "connecting" and last and last.state != "connected":
            message = last.message
        status = ClusterStatus(os.getpid(), state, self.address, message, **resources)
        write_atomically(self.store.home / STATUS_FILE, json.dumps(status.__dict__))

    def connect(self) -> None:
        """Join the cluster (at most every RETRY_SECONDS); on failure say why and leave runs queued."""
        import ray

        if time.monotonic() - self.tried_at < RETRY_SECONDS:
            return
        self.tried_at = time.monotonic()
        self.say("connecting")
        problem = unreachable(self.address) or self.join()
        if problem is None:
            self.relay = ray.remote(num_cpus=0)(Relay).remote()
            self.task = ray.remote(max_retries=0, max_calls=RUNS_BEFORE_RECYCLE)(train_task)
            self.connected = True
            if self.address:
                threading.Thread(target=self.watch_cluster, daemon=True).start()
            self.describe_cluster(ray.cluster_resources())
            return
        ray.shutdown()
        self.say("unreachable", f"Cannot reach the Ray cluster at {self.address or 'this machine'}: {problem}. "
                                f"Runs stay queued and start when it answers (tried every {RETRY_SECONDS:g} s).")
        log(f"Ray cluster unreachable: {problem}")

    def join(self) -> str | None:
        """ray.init; why it failed, None when joined.

        A Ray instance of our own starts in this thread: its processes die with the thread that started
        them. An existing cluster is joined in a thread of its own, because Ray retries forever when the
        cluster answers but refuses this process (a missing token): a join that hangs ends this process,
        and the Lab starts a fresh dispatcher, which tries again.
        """
        ended, failure = threading.Event(), []

        def init() -> None:
            import ray

            options = {} if self.address else {"include_dashboard": False}
            try:
                ray.init(self.address or "local",  # "local": a new instance, never another one found running
                         runtime_env={"py_modules": [str(PACKAGE)], "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "2"}},
                         logging_level=logging.WARNING, log_to_driver=False, **options)
            except Exception as err:  # Ray raises several kinds for a cluster it cannot join
                failure.append(str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__)
            ended.set()

        if not self.address:
            init()
        else:
            threading.Thread(target=init, daemon=True).start()
        if ended.wait(JOIN_TIMEOUT):
            return failure[0] if failure else None
        self.say("unreachable", f"The Ray cluster at {self.address} answers but did not let this app join within "
                                f"{JOIN_TIMEOUT:g} s. If it uses token authentication, set RAY_AUTH_MODE=token "
                                f"and give this machine its token (RAY_AUTH_TOKEN or ~/.ray/auth_token). "
                                f"Runs stay queued and start when it lets the app in.")
        log("Ray did not let this dispatcher join; exiting so that a fresh one tries again")
        os._exit(3)

    def describe_cluster(self, total: dict[str, float]) -> None:
        """Say how big the cluster is now (called again whenever nodes join or leave)."""
        import ray

        cpus, gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        self.say("connected", cpus=cpus, gpus=gpus, nodes=nodes, capacity=self.capacity(cpus, gpus))
        self.described = total

    def task_gpus(self, cluster_gpus: float) -> float:
        """GPUs one run asks for: MNIST_LAB_RAY_GPUS, else 1 where the cluster has any."""
        return self.gpus if self.gpus is not None else (1.0 if cluster_gpus >= 1 else 0.0)

    def capacity(self, cpus: float, gpus: float) -> int:
        """Runs the cluster holds at once with each asking for `self.cpus` CPUs and its GPUs."""
        held = int(cpus // self.cpus)
        per_run_gpus = self.task_gpus(gpus)
        return min(held, int(gpus // per_run_gpus)) if per_run_gpus else held

    # -- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        """Dispatch until idle for `idle_timeout` or told to leave, with every run in flight recorded."""
        import ray

        idle_since = time.monotonic()
        while True:
            if not self.connected and not self.runner.leaving():
                self.connect()
            if self.connected:
                try:
                    self.launch_while_room()
                    self.pass_on_events()
                    self.pass_on_stops()
                    self.collect()
                except ray.exceptions.RayError as err:
                    log(f"lost the relay ({type(err).__name__}); runs in flight end when their tasks notice")
                    self.relay = ray.remote(num_cpus=0)(Relay).remote()
            if self.inflight or self.waiting():
                idle_since = time.monotonic()
            elif self.runner.leaving() or time.monotonic() - idle_since > self.idle_timeout:
                break
            time.sleep(POLL_SECONDS)
        if self.connected:
            ray.shutdown()

    def watch_cluster(self) -> None:
        """In a thread of its own: Ray's calls block while the cluster is gone, so its port is checked here."""
        while True:
            time.sleep(HEALTH_SECONDS)
            if problem := unreachable(self.address):
                self.lose_cluster(problem)

    def lose_cluster(self, problem: str) -> None:
        """The cluster went away: its runs are interrupted, the reason is said, and a fresh dispatcher takes
        over (Ray's driver cannot leave a cluster that is gone, and would end this process a minute later)."""
        for run in list(self.inflight.values()):  # a copy: the main thread may be changing it
            self.runner.record(run, None, f"The Ray cluster at {self.address} went away while this run trained.")
        self.say("unreachable", f"Lost the Ray cluster at {self.address}: {problem}. Queued runs wait and start "
                                f"when it answers again (tried every {RETRY_SECONDS:g} s).")
        log(f"lost the Ray cluster: {problem}")
        os._exit(4)

    def waiting(self) -> bool:
        """Runs wait in the queue that this dispatcher could still claim."""
        if self.runner.leaving():
            return False
        try:
            return bool(self.store.list(("queued",)))
        except StoreError:
            return True

    def launch_while_room(self) -> None:
        import ray

        if self.runner.leaving():
            return
        total = ray.cluster_resources()
        if total != self.described:
            self.describe_cluster(total)
        room = self.capacity(total.get("CPU", 0.0), total.get("GPU", 0.0)) - len(self.inflight)
        for _ in range(max(0, room)):
            run = self.runner.claim()
            if run is None:
                return
            self.launch(run, total.get("GPU", 0.0))

    def launch(self, run: Run, cluster_gpus: float) -> None:
        """Start `run` as a Ray task; a run that cannot start (bad spec, no MNIST) fails with the reason."""
        try:
            if self.data_ref is None:
                import ray

                self.data_ref = ray.put(load_mnist(self.data_dir))  # once: every task reads the same copy
            ref = self.task.options(num_cpus=self.cpus, num_gpus=self.task_gpus(cluster_gpus)).remote(
                run.id, run.spec, run.recipe, self.data_ref, self.relay, self.cpus)
        except Exception as err:
            self.runner.record(run, Trained.failed(err).ending())
            return
        self.inflight[ref] = run
        self.progress[run.id] = self.runner.progress(run)

    def pass_on_events(self) -> None:
        """Pass the relay's new events on to the store, in order; they wait while the store is busy."""
        import ray

        for run_id, values in ray.get(self.relay.take.remote()):
            if run_id in self.progress:
                self.progress[run_id].publish(Event(**values))
        for progress in self.progress.values():
            progress.catch_up()

    def pass_on_stops(self) -> None:
        """Tell the relay about each run the user stopped, or that must end because this process leaves."""
        for run in self.inflight.values():
            if run.id in self.asked_to_stop:
                continue
            if self.runner.should_stop(run):
                self.relay.stop.remote(run.id)
                self.asked_to_stop.add(run.id)

    def collect(self) -> None:
        """Record every task that ended: its model and analysis saved, then its status."""
        import ray

        if not self.inflight:
            return
        done, _ = ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
        if done:
            self.pass_on_events()  # a task flushes its last events before it returns
        for ref in done:
            run = self.inflight.pop(ref)
            self.asked_to_stop.discard(run.id)
            self.relay.forget.remote(run.id)
            try:
                trained = unshipped(ray.get(ref))
            except ray.exceptions.RayError as err:
                log(f"run {run.id} lost its Ray worker ({type(err).__name__})")
                self.runner.record(run, None, RAY_INTERRUPTED, progress=self.progress.pop(run.id, None))
                continue
            self.runner.settle(run, trained, self.progress.pop(run.id, None))


def main(argv: list[str] | None = None) -> int:
    args = slot_arguments(argv, __doc__)
    lock = open_slot(args)
    if lock is None:
        return 0  # another dispatcher already serves this store
    try:
        import ray  # noqa: F401  (checked here: a missing Ray is a failed start with this message)

        from .config import ConfigError, ray_resources

        cpus, gpus = ray_resources()
        store = RunStore(args.home)
    except ImportError:
        print(NEEDS_RAY, file=sys.stderr)
        return 1
    except (ConfigError, StoreError) as err:
        print(err, file=sys.stderr)
        return 1
    runner = Runner(store, args.parent_pid, lock)
    dispatcher = Dispatcher(runner, args.data_dir, args.idle_timeout, cpus, gpus)
    signal.signal(signal.SIGTERM, runner.on_sigterm)
    mark_ready(lock)
    print(f"dispatcher {os.getpid()} ready for {dispatcher.address or 'a Ray instance on this machine'}", flush=True)
    dispatcher.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
