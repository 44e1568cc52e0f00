"""The Keras training loop that publishes progress events, and its schedule, augmentation and BatchNorm re-estimate.

This module trains in whatever process calls it; `mnist_core.jobs` runs it in a worker.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .data import Mnist, as_model_input
from .events import Event
from .kernels import speed_up_training
from .recipe import Recipe
from .spec import Architecture

# A training's niceness: below the app's server (0), above a model export (export.CHILD_NICENESS).
TRAINING_NICENESS = 5


@functools.cache  # once per process: TensorFlow's thread pools are set before its first use
def limit_threads(threads: int) -> None:
    """Let TensorFlow in this process use `threads` threads for its ops: a worker's share of the cores when
    several train side by side, a Ray task's CPUs on a shared node."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already ran in this process; it keeps its threads


def yield_to_pages(niceness: int = TRAINING_NICENESS) -> None:
    """Run this process at `niceness` or lower priority: where the app's server shares the cores with
    trainings, a page's rerun is served first and a training takes the rest. Idempotent, unlike `os.nice`,
    so a worker that re-executes itself keeps the same priority."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < niceness:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


@dataclass(frozen=True)
class TrainResult:
    """How a training ended; `model` is the trained Keras model."""

    status: str  # 'completed' or 'stopped'
    test_accuracy: float | None
    test_loss: float | None
    model: Any
    epochs_done: int  # whole epochs trained and tested: 0 when stopped in the first
    test_probabilities: np.ndarray | None = None  # the last test pass's (10,000, 10): the run's analysis reads it
    validation_accuracy: float | None = None  # the last epoch's, when the recipe holds a validation split out


def train(arch: Architecture, recipe: Recipe, data: Mnist, on_event: Callable[[Event], None],
          should_stop: Callable[[], bool] = lambda: False, fast_kernels: bool = True) -> TrainResult:
    """Train `arch` on MNIST with `recipe`, scoring every epoch's end on the 10k test set, or on the recipe's
    validation split, when it holds one out; then the test set is read once, after training ends.

    `on_event` gets an Event after the first batch, every `recipe.progress_every` batches and at each epoch end;
    `should_stop` is polled between batches, and a True ends training within one batch, without
    testing the partial epoch; the model keeps the weights reached so far. `fast_kernels=False` trains with
    Keras' own BatchNorm and Dropout steps (`mnist_core.kernels`): the benchmarks' baseline.
    """
    import keras

    from .model import build_model

    keras.utils.set_random_seed(recipe.seed)
    x_train, y_train = training_images(data, recipe)

    model = build_model(arch, recipe.bn_momentum)
    if fast_kernels:
        speed_up_training(model)
    rate = learning_rate_schedule(keras, recipe)
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                  optimizer=make_optimizer(keras, recipe, rate), metrics=["accuracy"])
    progress = _Progress(recipe, recipe.steps_per_epoch, on_event, should_stop, rate)
    scoring = EpochScoring(keras, recipe, data, x_train if recipe.recalibrate_bn else None, should_stop,
                           progress.poll_stop)
    try:
        model.fit(training_batches(x_train, y_train, recipe), epochs=recipe.epochs, verbose=0, shuffle=False,
                  callbacks=[progress.callback(keras, scoring)])
        stopped = False
    except _StopRequested:
        stopped = True
    last = progress.last_epoch
    if last is None:
        return TrainResult(status="stopped", test_accuracy=None, test_loss=None, model=model, epochs_done=0)
    test_loss, test_accuracy, probabilities = last.val_loss, last.val_accuracy, scoring.probabilities
    if recipe.validation:
        probabilities = model.predict(as_model_input(data.x_test), batch_size=recipe.val_batch_size, verbose=0)
        test_loss, test_accuracy = scores(probabilities, data.y_test, recipe.label_smoothing)
    return TrainResult(status="stopped" if stopped else "completed", test_accuracy=test_accuracy,
                       test_loss=test_loss, model=model, epochs_done=round(last.epoch),
                       test_probabilities=None if stopped else probabilities,
                       validation_accuracy=last.val_accuracy if recipe.validation else None)


class EpochScoring:
    """An epoch's one pass over the 10,000 test digits (or the recipe's validation split): its probabilities
    give the epoch's loss and accuracy, and the last test pass's are the run's analysis, so no digit is read
    twice after training.

    Before the last epoch's pass, BatchNorm is re-estimated on `recalibrate_on` (the run's training images)
    when given. `poll_stop` is called after every test batch: a big network's pass takes minutes, and Stop
    must not wait for it.
    """

    def __init__(self, keras, recipe: Recipe, data: Mnist, recalibrate_on: np.ndarray | None,
                 should_stop: Callable[[], bool], poll_stop: Callable[[], None]):
        self.recipe, self.recalibrate_on, self.should_stop = recipe, recalibrate_on, should_stop
        self.images, self.labels = scored_images(data, recipe)
        self.probabilities: np.ndarray | None = None

        class PollStop(keras.callbacks.Callback):
            def on_predict_batch_end(self, batch, logs=None):
                poll_stop()

        self.callbacks = [PollStop()]

    def __call__(self, model, epoch: int) -> tuple[float, float]:
        """Test `model` after `epoch` (from 0): (loss, accuracy); raises _StopRequested when a stop is asked."""
        last = epoch == self.recipe.epochs - 1
        if last and self.recalibrate_on is not None and not recalibrate_batchnorm(
                model, self.recalibrate_on, should_stop=self.should_stop):
            raise _StopRequested
        self.probabilities = model.predict(self.images, batch_size=self.recipe.val_batch_size, verbose=0,
                                           callbacks=self.callbacks)
        return scores(self.probabilities, self.labels, self.recipe.label_smoothing)


def scores(probabilities: np.ndarray, labels: np.ndarray, label_smoothing: float = 0.0) -> tuple[float, float]:
    """(loss, accuracy) of `probabilities` against `labels` as Keras' compiled loss and "accuracy" metric
    count them: categorical cross-entropy on clipped probabilities, with the recipe's label smoothing."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.full(probabilities.shape, label_smoothing / probabilities.shape[1])
    targets[np.arange(len(labels)), labels] += 1.0 - label_smoothing
    epsilon = 1e-7  # keras.config.epsilon(): the clip its cross-entropy applies
    clipped = np.clip(probabilities / probabilities.sum(axis=1, keepdims=True), epsilon, 1.0 - epsilon)
    loss = float(-(targets * np.log(clipped)).sum(axis=1).mean())
    return loss, float((probabilities.argmax(axis=1) == labels).mean())


