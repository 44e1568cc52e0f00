"""A training run's progress reports, as the trainer makes them and the charts and tables read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Event:
    """One progress report: within an epoch (kind 'batch') or at its end (kind 'epoch')."""

    kind: str
    epoch: float  # fractional: 2.5 is halfway through the third epoch
    batch: int
    step: int
    lr: float
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    elapsed: float = 0.0
    eta: float | None = None
