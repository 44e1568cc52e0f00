"""Engine vs plain `model.fit`: seconds per epoch and final test accuracy, same data, same run.

    python -m bench.train_vs_fit                     # the notebook: 20 epochs, seeds 0 1 2
    python -m bench.train_vs_fit --epochs 2 --seeds 0

The engine path is the app's: a queued run trained by the warm worker process, progress events
written to SQLite. The baseline is the same Keras model and recipe in a plain `fit` in this process.
Target: engine / fit time <= 1.0 and the same accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from mnist_core.data import as_model_input, load_mnist
from mnist_core.jobs import Lab
from mnist_core.spec import PRESETS
from mnist_core.train import Recipe


def plain_fit(recipe: Recipe) -> tuple[float, float]:
    """Seconds per epoch and test accuracy of a bare model.fit with the notebook's recipe."""
    import keras

    from mnist_core.model import build_model

    data = load_mnist()
    keras.utils.set_random_seed(recipe.seed)
    model = build_model(PRESETS["seed-final"])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.Adam(recipe.learning_rate),
                  metrics=["accuracy"])
    started = time.perf_counter()
    history = model.fit(as_model_input(data.x_train), keras.utils.to_categorical(data.y_train, 10),
                        batch_size=recipe.batch_size, epochs=recipe.epochs, verbose=0,
                        validation_data=(as_model_input(data.x_test), keras.utils.to_categorical(data.y_test, 10)),
                        validation_batch_size=recipe.val_batch_size,
                        callbacks=[keras.callbacks.LearningRateScheduler(lambda epoch, lr: recipe.lr_at(epoch))])
    return (time.perf_counter() - started) / recipe.epochs, history.history["val_accuracy"][-1]


def engine(lab: Lab, recipe: Recipe) -> tuple[float, float]:
    """Seconds per epoch (first to last event, so the warm worker's idle wait is excluded) and accuracy."""
    run = lab.wait(lab.submit(PRESETS["seed-final"], recipe).run_id)
    assert run.status == "completed", run.error
    return lab.store.events(run.id)[-1].elapsed / recipe.epochs, run.test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    lab = Lab(home=tempfile.mkdtemp(prefix="bench-lab-"))
    lab.ensure_worker()
    rows = []
    try:
        for seed in args.seeds:
            recipe = Recipe(epochs=args.epochs, seed=seed)
            # Alternate the order so neither path always runs on a warmer or quieter machine.
            first, second = ("engine", "fit") if seed % 2 == 0 else ("fit", "engine")
            result = {}
            for path in (first, second):
                result[path] = engine(lab, recipe) if path == "engine" else plain_fit(recipe)
                print(f"seed {seed} {path:>6}: {result[path][0]:6.1f} s/epoch, test accuracy {result[path][1]:.4f}",
                      flush=True)
            rows.append(result)
    finally:
        lab.shutdown()
    engine_time = statistics.mean(row["engine"][0] for row in rows)
    fit_time = statistics.mean(row["fit"][0] for row in rows)
    print(f"\n{args.epochs} epochs, seeds {args.seeds}")
    print(f"engine {engine_time:.1f} s/epoch, plain fit {fit_time:.1f} s/epoch, ratio {engine_time / fit_time:.3f} "
          f"(target <= 1.0)")
    print(f"test accuracy engine {[round(row['engine'][1], 4) for row in rows]} "
          f"mean {statistics.mean(row['engine'][1] for row in rows):.4f}; "
          f"fit {[round(row['fit'][1], 4) for row in rows]} mean {statistics.mean(row['fit'][1] for row in rows):.4f}")


if __name__ == "__main__":
    main()
