"""Training throughput of the app's training path, with and without the faster BatchNorm and Dropout steps.

    python -m bench.throughput                      # seed-final with fast, best-under-15k with best; 2 rounds
    python -m bench.throughput --images 60000 --rounds 1

Each round trains every preset twice, one after the other in this process: Keras' own BatchNorm and Dropout
steps (the baseline, today's path before `mnist_core.kernels`) and the app's default path. Both run
`train.train` with the preset's recipe at batch 128 for 4 epochs of `--images` images; epochs 2-4 are timed
from one epoch's end event to the next (each one's pass over the 10,000 test digits included), so neither
side pays for tracing, and a side's rate is the median of its timed epochs (a shared machine slows some by
half). The same epochs are also counted in this process's CPU time, which other work on the machine does not
inflate: the ratio of the two sides' work per image. Images/s become a fraction of this CPU's peak with the spec's FLOPs (6 x multiply-adds
an image for a training step: `cost.training_flops`) and a peak of cores x clock x FP32 FLOPs a cycle.
Also measured, and not in the app's path because they lost (docs/benchmarks.md): batch 256 and 512,
`steps_per_execution`, thread settings, `mixed_bfloat16`, XLA, and Keras 3's JAX backend.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from dataclasses import replace

from mnist_core import config
from mnist_core.budget import summarize
from mnist_core.data import load_mnist
from mnist_core.recipe import BEST, FAST
from mnist_core.spec import PRESETS
from mnist_core.train import train

CASES = {"seed-final": FAST, "best-under-15k": BEST}
EPOCHS = 4
TARGET_RATIO = 3.0  # issue 26


def peak_flops() -> tuple[float, str]:
    """This CPU's FP32 peak in FLOP/s and how it was reckoned, from /proc/cpuinfo."""
    info = open("/proc/cpuinfo").read()
    cores = os.cpu_count() or 1
    mhz = float(re.search(r"cpu MHz\s*:\s*([\d.]+)", info).group(1))
    flags = set(re.search(r"flags\s*:(.*)", info).group(1).split())
    amd = "AuthenticAMD" in info
    # Two FMA pipes a core; AVX-512 runs at 512 bits on Intel's server cores, as two 256-bit halves on AMD's Zen 4.
    lanes = 16 if "avx512f" in flags and not amd else 8 if "avx2" in flags or "avx512f" in flags else 4
    per_cycle = 2 * 2 * lanes  # pipes x (multiply + add) x FP32 lanes
    how = (f"{cores} cores x {mhz / 1000:.2f} GHz x {per_cycle} FP32 FLOPs a cycle "
           f"(2 FMA pipes x {lanes} lanes, {'AMD' if amd else 'Intel'}{', avx512f' if 'avx512f' in flags else ''})")
    return cores * mhz * 1e6 * per_cycle, how


def images_per_second(data, preset: str, images: int, fast_kernels: bool) -> tuple[list[float], list[float], float]:
    """(training images/s of each epoch after the first, the same per CPU-second of this process, test accuracy
    after the last). A CPU-second is a core's: on 2 cores a fully used second of wall time is 2 of them."""
    # No BatchNorm re-estimate: it is one pass at a run's end, not training, and would slow the last timed epoch.
    recipe = replace(CASES[preset], epochs=EPOCHS, train_subset=images, progress_every=10**6, recalibrate_bn=False)
    ends, cpu = [], []

    def on_event(event) -> None:
        if event.kind == "epoch":
            ends.append(event.elapsed)
            cpu.append(time.process_time())

    result = train(PRESETS[preset], recipe, data, on_event, fast_kernels=fast_kernels)
    return ([images / (end - start) for start, end in zip(ends, ends[1:])],
            [images / (end - start) for start, end in zip(cpu, cpu[1:])], result.test_accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    data = load_mnist(config.data_dir())
    peak, how = peak_flops()
    print(f"peak: {peak / 1e9:.0f} GFLOP/s = {how}")
    for preset in CASES:
        flops_per_image = 6 * summarize(PRESETS[preset]).macs
        rates, cpu_rates = {False: [], True: []}, {False: [], True: []}
        for round_ in range(args.rounds):
            for fast in (False, True):
                epochs, cpu_epochs, accuracy = images_per_second(data, preset, args.images, fast)
                rates[fast] += epochs
                cpu_rates[fast] += cpu_epochs
                print(f"{preset} round {round_ + 1} {'app' if fast else 'baseline'}: "
                      f"{', '.join(f'{rate:,.0f}' for rate in epochs)} images/s; "
                      f"{', '.join(f'{rate:,.0f}' for rate in cpu_epochs)} images a CPU-second; "
                      f"test accuracy {accuracy:.2%} after {EPOCHS} epochs", flush=True)
        baseline, app = statistics.median(rates[False]), statistics.median(rates[True])
        cpu_baseline, cpu_app = statistics.median(cpu_rates[False]), statistics.median(cpu_rates[True])
        print(f"{preset}: app {cpu_app:,.0f} vs baseline {cpu_baseline:,.0f} images a CPU-second (medians) = "
              f"{cpu_app / cpu_baseline:.2f}x: the work each image costs, whatever else runs on the machine")
        print(f"{preset}: app {app:,.0f} vs baseline {baseline:,.0f} images/s (medians) = {app / baseline:.2f}x "
              f"(target {TARGET_RATIO:g}x); {app * flops_per_image / 1e9:.0f} vs {baseline * flops_per_image / 1e9:.0f} "
              f"GFLOP/s, {app * flops_per_image / peak:.0%} vs {baseline * flops_per_image / peak:.0%} of peak")


if __name__ == "__main__":
    main()
