"""What runs on a Ray cluster, and what the dispatcher says about it: the relay actor that carries progress
and Stop, the training task, and `dispatcher.json`.

All plain Python here; `mnist_core.dispatcher` turns them into a Ray actor and a Ray task, so importing
this module needs neither Ray nor TensorFlow. The task trains with the local worker's `train_here` and
returns the model as the bytes of its .keras file: the cluster writes nothing to the app's disk.
"""

from __future__ import annotations

import json
import socket
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .analysis import Analysis
from .data import Mnist
from .runner import Trained, run_versions, train_here
from .train import limit_threads, yield_to_pages
from .spec import Architecture

STATUS_FILE = "dispatcher.json"
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


@dataclass(frozen=True)
class ClusterStatus:
    """What the dispatcher last said about its cluster, as kept in `dispatcher.json`."""

    pid: int
    state: str  # 'connecting', 'connected' or 'unreachable'
    address: str  # RAY_ADDRESS; empty for a Ray instance the dispatcher started on this machine
    message: str = ""
    cpus: float = 0.0
    gpus: float = 0.0
    nodes: int = 0
    capacity: int = 0  # runs the cluster holds at once

    def text(self) -> str:
        """Where runs train, in words, for the Train page."""
        cluster = f"the Ray cluster at {self.address}" if self.address else "a Ray instance on this machine"
        if self.state == "connected":
            gpus = f", {self.gpus:g} GPU" if self.gpus else ""
            nodes = f"{self.nodes} node{'s' if self.nodes != 1 else ''}"
            return f"on {cluster} ({nodes}, {self.cpus:g} CPUs{gpus}): up to {self.capacity} at once"
        if self.state == "unreachable":
            return f"on {cluster}, which cannot be reached now"
        return f"on {cluster} (connecting)"


def read_status(home: Path) -> ClusterStatus | None:
    """The dispatcher's last word, None when there is none or it cannot be read."""
    try:
        return ClusterStatus(**json.loads((home / STATUS_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def train_task(run_id: int, arch: Architecture, recipe: dict[str, Any], data: Mnist, relay: Any,
               cpus: float) -> dict[str, Any]:
    """Train one run on a Ray worker with the local worker's `train_here`; what it gave, as `shipped`.

    Progress goes to `relay` as it happens; Stop is asked of it every 0.2 s. A relay that is gone
    (its dispatcher died) stops the training: nobody is left to record it.
    """
    import ray

    limit_threads(max(1, int(cpus)))  # the CPUs this task asked for, not every core of a shared node
    yield_to_pages()  # where the app's server runs on a node of the cluster, its pages come first

    def publish(event) -> None:
        relay.publish.remote(run_id, asdict(event))

    def should_stop() -> bool:
        try:
            return ray.get(relay.stopped.remote(run_id), timeout=STOP_ASK_TIMEOUT)
        except (ray.exceptions.RayError, TimeoutError):
            return True

    versions = run_versions() | {"executor": "ray", "node": socket.gethostname()}
    trained = train_here(run_id, arch, recipe, data, publish, should_stop, versions)
    try:
        ray.get(relay.flush.remote(), timeout=STOP_ASK_TIMEOUT)
    except (ray.exceptions.RayError, TimeoutError):
        pass  # the relay is gone, and with it whoever would read the events
    try:
        return shipped(trained)
    except Exception as err:  # a model that cannot be sent fails its run, as one that cannot be saved
        return shipped(Trained.failed(err, versions))


def shipped(trained: Trained) -> dict[str, Any]:
    """`trained` as plain values for the trip back to the dispatcher: the model as its .keras file's bytes."""
    model_bytes = None
    if trained.model is not None:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.keras"
            trained.model.save(path)
            model_bytes = path.read_bytes()
    return dict(vars(trained), model=model_bytes, spec_json=getattr(trained.model, "spec_json", None),
                analysis=trained.analysis.to_dict() if trained.analysis else None)


def unshipped(values: dict[str, Any]) -> Trained:
    """What `shipped` sent, as the dispatcher keeps it: a Keras model again, so `save_model` saves it as a local
    worker's (TensorFlow is imported here only when a model comes back)."""
    values, model = dict(values), None
    spec_json = values.pop("spec_json", None)
    if values.get("model"):
        import keras

        try:
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "model.keras"
                path.write_bytes(values["model"])
                model = keras.saving.load_model(path)
            model.spec_json = spec_json  # what `save_model` writes into the weights file, as `build_model` gives it
        except Exception as err:  # a model that cannot be kept fails its run, not the dispatcher
            return Trained.failed(err, values.get("versions"))
    analysis = Analysis.from_dict(values["analysis"]) if values.get("analysis") else None
    return Trained(**dict(values, model=model, analysis=analysis))


