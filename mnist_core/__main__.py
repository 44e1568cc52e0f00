"""The command line: `python -m mnist_core params ...` and `python -m mnist_core train ...`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .budget import Budget, summarize
from .spec import PRESETS, Architecture, SpecError
from .store import StoreError


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
    from .train import Recipe

    arch = _architecture(args)
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                    train_subset=args.subset)
    lab = Lab(home=args.home, data_dir=args.data_dir)
    try:
        submitted = lab.submit(arch, recipe, name=args.name or arch.name)
        run_id = submitted.run_id
        print(f"Run {run_id}: {arch.name}, {summarize(arch).total:,} params, {recipe.epochs} epochs"
              + (f" (queued behind {submitted.ahead} run(s))" if submitted.ahead else ""))
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
            run = lab.wait(run_id, timeout=60)
    finally:
        lab.shutdown()
    return _report(lab, run)


def _report(lab, run) -> int:
    if run.status == "failed":
        print(f"Run {run.id} failed: {run.error}", file=sys.stderr)
        return 1
    accuracy = f"{run.test_accuracy:.2%}" if run.test_accuracy is not None else "n/a"
    print(f"Run {run.id} {run.status}: test accuracy {accuracy}, {run.duration or 0:.1f}s")
    if lab.store.model_path(run.id).exists():
        print(f"Model: {lab.store.model_path(run.id)}")
    print(f"Run store: {lab.store.db_path}")
    return 0 if run.status == "completed" else 130 if run.status == "stopped" else 1


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
            sub.add_argument("--epochs", type=int, default=20)
            sub.add_argument("--batch-size", type=int, default=128)
            sub.add_argument("--lr", type=float, default=0.003)
            sub.add_argument("--seed", type=int, default=0)
            sub.add_argument("--subset", type=int, help="train on this many images for a quick run")
            sub.add_argument("--name", help="run name (default: the architecture's)")
            sub.add_argument("--home", help="run store folder (default $MNIST_LAB_HOME)")
            sub.add_argument("--data-dir", help="MNIST folder (default $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        code = _params(args) if args.command == "params" else _train(args)
    except (SpecError, StoreError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.command == "train":
        print(f"({time.perf_counter() - started:.1f}s)")
    return code


if __name__ == "__main__":
    sys.exit(main())