def recalibrate_batchnorm(model, images: np.ndarray, batch_size: int = 2000,
                          should_stop: Callable[[], bool] = lambda: False) -> bool:
    """Set every BatchNorm layer's moving mean and variance to the exact statistics of its inputs over `images`.

    Layer by layer from the input, each in inference mode with the layers before it already re-estimated,
    so the statistics are those the model meets when it reads digits (no augmentation, Dropout off).
    `should_stop` is asked before each layer (a few seconds apart on 60,000 images); when it says True, every
    layer gets back the statistics it had and False is returned.
    """
    import keras
    from keras import ops

    inputs = as_model_input(images)
    before = []
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if should_stop():
            for norm, mean, variance in before:
                norm.moving_mean.assign(mean)
                norm.moving_variance.assign(variance)
            return False
        before.append((layer, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
        features = layer.input
        spatial = tuple(range(1, len(features.shape) - 1))
        # Averaged over each image's positions inside the graph, so only (images, channels) arrays come back.
        moments = [ops.mean(features, axis=spatial), ops.mean(ops.square(features), axis=spatial)] if spatial \
            else [features, ops.square(features)]
        feed = keras.Model(model.inputs[0], moments)
        means, squares = (np.asarray(part, dtype=np.float64).mean(axis=0)
                          for part in feed.predict(inputs, batch_size=batch_size, verbose=0))
        layer.moving_mean.assign(means.astype(np.float32))
        layer.moving_variance.assign(np.maximum(squares - means ** 2, 0.0).astype(np.float32))
    return True


def make_optimizer(keras, recipe: Recipe, rate):
    """The recipe's optimizer (Adam or AdamW) following the learning rate schedule `rate`."""
    if recipe.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay)
    return keras.optimizers.Adam(rate)


def learning_rate_schedule(keras, recipe: Recipe):
    """The recipe's schedule as a Keras schedule: the optimizer computes each batch's rate inside the graph.

    It gives `recipe.lr_at_step(step)` at every step, with no Python call between batches to set it.
    """
    steps = recipe.epochs * recipe.steps_per_epoch
    if recipe.schedule == "inverse-time":
        return keras.optimizers.schedules.InverseTimeDecay(recipe.learning_rate, recipe.steps_per_epoch,
                                                           recipe.lr_decay, staircase=True)
    warm = round(recipe.warmup * steps)
    if not warm:
        return keras.optimizers.schedules.CosineDecay(recipe.learning_rate, steps)
    return keras.optimizers.schedules.CosineDecay(0.0, steps - warm, warmup_target=recipe.learning_rate,
                                                  warmup_steps=warm)


def training_images(data: Mnist, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels a run uses: all 60,000 but the validation split, or the recipe's subset
    of those drawn by its seed."""
    kept = len(data.x_train) - recipe.validation
    images, labels = data.x_train[:kept], data.y_train[:kept]
    if not recipe.train_subset:
        return images, labels
    pick = np.random.default_rng(recipe.seed).permutation(kept)[:recipe.train_subset]
    return images[pick], labels[pick]


def scored_images(data: Mnist, recipe: Recipe) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs and labels every epoch is scored on: the validation split (the last training
    images), or the test set when the recipe holds none out."""
    if recipe.validation:
        return as_model_input(data.x_train[-recipe.validation:]), data.y_train[-recipe.validation:]
    return as_model_input(data.x_test), data.y_test


def training_batches(images: np.ndarray, labels: np.ndarray, recipe: Recipe):
    """A shuffled, batched, prefetched tf.data pipeline of one-hot examples, augmented when the recipe says so.

    Augmentation lives here, outside the model: it adds no parameters and never runs at inference.
    """
    import keras
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((images[..., None], keras.utils.to_categorical(labels, 10)))
    dataset = dataset.shuffle(len(images), seed=recipe.seed, reshuffle_each_iteration=True).batch(recipe.batch_size)
    transform = _augmentation(keras, recipe)
    dataset = dataset.map(lambda x, y: (transform(tf.cast(x, tf.float32) / 255.0), y),
                          num_parallel_calls=tf.data.AUTOTUNE)
    # Without tf.data's autotuning: with it, one full-MNIST run in two waited 15-17 s, idle, for a tuning thread
    # as `fit` ended (docs/benchmarks.md); the pipeline is not where a step's time goes either way.
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(tf.data.AUTOTUNE).with_options(options)


def _augmentation(keras, recipe: Recipe) -> Callable:
    """The recipe's random rotation, shift and zoom, applied to a batch in training mode."""
    steps = []
    if recipe.rotate:
        steps.append(keras.layers.RandomRotation(recipe.rotate / 360, fill_mode="constant", seed=recipe.seed))
    if recipe.shift:
        steps.append(keras.layers.RandomTranslation(recipe.shift, recipe.shift, fill_mode="constant",
                                                    seed=recipe.seed + 1))
    if recipe.zoom:
        steps.append(keras.layers.RandomZoom(recipe.zoom, fill_mode="constant", seed=recipe.seed + 2))

    def transform(batch):
        for step in steps:
            batch = step(batch, training=True)
        return batch

    return transform


class _StopRequested(Exception):
    """Raised from a callback to leave `fit` at once: `stop_training` would still validate the epoch."""


class _Progress:
    """Turns Keras callback hooks into Events; knows nothing about where they go."""

    STOP_POLL_SECONDS = 0.2  # how often `should_stop` is asked: a stop lands within ~one batch

    def __init__(self, recipe: Recipe, steps: int, on_event: Callable[[Event], None],
                 should_stop: Callable[[], bool], rate: Callable):
        self.recipe, self.steps, self.rate = recipe, steps, rate
        self.on_event, self.should_stop = on_event, should_stop
        self.start = time.perf_counter()
        self.last_poll = 0.0
        self.epoch = 0
        self.last_epoch: Event | None = None
        self.first: tuple[int, float] | None = None  # (steps done, seconds) at the first event

    def callback(self, keras, scoring: EpochScoring):
        progress = self

        class PublishProgress(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                progress.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                progress.batch_end(self.model, batch, logs or {})

            def on_epoch_end(self, epoch, logs=None):
                loss, accuracy = scoring(self.model, epoch)
                progress.epoch_end(self.model, epoch, dict(logs or {}, val_loss=loss, val_accuracy=accuracy))

        return PublishProgress()

    def _event(self, model, kind: str, batch: int, logs: dict, **extra) -> Event:
        done = self.epoch * self.steps + batch + 1
        total = self.recipe.epochs * self.steps
        elapsed = time.perf_counter() - self.start
        if self.first is None:
            self.first = (done, elapsed)
        first_done, first_elapsed = self.first
        # The batches before the first event also built the graph (seconds): the pace is measured after them,
        # and the first event, with no pace yet, has no ETA.
        if done > first_done:
            eta = (elapsed - first_elapsed) / (done - first_done) * (total - done)
        else:
            eta = None if done < total else 0.0
        return Event(kind=kind, epoch=self.epoch + (batch + 1) / self.steps, batch=batch + 1, step=done,
                     lr=self.rate_used(model), loss=float(logs.get("loss", np.nan)),
                     accuracy=float(logs.get("accuracy", np.nan)), elapsed=elapsed, eta=eta, **extra)

    def rate_used(self, model) -> float:
        """The learning rate the optimizer applied at its last step."""
        return float(self.rate(model.optimizer.iterations - 1))

    def batch_end(self, model, batch: int, logs: dict) -> None:
        # The run's first batch is published too: the chart's first point then comes as soon as training does.
        due = (batch + 1) % self.recipe.progress_every == 0 or self.first is None
        if due and batch + 1 < self.steps:
            self.on_event(self._event(model, "batch", batch, logs))
        self.poll_stop()

    def poll_stop(self) -> None:
        """Leave `fit` now if a stop was asked (asked at most every STOP_POLL_SECONDS)."""
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
