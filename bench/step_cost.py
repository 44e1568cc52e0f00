"""The fixed cost per training step that `mnist_core.cost` adds to a run's FLOPs.

    python -m bench.step_cost

A 4-filter network (51 K multiply-adds an image: its arithmetic is negligible) trains 1,000 steps at batch 8
and at batch 32 through the app's training path; the second epoch is timed (the first traces the graph).
Time per step = step cost + batch x image cost, so the two batches give both; `cost.STEP_SECONDS` is set from
this run on the project's 2-core machine, where the image cost came out at ~0 (so the estimate has none).
"""

from __future__ import annotations

import time

from mnist_core import config
from mnist_core.cost import STEP_SECONDS
from mnist_core.data import load_mnist
from mnist_core.layers import Conv, GlobalAvgPool, Softmax
from mnist_core.recipe import Recipe
from mnist_core.spec import Architecture
from mnist_core.train import train

TINY = Architecture((Conv(4), Conv(10, kernel=1, relu=False), GlobalAvgPool(), Softmax()), "tiny")
STEPS = 1_000


def seconds_per_step(data, batch: int) -> float:
    """The second epoch's seconds over its steps (its pass over the 10,000 test digits included)."""
    ends = []
    recipe = Recipe(epochs=2, batch_size=batch, train_subset=batch * STEPS, progress_every=10**6)
    train(TINY, recipe, data, lambda event: ends.append(time.perf_counter()) if event.kind == "epoch" else None)
    return (ends[1] - ends[0]) / STEPS


def main() -> None:
    data = load_mnist(config.data_dir())
    small, large = seconds_per_step(data, 8), seconds_per_step(data, 32)
    image = (large - small) / (32 - 8)
    step = small - 8 * image
    print(f"batch 8: {small * 1000:.2f} ms a step; batch 32: {large * 1000:.2f} ms a step")
    print(f"step cost {step * 1000:.2f} ms (cost.STEP_SECONDS {STEP_SECONDS * 1000:.2f} ms); "
          f"image cost {image * 1000:.3f} ms (the estimate counts none)")


if __name__ == "__main__":
    main()
