"""How to use this machine's cores for a class: one worker on every core, or several workers side by side.

    python -m bench.class_queue --runs 6 --out bench/results/class_queue.json
    python -m bench.class_queue --runs 30 --workers 1 2          # a whole class of Quick runs

For each worker count, a fresh run store in a class (a teacher passcode set), `--runs` students each
pressing Quick run at the same moment (seeds 0..N-1), through the app's own Lab and queue. With one worker
it trains on every core; with two, each on half of them (`executors.LocalExecutor`). Reported: seconds from
the first Start to the last run completed, the mean run's seconds from Start to done, runs per minute, and
each run's test accuracy. The worker start (TensorFlow import) is inside the time, as it is for a class on a
server that just started. The app's default (MNIST_LAB_MAX_WORKERS) is the count that finished sooner.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from mnist_core import config
from mnist_core.jobs import Lab
from mnist_core.recipe import QUICK_RUN
from mnist_core.spec import PRESETS


def measure(workers: int, runs: int) -> dict:
    """`runs` Quick runs from `runs` students at once, trained by `workers` workers; times and accuracies."""
    with tempfile.TemporaryDirectory() as home:
        lab = Lab(home=home, max_workers=workers)
        try:
            started = time.time()
            ids = [lab.submit(PRESETS["seed-final"], replace(QUICK_RUN, seed=seed),
                              visitor=lab.visitor(f"student-{seed:02d}")).run_id for seed in range(runs)]
            done = [lab.wait(run_id) for run_id in ids]
        finally:
            lab.shutdown()
    assert all(run.status == "completed" for run in done), [run.error for run in done]
    last = max(run.finished_at for run in done) - started
    return {"workers": workers, "threads_each": max(1, (os.cpu_count() or 1) // workers) if workers > 1 else "all",
            "runs": runs, "last_done_s": round(last, 1),
            "mean_start_to_done_s": round(statistics.mean(run.finished_at - run.created_at for run in done), 1),
            "runs_per_min": round(runs / last * 60, 2),
            "mean_accuracy": round(statistics.mean(run.test_accuracy for run in done), 4),
            "accuracy": [round(run.test_accuracy, 4) for run in done]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ[config.TEACHER_PASSCODE_ENV] = os.environ.get(config.TEACHER_PASSCODE_ENV) or "bench"
    rows = []
    for workers in args.workers:
        rows.append(measure(workers, args.runs))
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
