"""The seconds a run spends outside its training batches, with a warm worker, over 10 runs.

    python -m bench.overhead             # 10 runs of seed-final, 1 epoch of 1,280 images
    python -m bench.overhead --runs 3

Claim to first batch: from the worker claiming the run (its `started_at`) to the first batch's progress event
landing in the store (load the data, build and compile the model, trace the training step, one batch).
Last batch to recorded: from the last batch event landing in the store to the run's `finished_at`: the last
batch, the one pass over the 10,000 test digits (which is also the run's analysis), saving the model,
recording the run. Targets (issue 26): <= 2 s and <= 3 s. Both sides read the same wall clock.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from mnist_core.jobs import Lab
from mnist_core.recipe import Recipe
from mnist_core.spec import PRESETS

RECIPE = Recipe(epochs=1, train_subset=1280, progress_every=1)  # 10 batches: the training itself is ~1 s


def one_run(lab: Lab) -> tuple[float, float]:
    """(claim to first batch, last batch to recorded) in seconds, watched from outside every 10 ms."""
    run_id = lab.submit(PRESETS["seed-final"], RECIPE).run_id
    first_seen = last_batch_seen = None
    seen = 0
    while True:
        run = lab.store.get(run_id)
        events = lab.store.events(run_id)
        now = time.time()
        if len(events) > seen:
            seen = len(events)
            if first_seen is None:
                first_seen = now
            if events[-1].kind == "batch":
                last_batch_seen = now
        if run.finished:
            return first_seen - run.started_at, run.finished_at - last_batch_seen
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab = Lab(home=tempfile.mkdtemp(prefix="bench-overhead-"))
    try:
        lab.wait(lab.submit(PRESETS["seed-final"], RECIPE).run_id, timeout=600)  # a warm worker, graphs built once
        timings = [one_run(lab) for _ in range(args.runs)]
    finally:
        lab.shutdown()
    for label, values in zip(("claim to first batch", "last batch to recorded"), zip(*timings)):
        print(f"{label}: mean {statistics.mean(values):.2f} s, "
              f"each {' '.join(f'{value:.2f}' for value in values)}")


if __name__ == "__main__":
    main()
