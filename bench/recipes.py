"""Named recipes side by side: test accuracy per epoch, seconds, and time to 99.4%, on one machine in one run.

    python -m bench.recipes --recipes notebook fast best --seeds 0 1 2 --out bench/results/recipes.json
    python -m bench.recipes --report bench/results/recipes.json --figure docs/recipes.png

Each (recipe, seed) trains `seed-final` (or --preset: another preset, or any architecture by its code)
through `mnist_core.train.train`, the function the app's worker runs, and is appended to the JSON file as
soon as it ends, so a long bench can be read while it runs and resumed: a (recipe, seed, preset) already
in the file is skipped.
Targets: fast >= 99.40% mean of seeds 0-2 in 5 epochs; quick >= 98.5% mean of 3 seeds in one pass;
best >= 99.55% mean of 5 seeds with < 15,000 parameters.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import replace
from pathlib import Path

from mnist_core.budget import summarize
from mnist_core.data import load_mnist
from mnist_core.recipe import FIRST_LOOK, RECIPES
from mnist_core.spec import DEFAULT_PRESET, PRESETS, Architecture
from mnist_core.train import train

TARGET = 0.994
CHROMIUM = "/usr/bin/chromium"
BENCH_RECIPES = {**RECIPES, "first-look": FIRST_LOOK}  # the Studies page's cheap option too


def run_one(name: str, seed: int, preset: str, save_to: Path | None, changes: dict | None = None) -> dict:
    """Train one recipe (with `changes` to its fields) and seed; every epoch's test accuracy and elapsed seconds."""
    recipe = replace(BENCH_RECIPES[name], seed=seed, **(changes or {}))
    epochs: list[dict] = []

    def on_event(event) -> None:
        if event.kind == "epoch":
            epochs.append({"epoch": round(event.epoch), "seconds": round(event.elapsed, 1),
                           "test_accuracy": event.val_accuracy})
            print(f"  {name} seed {seed} epoch {round(event.epoch)}: {event.val_accuracy:.4f} "
                  f"({event.elapsed:.0f} s)", flush=True)

    arch = architecture(preset)
    result = train(arch, recipe, load_mnist(), on_event)
    if save_to is not None:
        save_to.mkdir(parents=True, exist_ok=True)
        result.model.save(save_to / f"{name}-{preset}-seed{seed}.keras")
    label = name + "".join(f" {key}={value}" for key, value in (changes or {}).items())
    return {"recipe": label, "seed": seed, "preset": preset, "params": summarize(arch).total,
            "settings": recipe.to_dict(), "test_accuracy": result.test_accuracy, "epochs": epochs}


def architecture(preset: str) -> Architecture:
    """A preset by name, or any architecture by its code (as in the app's links), to try one without publishing it."""
    return PRESETS[preset] if preset in PRESETS else Architecture.from_code(preset)


def time_to_target(row: dict) -> tuple[int, float] | None:
    """(epochs, seconds) at the first epoch whose test accuracy reached 99.4%, or None."""
    hit = next((epoch for epoch in row["epochs"] if epoch["test_accuracy"] >= TARGET), None)
    return (hit["epoch"], hit["seconds"]) if hit else None


