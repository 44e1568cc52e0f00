"""What runs on a Ray cluster: the relay actor that carries progress and Stop, and the training task.

Both are plain Python here; `mnist_core.dispatcher` turns them into a Ray actor and a Ray task, so
importing this module needs neither Ray nor TensorFlow. The task trains with the same `train()` as a
local worker and returns the model as the bytes of its .keras file: the cluster writes nothing to
the app's disk.
"""

from __future__ import annotations

import functools
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .data import Mnist
from .history import keeps_model
from .recipe import Recipe
from .spec import Architecture
from .train import train

STOP_ASK_TIMEOUT = 5.0  # seconds: a relay that does not answer in this time is taken as gone


class Relay:
    """One per dispatcher: tasks put progress events in, the dispatcher takes them out and sets Stop flags."""

    def __init__(self):
        self.events: list[tuple[int, dict[str, Any]]] = []
        self.stops: set[int] = set()

    def publish(self, run_id: int, event: dict[str, Any]) -> None:
        self.events.append((run_id, event))

    def take(self) -> list[tuple[int, dict[str, Any]]]:
        """Every event published since the last call, in the order each task published them."""
        events, self.events = self.events, []
        return events

    def stop(self, run_id: int) -> None:
        self.stops.add(run_id)

    def forget(self, run_id: int) -> None:
        self.stops.discard(run_id)

    def stopped(self, run_id: int) -> bool:
        return run_id in self.stops

    def flush(self) -> bool:
        """Answered after every earlier call from the same caller: a task's last events are in."""
        return True


def train_task(run_id: int, arch: Architecture, recipe: dict[str, Any], data: Mnist, relay: Any,
               cpus: float) -> dict[str, Any]:
    """Train one run on a Ray worker; the `finish` arguments plus `model_bytes` and `analysis`.

    Progress goes to `relay` as it happens; Stop is asked of it every 0.2 s. A relay that is gone
    (its dispatcher died) stops the training: nobody is left to record it.
    """
    import ray

    from .worker import analyse_model, failure_text, run_versions

    _limit_threads(cpus)
    versions = run_versions() | {"executor": "ray", "node": socket.gethostname()}

    def publish(event) -> None:
        relay.publish.remote(run_id, asdict(event))

    def should_stop() -> bool:
        try:
            return ray.get(relay.stopped.remote(run_id), timeout=STOP_ASK_TIMEOUT)
        except (ray.exceptions.RayError, TimeoutError):
            return True

    try:
        result = train(arch, Recipe.from_dict(recipe), data, publish, should_stop)
        # As the local worker does: a model only after a whole epoch, its analysis only after a completed run.
        analysis = analyse_model(result.model, data, run_id) if result.status == "completed" else None
        ending = dict(status=result.status, test_accuracy=result.test_accuracy, test_loss=result.test_loss,
                      versions=versions, analysis=analysis.to_dict() if analysis else None,
                      model_bytes=_keras_bytes(result.model) if keeps_model(result.status, result.epochs_done)
                      else None)
    except Exception as err:  # the dispatcher records a failed run; the Ray worker lives on
        ending = dict(status="failed", error=failure_text(err), versions=versions)
    try:
        ray.get(relay.flush.remote(), timeout=STOP_ASK_TIMEOUT)
    except (ray.exceptions.RayError, TimeoutError):
        pass  # the relay is gone, and with it whoever would read the events
    return ending


def _keras_bytes(model) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


@functools.cache  # once per worker process: TensorFlow's thread pools are set before its first use
def _limit_threads(cpus: float) -> None:
    """Let TensorFlow use the CPUs this task asked for, not every core of a node it shares with other runs."""
    import tensorflow as tf

    threads = max(1, int(cpus))
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already ran in this process; it keeps its threads
