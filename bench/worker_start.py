"""Time from pressing Start to the first progress event, with a cold and with a warm worker.

    python -m bench.worker_start

Cold: no worker yet, so the run waits for a new process to import TensorFlow. Target <= 15 s.
Warm: the worker was started beforehand (the Train page does this when it opens). Target <= 5 s,
and at least 2x faster than cold. (The tests check the behaviour instead: the warm worker's own
process trains the run and TensorFlow is imported once.)
"""

from __future__ import annotations

import tempfile
import time

from mnist_core.jobs import Lab
from mnist_core.slots import lock_path
from mnist_core.recipe import Recipe
from mnist_core.spec import PRESETS

RECIPE = Recipe(epochs=1, train_subset=1280, progress_every=1)


def first_event_seconds(lab: Lab) -> float:
    started = time.perf_counter()
    run_id = lab.submit(PRESETS["seed-final"], RECIPE).run_id
    while not lab.store.events(run_id):
        time.sleep(0.02)
    seconds = time.perf_counter() - started
    lab.wait(run_id)
    return seconds


def main() -> None:
    cold_lab = Lab(home=tempfile.mkdtemp(prefix="bench-cold-"))
    try:
        cold = first_event_seconds(cold_lab)
    finally:
        cold_lab.shutdown()
    warm_lab = Lab(home=tempfile.mkdtemp(prefix="bench-warm-"))
    try:
        warm_lab.status()  # warms the worker, as the Train page does
        lock = lock_path(warm_lab.home, 0)
        while not (lock.exists() and lock.read_text().endswith("ready")):  # written once TensorFlow is imported
            time.sleep(0.05)
        warm = first_event_seconds(warm_lab)
    finally:
        warm_lab.shutdown()
    print(f"Start -> first event: cold worker {cold:.1f} s, warm worker {warm:.1f} s, "
          f"warm saves {cold - warm:.1f} s ({cold / warm:.1f}x)")


if __name__ == "__main__":
    main()
