"""The Quick run as a student meets it: Start to first chart point and Start to done, warm worker, per seed.

    python -m bench.quick_run                 # seeds 0, 1, 2
    python -m bench.quick_run --seeds 0 1 2 3 4

Each seed is one Quick run (seed-final, the `quick` recipe: one pass over the 60,000 images) submitted to a
Lab whose worker is already warm, one after the other, as the Train page's button queues it. Start to first
chart point: `submit` to the run's first progress event in the store. Start to done: `submit` to the run's
recorded end. Targets (issue 26): done <= 30 s, first point <= 2 s, mean test accuracy >= 98.9%.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace

from mnist_core.jobs import Lab
from mnist_core.recipe import QUICK_RUN
from mnist_core.slots import lock_path
from mnist_core.spec import PRESETS


def quick_run(lab: Lab, seed: int) -> tuple[float, float, float]:
    """(Start to first chart point, Start to done, test accuracy) of one Quick run."""
    started = time.perf_counter()
    run_id = lab.submit(PRESETS["seed-final"], replace(QUICK_RUN, seed=seed)).run_id
    first = None
    while True:
        run = lab.store.get(run_id)
        if first is None and lab.store.events(run_id):
            first = time.perf_counter() - started
        if run.status not in ("queued", "running"):
            break
        time.sleep(0.02)
    done = time.perf_counter() - started
    if run.status != "completed":
        raise SystemExit(f"run {run_id} ended {run.status}: {run.error}")
    return first, done, run.test_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    lab = Lab(home=tempfile.mkdtemp(prefix="bench-quick-"))
    try:
        lab.status()  # warms the worker, as the Train page does when it opens
        lock = lock_path(lab.home, 0)
        while not (lock.exists() and lock.read_text().endswith("ready")):  # written once TensorFlow is imported
            time.sleep(0.05)
        results = []
        for seed in args.seeds:
            first, done, accuracy = quick_run(lab, seed)
            results.append((first, done, accuracy))
            print(f"seed {seed}: first chart point {first:.1f} s, done {done:.1f} s, test accuracy {accuracy:.2%}",
                  flush=True)
    finally:
        lab.shutdown()
    firsts, dones, accuracies = zip(*results)
    print(f"mean of {len(results)}: first chart point {statistics.mean(firsts):.1f} s (target <= 2 s), "
          f"done {statistics.mean(dones):.1f} s (target <= 30 s), "
          f"test accuracy {statistics.mean(accuracies):.2%} (target >= 98.9%)")


if __name__ == "__main__":
    main()
