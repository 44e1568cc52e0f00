"""The training recipe and the Keras loop that publishes progress events.

This module trains in whatever process calls it; `mnist_core.jobs` runs it in a worker.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numpy as np

from .data import Mnist, as_model_input
from .spec import Architecture
from .store import Event


@dataclass(frozen=True)
class Recipe:
    """How to train; the defaults are the notebook's."""

    epochs: int = 20
    batch_size: int = 128
    learning_rate: float = 0.003  # Adam's initial rate
    lr_decay: float = 0.319  # lr = learning_rate / (1 + lr_decay * epoch), epoch counted from 0
    seed: int = 0
    train_subset: int | None = None  # train on this many images (drawn by the seed) for quick demos
    val_batch_size: int = 1000  # large validation batches save 1-2 s per epoch
    progress_every: int = 10  # batches between live events: ~0.4 s at 3,400 images/s
    bn_momentum: float = 0.99  # Keras' default; quick runs use 0.9 so BatchNorm's statistics settle

    def __post_init__(self) -> None:
        checks = [(1 <= self.epochs <= 200, "epochs must be 1-200"),
                  (1 <= self.batch_size <= 8192, "batch size must be 1-8192"),
                  (0 < self.learning_rate <= 1, "learning rate must be in (0, 1]"),
                  (0 <= self.lr_decay <= 100, "lr decay must be in [0, 100]"),
                  (self.train_subset is None or 100 <= self.train_subset <= 60000,
                   "training subset must be 100-60,000 images"),
                  (0 <= self.bn_momentum < 1, "BatchNorm momentum must be in [0, 1)"),
                  (self.val_batch_size >= 1 and self.progress_every >= 1, "batch counts must be positive")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"Invalid recipe: {message}.")

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 0-based `epoch`."""
        return self.learning_rate / (1 + self.lr_decay * epoch)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


QUICK_RUN = Recipe(epochs=2, train_subset=10_000, bn_momentum=0.9)  # ~40 s on 2 cores: a classroom demo
FIRST_LOOK = Recipe(epochs=1, train_subset=2_000, bn_momentum=0.9)  # seconds a run: a study's first look


@dataclass(frozen=True)
class TrainResult:
    """How a training ended; `model` is the trained Keras model."""

    status: str  # 'completed' or 'stopped'
    test_accuracy: float | None
    test_loss: float | None
    model: Any


def train(arch: Architecture, recipe: Recipe, data: Mnist, on_event: Callable[[Event], None],
          should_stop: Callable[[], bool] = lambda: False) -> TrainResult:
    """Train `arch` on MNIST with `recipe`, validating on the 10k test set every epoch.

    `on_event` gets an Event every `recipe.progress_every` batches and at each epoch end;
    `should_stop` is polled between batches, and a True ends training within one batch, without
    validating the partial epoch; the model keeps the weights reached so far.
    """
    import keras

    from .model import build_model

    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train = data.x_train, data.y_train
    if recipe.train_subset:
        pick = np.random.default_rng(recipe.seed).permutation(len(x_train))[:recipe.train_subset]
        x_train, y_train = x_train[pick], y_train[pick]
    x_train, x_test = as_model_input(x_train), as_model_input(data.x_test)
    y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(data.y_test, 10)

    model = build_model(arch, recipe.bn_momentum)
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  metrics=["accuracy"])
    steps = -(-len(x_train) // recipe.batch_size)
    progress = _Progress(recipe, steps, on_event, should_stop)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: recipe.lr_at(epoch))
    try:
        model.fit(x_train, y_train, batch_size=recipe.batch_size, epochs=recipe.epochs, verbose=0,
                  validation_data=(x_test, y_test), validation_batch_size=recipe.val_batch_size,
                  callbacks=[schedule, progress.callback(keras)])
        stopped = False
    except _StopRequested:
        stopped = True
    last = progress.last_epoch
    return TrainResult(status="stopped" if stopped else "completed",
                       test_accuracy=last.val_accuracy if last else None,
                       test_loss=last.val_loss if last else None, model=model)


class _StopRequested(Exception):
    """Raised from a callback to leave `fit` at once: `stop_training` would still validate the epoch."""


class _Progress:
    """Turns Keras callback hooks into Events; knows nothing about where they go."""

    STOP_POLL_SECONDS = 0.2  # how often `should_stop` is asked: a stop lands within ~one batch

    def __init__(self, recipe: Recipe, steps: int, on_event: Callable[[Event], None],
                 should_stop: Callable[[], bool]):
        self.recipe, self.steps = recipe, steps
        self.on_event, self.should_stop = on_event, should_stop
        self.start = time.perf_counter()
        self.last_poll = 0.0
        self.epoch = 0
        self.last_epoch: Event | None = None

    def callback(self, keras):
        progress = self

        class PublishProgress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                progress.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                progress.batch_end(self.model, batch, logs or {})

            def on_epoch_end(self, epoch, logs=None):
                progress.epoch_end(self.model, epoch, logs or {})

        return PublishProgress()

    def _event(self, model, kind: str, batch: int, logs: dict, **extra) -> Event:
        done = self.epoch * self.steps + batch + 1
        total = self.recipe.epochs * self.steps
        elapsed = time.perf_counter() - self.start
        return Event(kind=kind, epoch=self.epoch + (batch + 1) / self.steps, batch=batch + 1, step=done,
                     lr=float(model.optimizer.learning_rate), loss=float(logs.get("loss", np.nan)),
                     accuracy=float(logs.get("accuracy", np.nan)), elapsed=elapsed,
                     eta=elapsed / done * (total - done), **extra)

    def batch_end(self, model, batch: int, logs: dict) -> None:
        if (batch + 1) % self.recipe.progress_every == 0 and batch + 1 < self.steps:
            self.on_event(self._event(model, "batch", batch, logs))
        now = time.perf_counter()
        if now - self.last_poll >= self.STOP_POLL_SECONDS:
            self.last_poll = now
            if self.should_stop():
                raise _StopRequested

    def epoch_end(self, model, epoch: int, logs: dict) -> None:
        event = self._event(model, "epoch", self.steps - 1, logs, val_loss=float(logs["val_loss"]),
                            val_accuracy=float(logs["val_accuracy"]))
        self.last_epoch = event
        self.on_event(event)
