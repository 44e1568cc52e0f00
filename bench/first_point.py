"""Where the seconds before a run's first chart point go, in a worker that has TensorFlow loaded.

    python -m bench.first_point              # 4 Quick runs of seed-final, one after the other, in this process

Each step the worker takes between claiming a run and publishing its first batch, timed as `train` takes it:
reading MNIST (once a process), picking the images, building and compiling the model, making the tf.data
pipeline and its first batch, then Keras' first training step, which builds (traces) the step's graph. The
first run in a process pays the one-time costs too; the others show what every run pays. Issue 26's target:
the first chart point <= 2 s after Start on a warm worker.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import keras

from mnist_core.data import load_mnist
from mnist_core.kernels import speed_up_training
from mnist_core.model import build_model
from mnist_core.recipe import QUICK_RUN
from mnist_core.spec import PRESETS
from mnist_core.train import learning_rate_schedule, make_optimizer, training_batches, training_images


class _Enough(Exception):
    """Leaves `fit` after the batches timed."""


def steps_to_first_batch(seed: int) -> list[tuple[str, float]]:
    """(step, seconds) from reading MNIST to the end of the second training batch, for one Quick run."""
    marks = [("", time.perf_counter())]

    def mark(step: str) -> None:
        marks.append((step, time.perf_counter()))

    data = load_mnist()
    mark("MNIST")
    recipe = replace(QUICK_RUN, seed=seed)
    keras.utils.set_random_seed(seed)
    images, labels = training_images(data, recipe)
    model = build_model(PRESETS["seed-final"], recipe.bn_momentum)
    speed_up_training(model)
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                  optimizer=make_optimizer(keras, recipe, learning_rate_schedule(keras, recipe)), metrics=["accuracy"])
    mark("model built and compiled")
    batches = training_batches(images, labels, recipe)
    next(iter(batches))
    mark("tf.data pipeline and a batch")

    class Timer(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            mark("first step (graph traced)" if batch == 0 else "second step")
            if batch == 1:
                raise _Enough

    try:
        model.fit(batches, epochs=1, verbose=0, callbacks=[Timer()])
    except _Enough:
        pass
    keras.backend.clear_session()
    return [(step, end - start) for (_, start), (step, end) in zip(marks, marks[1:])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    for seed in range(args.runs):
        steps = steps_to_first_batch(seed)
        first = sum(seconds for step, seconds in steps if step != "second step")
        print(f"run {seed + 1}: first chart point after {first:.2f} s: "
              + ", ".join(f"{step} {seconds:.2f} s" for step, seconds in steps), flush=True)


if __name__ == "__main__":
    main()
