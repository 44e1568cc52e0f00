"""The budget frontier, measured honestly: architectures tuned on a validation split, then tested once.

    python -m bench.frontier --arch best-under-5k --seeds 0 --set epochs=10            # tuning: validation only
    python -m bench.frontier --arch best-under-5k --seeds 0 1 2 3 4 --final            # the preset's numbers
    python -m bench.frontier --report bench/results/frontier.json

Every run holds out the last 5,000 training images (`--validation`) and trains on the other 55,000 through
`mnist_core.train.train`, the function the app's worker runs. A tuning run records only the validation
accuracy of every epoch: the test accuracy it computes at the end is thrown away unseen, so no choice is made
on the test set. A `--final` run records both, the test set read once, after the last epoch. Rows are
appended as each run ends; a (mode, arch, recipe, seed) already in the file is skipped, so a long bench resumes.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from mnist_core.budget import summarize
from mnist_core.data import load_mnist
from mnist_core.recipe import RECIPES
from mnist_core.spec import PRESETS, Architecture
from mnist_core.train import limit_threads, train

VALIDATION = 5_000  # the last 5,000 of the 60,000 training images, fixed


def run_one(arch_name: str, recipe_name: str, changes: dict, seed: int, final: bool, validation: int) -> dict:
    """Train one architecture and seed; every epoch's validation accuracy, and (final runs only) the test's."""
    recipe = replace(RECIPES[recipe_name], seed=seed, validation=validation, **changes)
    arch = PRESETS[arch_name] if arch_name in PRESETS else Architecture.from_code(arch_name)
    epochs: list[dict] = []

    def on_event(event) -> None:
        if event.kind == "epoch":
            epochs.append({"epoch": round(event.epoch), "seconds": round(event.elapsed, 1),
                           "validation_accuracy": event.val_accuracy})
            print(f"  {arch_name} seed {seed} epoch {round(event.epoch)}: validation {event.val_accuracy:.4f} "
                  f"({event.elapsed:.0f} s)", flush=True)

    result = train(arch, recipe, load_mnist(), on_event)
    row = {"mode": "final" if final else "tuning", "arch": arch_name, "code": arch.to_code(),
           "params": summarize(arch).total, "recipe": label(recipe_name, changes), "seed": seed,
           "settings": recipe.to_dict(), "validation_accuracy": result.validation_accuracy, "epochs": epochs}
    if final:
        row["test_accuracy"] = result.test_accuracy
        print(f"  {arch_name} seed {seed}: test {result.test_accuracy:.4f}", flush=True)
    return row


def label(recipe_name: str, changes: dict) -> str:
    return recipe_name + "".join(f" {key}={value}" for key, value in sorted(changes.items()))


def report(rows: list[dict]) -> str:
    """One line per (mode, arch, recipe): params, and every seed's last-epoch validation (and test) accuracy."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["mode"], row["params"], row["arch"], row["recipe"]), []).append(row)
    lines = []
    for (mode, params, arch, recipe), runs in sorted(groups.items()):
        runs.sort(key=lambda row: row["seed"])
        line = f"{mode:6} {params:6,} {arch[:80]:80} {recipe:30}"
        for key in ("validation_accuracy", "test_accuracy"):
            values = [row[key] for row in runs if row.get(key) is not None]
            if values:
                spread = f" sd {statistics.stdev(values):.2%}" if len(values) > 1 else ""
                line += (f"  {key.split('_')[0]} {statistics.mean(values):.2%}{spread} "
                         f"[{', '.join(f'{value:.2%}' for value in values)}]")
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", nargs="+", default=[], help="presets or architecture codes (as in the app's links)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="best")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", help="changes to the recipe's fields")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--final", action="store_true", help="also read the test set once, after the last epoch")
    parser.add_argument("--validation", type=int, default=VALIDATION)
    parser.add_argument("--threads", type=int, help="TensorFlow's threads: 1 lets two benches share 2 cores")
    parser.add_argument("--out", type=Path, default=Path("bench/results/frontier.json"))
    parser.add_argument("--report", type=Path, help="only print the results in this file")
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return
    if args.threads:
        limit_threads(args.threads)
    changes = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    mode = "final" if args.final else "tuning"
    for arch in args.arch:
        for seed in args.seeds:
            key = (mode, arch, label(args.recipe, changes), seed)
            if any((row["mode"], row["arch"], row["recipe"], row["seed"]) == key for row in rows):
                continue
            rows.append(run_one(arch, args.recipe, changes, seed, args.final, args.validation))
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(report(rows))


if __name__ == "__main__":
    main()
