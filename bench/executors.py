"""The same runs through the local workers and through Ray on this machine: throughput and overhead per run.

    python -m bench.executors --runs 6 --out bench/results/executors.json
    python -m bench.executors --recipe quick --runs 2          # class-sized runs, for docs/scaling.md

Each executor gets a fresh run store, one warm-up run (worker start-up, TensorFlow import, joining Ray:
reported, not counted), then `--runs` identical runs (seeds 0..N-1) submitted at once, and a study of
seed-final (its first look, one seed). Ray here is a Ray instance of the dispatcher's own on this
machine (RAY_ADDRESS unset) with one CPU per run, so two runs train at once on 2 cores; local is the
app's default, one worker process training one run at a time with every core.
Overhead per run: the store's running time (claim to recorded end) less the training time the run
itself measured (its last event), i.e. building the model, data, saving the model and its analysis,
and for Ray the task, the object store and the relay.
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
from mnist_core.recipe import FIRST_LOOK, RECIPES
from mnist_core.spec import PRESETS

SMALL = replace(FIRST_LOOK, train_subset=6_000)  # ~10 s of training on 2 cores: overhead shows


def measure(executor: str, recipe, runs: int, study: bool) -> dict:
    """Warm-up, then `runs` runs at once and (if asked) a study, through `executor`; seconds and overheads."""
    os.environ[config.EXECUTOR_ENV] = executor
    with tempfile.TemporaryDirectory() as home:
        lab = Lab(home=home)
        try:
            started = time.monotonic()
            warm = lab.wait(lab.submit(PRESETS["seed-final"], replace(recipe, seed=99)).run_id)
            row = {"executor": executor, "where": lab.status().where, "warm_up_s": round(time.monotonic() - started, 1)}
            assert warm.status == "completed", warm.error
            started = time.monotonic()
            ids = [lab.submit(PRESETS["seed-final"], replace(recipe, seed=seed)).run_id for seed in range(runs)]
            done = [lab.wait(run_id) for run_id in ids]
            wall = time.monotonic() - started
            assert all(run.status == "completed" for run in done), [run.error for run in done]
            trained = [lab.store.events(run.id)[-1].elapsed for run in done]
            overheads = [run.finished_at - run.started_at - seconds for run, seconds in zip(done, trained)]
            row |= {"runs": runs, "wall_s": round(wall, 1), "runs_per_min": round(runs / wall * 60, 2),
                    "train_s_mean": round(statistics.mean(trained), 1),
                    "overhead_s_mean": round(statistics.mean(overheads), 2),
                    "overhead_s_max": round(max(overheads), 2),
                    "accuracy": [round(run.test_accuracy, 4) for run in done]}
            if study:
                started = time.monotonic()
                study_runs = lab.wait_study(lab.submit_study(PRESETS["seed-final"], FIRST_LOOK, seeds=(0,)))
                row |= {"study_runs": len(study_runs), "study_wall_s": round(time.monotonic() - started, 1)}
            return row
        finally:
            lab.shutdown()


def table(rows: list[dict]) -> str:
    lines = [f"{'executor':<8}{'runs':>5}{'wall s':>8}{'runs/min':>10}{'train s':>9}{'overhead s':>12}"
             f"{'warm-up s':>11}{'study':>16}  where"]
    for row in rows:
        study = f"{row['study_runs']} in {row['study_wall_s']:.0f} s" if "study_runs" in row else "-"
        lines.append(f"{row['executor']:<8}{row['runs']:>5}{row['wall_s']:>8.1f}{row['runs_per_min']:>10.2f}"
                     f"{row['train_s_mean']:>9.1f}{row['overhead_s_mean']:>12.2f}{row['warm_up_s']:>11.1f}"
                     f"{study:>16}  {row['where']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=["small", *RECIPES], default="small",
                        help="small: 1 epoch on 6,000 images (default); or a named recipe")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--executors", nargs="+", choices=config.EXECUTORS, default=list(config.EXECUTORS))
    parser.add_argument("--no-study", action="store_true", help="skip the study")
    parser.add_argument("--out", type=Path, help="append the rows to this JSON file")
    args = parser.parse_args()
    recipe = SMALL if args.recipe == "small" else RECIPES[args.recipe]
    rows = []
    for executor in args.executors:
        rows.append(measure(executor, recipe, args.runs, not args.no_study) | {"recipe": args.recipe})
        print(table(rows[-1:]), flush=True)
    print(table(rows))
    if args.out:
        previous = json.loads(args.out.read_text()) if args.out.exists() else []
        args.out.write_text(json.dumps(previous + rows, indent=1))


if __name__ == "__main__":
    main()
