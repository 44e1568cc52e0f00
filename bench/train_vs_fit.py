"""Engine vs plain `model.fit`: seconds per epoch and final test accuracy, same data, same run.

    python -m bench.train_vs_fit                               # fast, best, notebook: 3 epochs, seed 0
    python -m bench.train_vs_fit --subset 20000                # the same ratio at a third of the time
    python -m bench.train_vs_fit --recipes notebook --epochs 20 --seeds 0 1 2

The engine path is the app's: a queued run trained by the warm worker process, progress events
written to SQLite. The baseline is the same Keras model and recipe in a plain `fit` in this process,
with Keras' own schedules (InverseTimeDecay-like epoch scheduler, CosineDecay with warm-up).
Both sides are timed the same way: from the end of the first epoch to the end of the last, so
neither pays for tracing, worker start-up or the first batches. Target: engine / fit <= 1.0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

from mnist_core.data import as_model_input, load_mnist
from mnist_core.jobs import Lab
from mnist_core.recipe import RECIPES, Recipe
from mnist_core.spec import PRESETS
from mnist_core.train import recalibrate_batchnorm, training_batches, training_images


def recalibration_before_last_test(keras, recipe: Recipe, images):
    """A callback that re-estimates BatchNorm on `images` just before the last epoch's validation."""

    class RecalibrateBeforeLastTest(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_test_begin(self, logs=None):
            if self.epoch == recipe.epochs - 1:
                recalibrate_batchnorm(self.model, images)

    return RecalibrateBeforeLastTest()


def plain_fit(recipe: Recipe) -> tuple[float, float]:
    """Seconds per epoch after the first, and test accuracy, of a bare model.fit with `recipe`."""
    import keras

    from mnist_core.model import build_model

    data = load_mnist()
    keras.utils.set_random_seed(recipe.seed)
    model = build_model(PRESETS["seed-final"], recipe.bn_momentum)
    steps = recipe.steps_per_epoch * recipe.epochs
    callbacks = []
    if recipe.schedule == "one-cycle":
        warm = round(recipe.warmup * steps)
        rate = keras.optimizers.schedules.CosineDecay(0.0, steps - warm, warmup_target=recipe.learning_rate,
                                                      warmup_steps=warm)
    else:
        rate = recipe.learning_rate
        callbacks.append(keras.callbacks.LearningRateScheduler(lambda epoch, lr: recipe.lr_at(epoch)))
    optimizer = (keras.optimizers.AdamW(rate, weight_decay=recipe.weight_decay) if recipe.optimizer == "adamw"
                 else keras.optimizers.Adam(rate))
    model.compile(loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
                  optimizer=optimizer, metrics=["accuracy"])
    ends: list[float] = []
    callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(time.perf_counter())))
    images, labels = training_images(data, recipe)
    if recipe.recalibrate_bn:
        callbacks.append(recalibration_before_last_test(keras, recipe, images))  # as the engine does
    history = model.fit(training_batches(images, labels, recipe), epochs=recipe.epochs, verbose=0, shuffle=False,
                        validation_data=(as_model_input(data.x_test), keras.utils.to_categorical(data.y_test, 10)),
                        validation_batch_size=recipe.val_batch_size, callbacks=callbacks)
    return (ends[-1] - ends[0]) / (recipe.epochs - 1), history.history["val_accuracy"][-1]


def engine(lab: Lab, recipe: Recipe) -> tuple[float, float]:
    """Seconds per epoch after the first (between epoch events) and test accuracy of the app's path."""
    run = lab.wait(lab.submit(PRESETS["seed-final"], recipe).run_id)
    assert run.status == "completed", run.error
    ends = [event.elapsed for event in lab.store.events(run.id) if event.kind == "epoch"]
    return (ends[-1] - ends[0]) / (recipe.epochs - 1), run.test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=["notebook", "fast", "best"])
    parser.add_argument("--epochs", type=int, default=3, help="at least 2: the first epoch is not timed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--subset", type=int, help="train on this many images (the ratio is per batch)")
    args = parser.parse_args()
    lab = Lab(home=tempfile.mkdtemp(prefix="bench-lab-"))
    lab.status()  # warms the worker
    rows: dict[str, list[dict]] = {}
    try:
        for name in args.recipes:
            for seed in args.seeds:
                recipe = replace(RECIPES[name], epochs=args.epochs, seed=seed, train_subset=args.subset)
                # Alternate the order so neither path always runs on a warmer or quieter machine.
                order = ("engine", "fit") if (seed + len(rows)) % 2 == 0 else ("fit", "engine")
                result = {}
                for path in order:
                    result[path] = engine(lab, recipe) if path == "engine" else plain_fit(recipe)
                    print(f"{name} seed {seed} {path:>6}: {result[path][0]:6.1f} s/epoch, "
                          f"test accuracy {result[path][1]:.4f}", flush=True)
                rows.setdefault(name, []).append(result)
    finally:
        lab.shutdown()
    print(f"\n{args.epochs} epochs on {args.subset or 60_000:,} images, seeds {args.seeds}, epochs 2-{args.epochs} "
          f"timed on both sides")
    for name, results in rows.items():
        engine_time = statistics.mean(row["engine"][0] for row in results)
        fit_time = statistics.mean(row["fit"][0] for row in results)
        print(f"{name:<9} engine {engine_time:5.1f} s/epoch, plain fit {fit_time:5.1f} s/epoch, ratio "
              f"{engine_time / fit_time:.3f} (target <= 1.0); test accuracy engine "
              f"{[round(row['engine'][1], 4) for row in results]}, fit {[round(row['fit'][1], 4) for row in results]}")


if __name__ == "__main__":
    main()
