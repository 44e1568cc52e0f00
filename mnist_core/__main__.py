"""The command line: `python -m mnist_core params ...`, `... train ...`, `... study ...` and `... export ...`."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from . import config
from .budget import Budget, summarize
from .db import StoreError
from .evidence import accuracy_text
from .export import FORMATS, ExportError
from .history import Run
from .recipe import ABOUT, FIELDS, RECIPES, Recipe, subset_field
from .spec import PRESETS, Architecture, SpecError
from .study import BASELINE, StudySummary, VariantRow, check_seeds, summarize_study
from .words import plural


def _switch(text: str) -> bool:
    """'on' or 'off' (also yes/no, true/false, 1/0) as a bool, for a recipe field that is a switch."""
    words = {"on": True, "yes": True, "true": True, "1": True, "off": False, "no": False, "false": False, "0": False}
    if text.lower() not in words:
        raise argparse.ArgumentTypeError(f"expected on or off, not {text!r}")
    return words[text.lower()]


def _recipe(args: argparse.Namespace) -> Recipe:
    """The named recipe with every field given on the command line replaced."""
    overrides = {field.name: getattr(args, field.name) for field in FIELDS
                 if getattr(args, field.name, None) is not None}
    if "train_subset" in overrides:
        overrides["train_subset"] = subset_field(overrides["train_subset"])
    return replace(RECIPES[args.recipe], **overrides)


def _architecture(args: argparse.Namespace) -> Architecture:
    if args.spec:
        try:
            return Architecture.from_json(Path(args.spec).read_bytes())
        except OSError as err:
            raise SpecError(f"Cannot read {args.spec}: {err.strerror or err}.") from None
    return PRESETS[args.preset]


def params_table(arch: Architecture, budget: Budget) -> str:
    """The per-layer table and the budget verdict, as printed by `params`."""
    summary = summarize(arch)
    lines = [f"{arch.name}",
             f"{'#':>3}  {'layer':<14}{'output':>10}{'params':>9}{'non-train':>11}{'RF':>5}{'MACs':>12}"]
    for row in summary.layers:
        lines.append(f"{row.index:>3}  {row.label:<14}{row.shape_text:>10}{row.total:>9,}{row.non_trainable:>11,}"
                     f"{row.receptive_field:>5}{row.macs:>12,}")
    lines.append(f"Total params: {summary.total:,}  (trainable {summary.trainable:,}, "
                 f"non-trainable {summary.non_trainable:,}); {summary.macs:,} MACs per image")
    verdict = budget.verdict(summary)
    lines.append(f"Budget: {'PASS' if verdict.within else 'FAIL'}: {verdict.text}")
    return "\n".join(lines)


def _params(args: argparse.Namespace) -> int:
    print(params_table(_architecture(args), Budget(args.limit, args.count)))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .jobs import Lab

    arch = _architecture(args)
    recipe = _recipe(args)
    lab = Lab(home=args.home, data_dir=args.data_dir)
    try:
        submitted = lab.submit(arch, recipe, name=args.name or arch.name)
        run_id = submitted.run_id
        print(f"Run {run_id}: {arch.name}, {summarize(arch).total:,} params, {args.recipe} recipe, "
              f"{plural(recipe.epochs, 'epoch')} on {plural(recipe.images, 'image')}; {recipe.describe()}"
              + (f" (queued behind {plural(submitted.ahead, 'run')})" if submitted.ahead else ""))
        seen, run = -1, None
        try:
            while run is None or not run.finished:
                run = lab.wait(run_id, timeout=0.5)
                for event in lab.store.events(run_id, after_seq=seen):
                    seen += 1
                    if event.kind == "epoch":
                        print(f"epoch {round(event.epoch):>3}  lr {event.lr:.6f}  loss {event.loss:.4f}  "
                              f"acc {event.accuracy:.4f}  val_acc {event.val_accuracy:.4f}  "
                              f"{event.elapsed:7.1f}s", flush=True)
        except KeyboardInterrupt:
            print("Stopping...", flush=True)
            lab.stop(run_id)
            lab.wait(run_id, timeout=60)
    finally:
        lab.shutdown()
    return _report(lab, lab.store.get(run_id))  # read after shutdown: the state the store really holds


def _report(lab, run) -> int:
    if run.status == "failed":
        print(f"Run {run.id} failed: {run.error}", file=sys.stderr)
        return 1
    print(f"Run {run.id} {run.status}: test accuracy {accuracy_text(run.test_accuracy)}, {run.duration or 0:.1f}s")
    if run.has_model and lab.store.model_path(run.id).exists():
        print(f"Model: {lab.store.model_path(run.id)}")
    print(f"Run store: {lab.store.db_path}")
    return 0 if run.status == "completed" else 130 if run.status == "stopped" else 1


def _study(args: argparse.Namespace) -> int:
    from .jobs import Lab

    arch, seeds = _architecture(args), check_seeds(range(args.seeds))
    recipe = _recipe(args)
    lab = Lab(home=args.home, data_dir=args.data_dir)
    try:
        study_id = lab.submit_study(arch, recipe, seeds=tuple(seeds), include_presets=args.presets, name=args.name)
        total = len(lab.store.study_runs(study_id))
        print(f"Study {study_id}: {arch.name}, {plural(total, 'run')} ({plural(total // len(seeds), 'variant')} x "
              f"{plural(len(seeds), 'seed')}), {plural(recipe.epochs, 'epoch')} on {plural(recipe.images, 'image')}",
              flush=True)
        printed: set[int] = set()
        runs, stopped = [], False
        try:
            while not runs or not all(run.finished for run in runs):
                runs = lab.wait_study(study_id, timeout=0.5)
                _print_finished(runs, printed, total)
        except KeyboardInterrupt:
            print("Stopping the study...", flush=True)
            stopped = True
            lab.stop_study(study_id)
            _print_finished(lab.wait_study(study_id, timeout=60), printed, total)
    finally:
        lab.shutdown()
    summary = summarize_study(lab.store, study_id)
    print(study_table(summary))
    print(f"Run store: {lab.store.db_path}")
    return 130 if stopped else 0 if summary.counts.get("completed", 0) == summary.total else 1


def _export(args: argparse.Namespace) -> int:
    from .catalogue import bundled_model, model_problem
    from .export import NAMES, export_model
    from .links import parse_run_id
    from .runs import RunStore

    if args.run == "bundled":
        model_path, stem = bundled_model().path, "mnist-budget-lab-bundled"
    else:
        run_id = parse_run_id(args.run)  # the app's own rule for a run number in a link
        if run_id is None:
            raise ValueError(f"RUN is a run number (1, 2, ...) or 'bundled', not {args.run!r}.")
        home = Path(args.home or config.lab_home())
        if not home.is_dir():  # an export reads a store: it never makes an empty one
            raise ValueError(f"There is no run store at {home}: name its folder with --home or $MNIST_LAB_HOME.")
        store = RunStore(home)
        run = store.get(run_id)
        if run is None:
            raise ValueError(f"There is no run {run_id} in {store.db_path}.")
        problem = model_problem(store, run)
        if problem:
            raise ValueError(problem)
        model_path, stem = store.model_path(run.id), f"run-{run.id}"
    target = Path(args.out or ".")
    if target.is_dir():  # a folder to put it in: the file is named for what it holds
        target = target / f"{stem}{FORMATS[args.format]}"
    target.parent.mkdir(parents=True, exist_ok=True)
    export_model(model_path, args.format, target)
    print(f"{NAMES[args.format]} model: {target} ({target.stat().st_size:,} bytes): float32 images (N, 28, 28, 1) "
          f"scaled 0-1 in, 10 probabilities out")
    return 0


def _print_finished(runs: list[Run], printed: set[int], total: int) -> None:
    """One line for each run that finished since the last call."""
    for run in runs:
        if run.finished and run.id not in printed:
            printed.add(run.id)
            result = accuracy_text(run.test_accuracy) if run.test_accuracy is not None else run.error or "no result"
            print(f"[{len(printed):>{len(str(total))}}/{total}] {run.name}: {run.status}, {result} "
                  f"({run.duration or 0:.1f}s)", flush=True)


def study_table(summary: StudySummary) -> str:
    """The study's progress, one row per variant and the noise rule, as printed by `study`."""
    seeds = summary.study.seeds
    counts = ", ".join(f"{count} {status}" for status, count in sorted(summary.counts.items()))
    width = 2 + max([7, *(len(_seed_cell(row, seed)) for row in summary.rows for seed in seeds)])
    lines = [f"Study {summary.study.id} ({summary.study.name}) {summary.status}: {summary.done}/{summary.total} "
             f"runs done ({counts})",
             f"{'variant':<32}{'params':>8}" + "".join(f"{f'seed {seed}':>{width}}" for seed in seeds)
             + f"{'mean':>9}{'spread':>8}{'vs base':>9}{'noise':>7}  verdict"]
    for row in summary.rows:
        cells = "".join(f"{_seed_cell(row, seed):>{width}}" for seed in seeds)
        delta = f"{row.delta_params:+,}" if row.key != BASELINE else f"{row.total_params:,}"
        lines.append(f"{row.label[:31]:<32}{delta:>8}{cells}{_pct(row.mean):>9}{_pts(row.spread):>8}"
                     f"{_pts(row.delta_accuracy, signed=True):>9}{_pts(row.noise, prefix='±'):>7}  {row.verdict}")
    if summary.seed_std is not None:
        where = ("observed across this study's seeds" if summary.seed_std_source == "observed"
                 else "typical for this recipe at the baseline's accuracy")
        lines.append("params: the baseline's total, then each variant's change. Accuracies in %, differences in "
                     "points.")
        lines.append(f"Within seed noise: |vs base| < noise = 2 x seed std x sqrt(1/n + 1/n_base); seed std "
                     f"{summary.seed_std * 100:.2f} points ({where}).")
    return "\n".join(lines)