def report(rows: list[dict]) -> str:
    """One line per recipe and preset: every seed, the mean, seconds a epoch and time to 99.4%."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["recipe"], row["preset"]), []).append(row)
    # Variant labels and architecture codes run long: the columns widen to fit them.
    name_width = max([len("recipe"), *(len(name) for name, _ in groups)]) + 2
    preset_width = max([len("preset"), *(len(preset) for _, preset in groups)]) + 2
    lines = [f"{'recipe':<{name_width}}{'preset':<{preset_width}}{'params':>7}  {'seeds: test accuracy %':<40}"
             f"{'mean':>7}{'s/epoch':>9}  time to 99.4% (epochs, s) per seed"]
    for (name, preset), group in groups.items():
        group.sort(key=lambda row: row["seed"])
        seeds = " ".join(f"{row['seed']}:{row['test_accuracy'] * 100:.2f}" for row in group)
        mean = statistics.mean(row["test_accuracy"] for row in group)
        per_epoch = statistics.mean(row["epochs"][-1]["seconds"] / len(row["epochs"]) for row in group)
        hits = " ".join("-" if (hit := time_to_target(row)) is None else f"{hit[0]}/{hit[1]:.0f}" for row in group)
        lines.append(f"{name:<{name_width}}{preset:<{preset_width}}{group[0]['params']:>7,}  {seeds:<40}"
                     f"{mean * 100:>7.2f}{per_epoch:>9.1f}  {hits}")
    return "\n".join(lines)


def figure(rows: list[dict]):
    """Test accuracy against wall-clock seconds, one line per recipe, preset and seed (seed-final unnamed)."""
    import plotly.graph_objects as go

    colours = {"notebook": "#636EFA", "fast": "#EF553B", "best": "#00CC96", "quick": "#AB63FA"}
    other_preset = "#FFA15A"
    fig = go.Figure()
    for row in sorted(rows, key=lambda row: (row["preset"] != DEFAULT_PRESET, row["recipe"], row["seed"])):
        default = row["preset"] == DEFAULT_PRESET
        on = "" if default else f" on {row['preset']}"
        fig.add_trace(go.Scatter(x=[e["seconds"] for e in row["epochs"]],
                                 y=[e["test_accuracy"] * 100 for e in row["epochs"]], mode="lines+markers",
                                 name=f"{row['recipe']}{on} (seed {row['seed']})",
                                 line={"color": colours.get(row["recipe"], "#BBBBBB") if default else other_preset,
                                       "width": 1.5,
                                       "dash": "solid" if row["recipe"] in colours else "dot"},  # a variant
                                 marker={"size": 4}))
    fig.add_hline(y=TARGET * 100, line_dash="dot", annotation_text="99.4%")
    fig.update_layout(title=f"Test accuracy against training time, {DEFAULT_PRESET} unless named, one 2-core CPU",
                      xaxis_title="seconds of training", yaxis_title="test accuracy (%)",
                      yaxis_range=[98.0, 99.8], template="plotly_white", width=1000, height=720)
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", choices=sorted(BENCH_RECIPES), default=["notebook", "fast", "best"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--preset", default="seed-final",
                        help=f"one of {', '.join(PRESETS)}, or an architecture code such as the app's links carry")
    parser.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="try a variant: change these recipe fields (the row is labelled with them)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/recipes.json"))
    parser.add_argument("--save-models", type=Path, help="also save each trained model in this folder")
    parser.add_argument("--report", type=Path, help="only print (and plot) the results in this file")
    parser.add_argument("--figure", type=Path, help="write the accuracy-against-seconds figure here (.png/.html)")
    args = parser.parse_args()
    path = args.report or args.out
    rows = json.loads(path.read_text()) if path.exists() else []
    changes = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.set)}
    if not args.report:
        for seed in args.seeds:
            for name in args.recipes:
                label = name + "".join(f" {key}={value}" for key, value in changes.items())
                if any((r["recipe"], r["seed"], r["preset"]) == (label, seed, args.preset) for r in rows):
                    continue
                rows.append(run_one(name, seed, args.preset, args.save_models, changes))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rows, indent=1))
    print(report(rows))
    if args.figure:
        save_figure(figure(rows), args.figure)


def save_figure(fig, path: Path) -> None:
    """Write `fig` as HTML, or as PNG drawn by Chromium (Playwright and Debian's chromium: no kaleido needed)."""
    if path.suffix == ".html":
        fig.write_html(path)
        return
    import tempfile

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        page_file = Path(folder) / "figure.html"
        fig.write_html(page_file, include_plotlyjs=True, config={"displayModeBar": False})
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        page = browser.new_page(viewport={"width": fig.layout.width + 20, "height": fig.layout.height + 20})
        page.goto(page_file.as_uri())
        page.wait_for_selector(".main-svg")
        page.locator(".js-plotly-plot").screenshot(path=str(path))
        browser.close()


if __name__ == "__main__":
    main()
