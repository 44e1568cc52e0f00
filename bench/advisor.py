"""Budget advice latency against its target: it reruns with the page's counter, so it must be as quick.

    python -m bench.advisor

- advice (the smallest fixes when over budget, what spare params buy when under): target <= 50 ms
  for both presets, and for seeded random specs with budgets set just under their count, where the
  search over two- and three-edit fixes has the most to do.
"""

from __future__ import annotations

import random
import statistics

from bench.ui_latency import p95, timed
from mnist_core.advisor import fits, spare
from mnist_core.budget import Budget, summarize
from mnist_core.spec import PRESETS, Architecture, Conv, GlobalAvgPool, MaxPool, Softmax

TARGET_MS = 50


def advice(arch: Architecture, budget: Budget) -> list:
    """What the Architecture page would show: fixes when over budget, purchases when under."""
    if budget.verdict(summarize(arch)).within:
        return spare(arch, budget)
    return fits(arch, budget)


def random_spec(rng: random.Random) -> Architecture:
    """4-14 convs (1x1 or 3x3, 4-32 filters, BatchNorm on most) with a few max-pools, then the head."""
    size, layers = 28, []
    for _ in range(rng.randint(4, 14)):
        if size >= 8 and rng.random() < 0.2:
            layers.append(MaxPool(2))
            size //= 2
        else:
            kernel = rng.choice((1, 3, 3)) if size > 3 else 1
            layers.append(Conv(rng.randint(4, 32), kernel, batchnorm=rng.random() < 0.7, dropout=rng.random() < 0.3))
            size -= kernel - 1
    return Architecture(tuple(layers) + (Conv(10, 1, relu=False), GlobalAvgPool(), Softmax()))


def report(title: str, arch: Architecture, budget: Budget, repeats: int = 50) -> float:
    """Print the advice's median and p95 for one spec and budget; return the p95."""
    times = timed(lambda: advice(arch, budget), repeats)
    answer = advice(arch, budget)
    print(f"{title:<44} median {statistics.median(times):6.2f} ms, p95 {p95(times):6.2f} ms "
          f"({len(answer)} items; target <= {TARGET_MS} ms)")
    return p95(times)


if __name__ == "__main__":
    report("seed-first, 15,000 total (88 over)", PRESETS["seed-first"], Budget())
    report("seed-final, 15,000 total (40 spare)", PRESETS["seed-final"], Budget())
    report("seed-final, 15,000 trainable (200 spare)", PRESETS["seed-final"], Budget(counting="trainable"))
    rng = random.Random(1)
    worst = []
    for number in range(8):
        arch = random_spec(rng)
        total = summarize(arch).total
        for over in (100, 500, 2_000):
            worst.append(report(f"random spec {number} ({len(arch.convs)} convs), {over:,} over",
                                arch, Budget(total - over + 1), repeats=10))
    print(f"random specs: worst p95 {max(worst):.2f} ms, median p95 {statistics.median(worst):.2f} ms "
          f"(target <= {TARGET_MS} ms)")