def _seed_cell(row: VariantRow, seed: int) -> str:
    """A seed's accuracy, or its run's status while it has none."""
    return _pct(row.accuracies[seed]) if seed in row.accuracies else row.statuses.get(seed, "-")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}"


def _pts(value: float | None, signed: bool = False, prefix: str = "") -> str:
    return "" if value is None else f"{prefix}{value * 100:{'+' if signed else ''}.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_core", description="MNIST Budget Lab core.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("params", "per-layer parameter table and budget verdict"),
                            ("train", "train through the worker and store the run")):
        sub = commands.add_parser(name, help=help_text)
        source = sub.add_mutually_exclusive_group()
        source.add_argument("--preset", choices=sorted(PRESETS), default="seed-final")
        source.add_argument("--spec", help="architecture JSON file")
        if name == "params":
            sub.add_argument("--limit", type=int, default=15_000, help="parameter budget (strict <)")
            sub.add_argument("--count", choices=("total", "trainable"), default="total")
        else:
            _recipe_arguments(sub, default="notebook")
            sub.add_argument("--name", help="run name (default: the architecture's)")
            sub.add_argument("--home", help="run store folder (default $MNIST_LAB_HOME)")
            sub.add_argument("--data-dir", help="MNIST folder (default $MNIST_DATA_DIR)")
    _study_parser(commands)
    _export_parser(commands)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        code = {"params": _params, "train": _train, "study": _study, "export": _export}[args.command](args)
    except (SpecError, StoreError, ValueError, ExportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command != "params":
        print(f"({time.perf_counter() - started:.1f}s)")
    return code


def _recipe_arguments(sub, default: str) -> None:
    help_text = "; ".join(f"{name}: {ABOUT[name]}" + (" (default)" if name == default else "") for name in RECIPES)
    sub.add_argument("--recipe", choices=list(RECIPES), default=default, help=help_text)
    overrides = sub.add_argument_group("recipe fields", "each replaces one field of the chosen recipe")
    for field in FIELDS:
        kind = _switch if field.kind is bool else field.kind
        overrides.add_argument(field.cli_flag, dest=field.name, type=kind, metavar=field.name.upper(),
                               help=f"{field.label}: {field.allowed}" + (f". {field.help}" if field.help else ""))


def _study_parser(commands) -> None:
    sub = commands.add_parser("study", help="ablation study: train each BatchNorm/Dropout toggle against the spec")
    source = sub.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), default="seed-final")
    source.add_argument("--spec", help="architecture JSON file")
    _recipe_arguments(sub, default="quick")
    sub.add_argument("--seeds", type=int, default=1, help="train each variant with seeds 0..N-1 (1-5)")
    sub.add_argument("--presets", action="store_true", help="also train the presets")
    sub.add_argument("--name", help="study name (default: 'Ablation of <architecture>')")
    sub.add_argument("--home", help="run store folder (default $MNIST_LAB_HOME)")
    sub.add_argument("--data-dir", help="MNIST folder (default $MNIST_DATA_DIR)")


def _export_parser(commands) -> None:
    sub = commands.add_parser("export", help="a trained model as ONNX or TFLite, to run outside the lab")
    sub.add_argument("run", metavar="RUN", help="a run number, or 'bundled' for the model shipped with the app")
    sub.add_argument("--format", choices=sorted(FORMATS), required=True)
    sub.add_argument("--out", help="file to write (default: run-RUN.onnx or .tflite in this folder)")
    sub.add_argument("--home", help="run store folder (default $MNIST_LAB_HOME)")


if __name__ == "__main__":
    sys.exit(main())
