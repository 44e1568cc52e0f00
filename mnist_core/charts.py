"""Plotly figures from plain data (events, probabilities, verdicts); no Streamlit here."""

from __future__ import annotations

import html
import math
from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .budget import Verdict
from .events import Event
from .study import BASELINE, StudySummary

OK_GREEN, OVER_RED, NEUTRAL = "#2e9d5b", "#d62728", "#9aa5b1"
TOOLBAR_CLEARANCE = 30  # px above a chart's plot area: a mode bar or toolbar shown there covers no tick
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open", "x-open", "star-open",
           "triangle-down-open", "hexagon-open")
TOGGLE_WORDS = {"bn": "BN", "dropout": "Dropout"}
FRONTIER_RUNS_FROM = 0.95  # the frontier's axis reaches down to a run this accurate, not to every run
# The frontier's params axis reaches out to runs this small or large, not further: a run of millions of params
# would squash the presets into a corner.
FRONTIER_PARAMS = (10, 200_000)
FRONTIER_LABEL = 40  # characters of a run's name in the frontier's hover; a longer one ran off the chart


def training_figure(events: Sequence[Event], epochs: int | None = None, title: str = "",
                    peak_lr: float | None = None, height: int = 520, scored_on: str = "test") -> go.Figure:
    """Accuracy (train, and each epoch's score on `scored_on`: "test" or "validation") and learning rate on top,
    loss below, against epoch.

    With `epochs` and `peak_lr`, the axes span the whole run from the start, so a live chart fills in
    instead of rescaling at every point.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4],
                           specs=[[{"secondary_y": True}], [{}]])
    ends = [e for e in events if e.kind == "epoch"]
    x = [e.epoch for e in events]
    # Keras averages a metric over the epoch so far: it restarts, higher, at each new epoch.
    figure.add_scatter(x=x, y=[e.accuracy for e in events], name="train accuracy (epoch so far)", mode="lines",
                       line={"color": PALETTE[0]}, row=1, col=1)
    figure.add_scatter(x=[e.epoch for e in ends], y=[e.val_accuracy for e in ends], name=f"{scored_on} accuracy",
                       mode="lines+markers", line={"color": PALETTE[1]}, row=1, col=1)
    figure.add_scatter(x=x, y=[e.lr for e in events], name="learning rate", mode="lines",
                       line={"color": NEUTRAL, "dash": "dot"}, row=1, col=1, secondary_y=True)
    figure.add_scatter(x=x, y=[e.loss for e in events], name="train loss", mode="lines",
                       line={"color": PALETTE[2]}, row=2, col=1)
    figure.add_scatter(x=[e.epoch for e in ends], y=[e.val_loss for e in ends], name=f"{scored_on} loss",
                       mode="lines+markers", line={"color": PALETTE[3]}, row=2, col=1)
    figure.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1, secondary_y=False)
    # Round ticks of its own: Plotly's, beside the accuracy axis, read 0.0021, 0.0041.
    ticks = lr_ticks(peak_lr or max((e.lr for e in events if e.lr), default=0.0))
    figure.update_yaxes(title_text="learning rate", rangemode="tozero", row=1, col=1, secondary_y=True,
                        showgrid=False, tickmode="array", tickvals=ticks, ticktext=[f"{tick:g}" for tick in ticks],
                        range=[0, peak_lr * 1.05] if peak_lr else None)
    figure.update_yaxes(title_text="loss", rangemode="tozero", row=2, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=1)
    if epochs:
        figure.update_xaxes(range=[0, epochs * 1.03])  # the last epoch's marker is drawn whole
    # The top margin keeps the top ticks clear of the toolbar a chart shows on hover.
    figure.update_layout(title=title, height=height, margin={"t": TOOLBAR_CLEARANCE + (30 if title else 0), "b": 10},
                         legend={"orientation": "h", "y": -0.12}, uirevision="keep")
    return figure


def lr_ticks(peak: float) -> list[float]:
    """Round ticks from 0 to `peak` (a step of 1, 2 or 5 times a power of ten, at most 6 ticks); none for 0."""
    if peak <= 0:
        return []
    power = 10.0 ** math.floor(math.log10(peak))
    step = next(size * scale for scale in (power / 10, power) for size in (1, 2, 5) if peak / (size * scale) <= 5)
    return [round(number * step, 12) for number in range(int(peak / step + 1e-9) + 1)]


def overlay_figure(curves: Sequence[tuple[str, Sequence[Event]]]) -> go.Figure:
    """Each epoch's test accuracy (validation accuracy, for a run that held a split out) on top and learning
    rate below, of several runs.

    Each run has its own colour, dash and open marker, and each later run a thinner line, so that runs
    with the same curve stay apart: the first one's line shows around the next one's. The accuracy axis
    stays within 0-100%, starting a little below the lowest point so that 97% and 99% look different.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    lowest = 1.0
    for number, (label, events) in enumerate(curves):
        colour, dash = PALETTE[number % len(PALETTE)], DASHES[number % len(DASHES)]
        line = {"color": colour, "dash": dash, "width": max(1.5, 4.5 - number)}
        epochs = [e for e in events if e.kind == "epoch"]
        lowest = min([lowest, *(e.val_accuracy for e in epochs if e.val_accuracy is not None)])
        # A run's name is a user's text: Plotly would render its <a href> as a link (a quote cannot open a tag).
        legend = html.escape(label, quote=False)
        figure.add_scatter(x=[e.epoch for e in epochs], y=[e.val_accuracy for e in epochs], name=legend,
                           legendgroup=legend, mode="lines+markers", line=line, cliponaxis=False,
                           marker={"symbol": SYMBOLS[number % len(SYMBOLS)], "size": 12, "line": {"width": 2}},
                           row=1, col=1)
        figure.add_scatter(x=[e.epoch for e in events], y=[e.lr for e in events], name=legend, legendgroup=legend,
                           showlegend=False, mode="lines", line=line, row=2, col=1)
    figure.update_yaxes(title_text="accuracy each epoch", range=[_accuracy_floor(lowest), 1.0], tickformat=".1~%",
                        row=1, col=1)
    figure.update_yaxes(title_text="learning rate", row=2, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=1)
    figure.update_layout(height=520, margin={"t": 10, "b": 10}, legend={"orientation": "h", "y": -0.12})
    return figure


def _accuracy_floor(lowest: float) -> float:
    """The foot of an accuracy axis: the 5% step at least 2 points below the lowest value, never below 0."""
    return max(0.0, ((lowest - 0.02) * 20) // 1 / 20)


def probabilities_figure(probabilities: Sequence[float], height: int = 300) -> go.Figure:
    """Ten bars, the predicted digit highlighted."""
    best = max(range(len(probabilities)), key=lambda i: probabilities[i])
    colours = [PALETTE[0] if i == best else NEUTRAL for i in range(len(probabilities))]
    figure = go.Figure(go.Bar(x=[str(i) for i in range(len(probabilities))], y=list(probabilities),
                              marker_color=colours, text=[f"{p:.0%}" for p in probabilities],
                              textposition="outside", cliponaxis=False, constraintext="none"))  # full-size labels
    figure.update_layout(height=height, margin={"t": 10, "b": 10}, yaxis={"range": [0, 1.15], "title": "probability"},
                         xaxis={"title": "digit", "type": "category"})
    return figure


def budget_figure(verdict: Verdict) -> go.Figure:
    """A horizontal bar of the counted parameters against the limit: green under, red over."""
    colour = OK_GREEN if verdict.within else OVER_RED
    figure = go.Figure(go.Bar(x=[verdict.counted], y=["params"], orientation="h", marker_color=colour,
                              text=[f"{verdict.counted:,} / {verdict.limit:,}"], textposition="inside"))
    figure.add_vline(x=verdict.limit, line={"color": "#333", "width": 2, "dash": "dash"})
    figure.update_layout(height=90, margin={"t": 5, "b": 5, "l": 5, "r": 5}, showlegend=False,
                         xaxis={"range": [0, max(verdict.limit, verdict.counted) * 1.1], "showgrid": False},
                         yaxis={"visible": False})
    return figure


def saliency_figure(digit28, saliency, title: str = "") -> go.Figure:
    """The 28x28 input in grey with, over it in red, how much blanking each region lowers the answer."""
    figure = go.Figure()
    figure.add_heatmap(z=digit28, colorscale="Greys", reversescale=True, showscale=False, hoverinfo="skip")
    peak = float(saliency.max()) or 1.0
    figure.add_heatmap(z=saliency, colorscale=[[0, "rgba(214,39,40,0)"], [1, "rgba(214,39,40,0.85)"]],
                       zmin=0, zmax=peak, colorbar={"title": {"text": "drop"}, "thickness": 10},
                       hovertemplate="row %{y}, column %{x}: -%{z:.0%}<extra></extra>")
    figure.update_yaxes(autorange="reversed", visible=False, scaleanchor="x")
    figure.update_xaxes(visible=False)
    figure.update_layout(title=title, height=260, margin={"t": 30 if title else 5, "b": 5, "l": 5, "r": 5})
    return figure


def study_figure(summary: StudySummary) -> go.Figure:
    """Each variant's change in params (x) against its change in test accuracy (y, points), baseline at 0.

    Error bars are the seed-noise bar of each verdict: a bar crossing zero is within seed noise.
    Green is better than the baseline beyond noise, red worse, grey within noise; variants without
    a result yet are left out. Each dot is named beside it (the hover says it in full), baseline too.
    """
    colours = {"better": OK_GREEN, "worse": OVER_RED, "noise": NEUTRAL}
    rows = [row for row in summary.rows if row.key != BASELINE and row.delta_accuracy is not None]
    figure = go.Figure()
    figure.add_hline(y=0, line={"color": "#333", "width": 1, "dash": "dash"})
    figure.add_scatter(x=[row.delta_params for row in rows], y=[row.delta_accuracy * 100 for row in rows],
                       error_y={"type": "data", "array": [row.noise * 100 for row in rows], "thickness": 1},
                       mode="markers+text", name="variants", text=[row.label for row in rows],
                       texttemplate=_dot_texts(rows), textposition="top center", textfont={"size": 11},
                       cliponaxis=False, customdata=[row.verdict for row in rows],
                       marker={"size": 10, "color": [colours[row.effect] for row in rows]},
                       hovertemplate="%{text}<br>%{x:+,} params, %{y:+.2f} points<br>%{customdata}<extra></extra>")
    figure.add_scatter(x=[0], y=[0], mode="markers+text", name="baseline", text=["baseline"],
                       textposition="bottom center", marker={"size": 12, "color": "#333", "symbol": "diamond"},
                       hovertemplate="Baseline<extra></extra>")
    figure.update_xaxes(title_text="params vs baseline", zeroline=True)
    figure.update_yaxes(title_text="test accuracy vs baseline (points)")
    figure.update_layout(height=420, margin={"t": 10, "b": 10}, showlegend=False)
    return figure


def _dot_texts(rows) -> list[str]:
    """Each dot's name beside it; dots at one spot (same params, same accuracy) share one text naming them all."""
    names: dict[tuple, list[str]] = {}
    for row in rows:
        names.setdefault((row.delta_params, round(row.delta_accuracy, 6)), []).append(dot_label(row.key, row.label))
    texts, named = [], set()
    for row in rows:
        spot = (row.delta_params, round(row.delta_accuracy, 6))
        texts.append("" if spot in named else ", ".join(names[spot]))
        named.add(spot)
    return texts


def dot_label(key: str, label: str) -> str:
    """A study dot's name on the chart: '−BN 6' for BatchNorm dropped after conv 6, '+Dropout 3', a preset's
    name; else the variant's label."""
    kind, _, place = key.partition(":")
    toggle, _, state = kind.partition("-")
    if toggle in TOGGLE_WORDS and state in ("on", "off") and place.startswith("conv"):
        return f"{'+' if state == 'on' else '−'}{TOGGLE_WORDS[toggle]} {place.removeprefix('conv')}"
    return place if kind == "preset" else label


def confusion_figure(matrix: Sequence[Sequence[int]]) -> go.Figure:
    """A 10x10 heatmap of counts, true digit down, predicted across: errors in reds on a square-root
    scale (one stray error still shows), correct answers in pale grey so the diagonal does not dominate."""
    size = len(matrix)
    digits = [str(d) for d in range(size)]
    wrong = [[matrix[t][p] if t != p and matrix[t][p] else None for p in range(size)] for t in range(size)]
    right = [[matrix[t][p] if t == p else None for p in range(size)] for t in range(size)]
    most = max((n for row in wrong for n in row if n), default=1)
    ticks = [n for n in (1, 10, 100, 1000) if n <= most]
    figure = go.Figure()
    figure.add_heatmap(z=right, x=digits, y=digits, colorscale=[[0, "#eef1f4"], [1, "#eef1f4"]], showscale=False,
                       texttemplate="%{z}", textfont={"color": "#555", "size": 13}, xgap=2, ygap=2,
                       hovertemplate="%{y} read as %{x}: %{z} times (correct)<extra></extra>")
    figure.add_heatmap(z=[[None if n is None else n ** 0.5 for n in row] for row in wrong], x=digits, y=digits,
                       zmin=0, zmax=most ** 0.5, colorscale=[[0, "#fcc5b0"], [1, "#99000d"]],
                       text=[["" if n is None else str(n) for n in row] for row in wrong], texttemplate="%{text}",
                       textfont={"size": 13},
                       xgap=2, ygap=2, hovertemplate="true %{y} read as %{x}: %{text} times<extra></extra>",
                       colorbar={"title": {"text": "errors"}, "thickness": 12, "tickvals": [n ** 0.5 for n in ticks],
                                 "ticktext": [f"{n:,}" for n in ticks]})
    figure.update_xaxes(title_text="predicted digit", type="category", side="top")
    figure.update_yaxes(title_text="true digit", type="category", autorange="reversed")
    figure.update_layout(height=480, margin={"t": 40, "b": 10, "l": 10, "r": 10}, plot_bgcolor="white")
    return figure


def per_class_figure(per_class_accuracy: Sequence[float | None]) -> go.Figure:
    """Test accuracy per digit, the weakest in red; the axis starts a little below it so that 97% and 99%
    look different (None: no test digit of that class)."""
    known = [a for a in per_class_accuracy if a is not None]
    lowest = min(known, default=1.0)
    colours = [OVER_RED if a == lowest else NEUTRAL for a in per_class_accuracy]
    floor = _accuracy_floor(lowest)
    figure = go.Figure(go.Bar(x=[str(d) for d in range(len(per_class_accuracy))], y=list(per_class_accuracy),
                              marker_color=colours, textposition="outside", cliponaxis=False, textfont={"size": 13},
                              text=["no digits" if a is None else f"{a:.1%}" for a in per_class_accuracy],
                              hovertemplate="digit %{x}: %{y:.2%} read correctly<extra></extra>"))
    figure.update_layout(height=300, margin={"t": 40, "b": 10}, title={"text": "The weakest digit in red",
                                                                        "font": {"size": 13}},
                         yaxis={"range": [floor, 1.0], "title": "test accuracy", "tickformat": ".0%"},
                         xaxis={"title": "true digit", "type": "category"})
    return figure


def import_lazy_parts() -> None:
    """Make and serialise one small figure, so that every module Plotly imports on first use (pandas among
    them) is imported now, by one thread: two threads importing one at the same time can see it half-made."""
    import pandas  # noqa: F401  (Streamlit's tables need it too)
    import plotly.io

    plotly.io.to_json(make_subplots(rows=2, cols=1, specs=[[{"secondary_y": True}], [{}]])
                      .add_bar(x=[1], y=[1]).add_heatmap(z=[[1]], row=2, col=1))


def frontier_figure(results: Sequence, published: Sequence, runs: Sequence[tuple[str, int, float]],
                    runs_name: str = "your runs", budgets: Sequence[int] = (1_000, 2_000, 5_000, 8_000, 15_000),
                    height: int = 500) -> go.Figure:
    """Test accuracy against total params (log scale): each measured preset's seeds as dots with their mean (a
    bar) and spread, published results as open circles numbered in their order, and `runs` ((label, params,
    accuracy)) as crosses, those under `frontier_floor` left out.

    A preset's points carry its name as customdata, so a click on one can load it.
    """
    figure = go.Figure()
    for budget in budgets:
        figure.add_vline(x=budget, line={"color": NEUTRAL, "dash": "dot", "width": 1})
    floor = frontier_floor(results, published, runs)
    runs = [run for run in runs if on_frontier(run, floor)]
    honest_colours = [colour for colour in PALETTE if colour != OVER_RED]  # red marks "chosen on the test set"
    for number, result in enumerate(results):
        colour = OVER_RED if result.chosen_on_test else honest_colours[number % len(honest_colours)]
        name = result.preset + (" (chosen on the test set)" if result.chosen_on_test else "")  # the app's own names
        figure.add_scatter(x=[result.params] * len(result.test), y=list(result.test.values()), mode="markers",
                           marker={"color": colour, "size": 8, "opacity": 0.6}, legendgroup=result.preset,
                           showlegend=False, customdata=[result.preset] * len(result.test),
                           hovertemplate=f"{name}<br>seed %{{text}}: %{{y:.2%}}<extra></extra>",
                           text=[str(seed) for seed in result.test])
        # The mean as a wide bar, not a big marker: the seeds' dots stay visible through it.
        figure.add_scatter(x=[result.params], y=[result.mean], mode="markers+text", name=name,
                           legendgroup=result.preset, customdata=[result.preset],
                           marker={"color": colour, "size": 26, "symbol": "line-ew", "line": {"width": 3,
                                                                                              "color": colour}},
                           error_y={"type": "data", "array": [result.spread], "color": colour, "thickness": 2},
                           # Only the mean under the bar (the legend names the colour): names ran into the
                           # published circles and each other on a projector.
                           text=[f"{result.mean:.2%}"], textposition="bottom center",
                           textfont={"size": 13, "color": colour},
                           hovertemplate=(f"{name}: {result.params:,} params<br>mean of {len(result.test)} seeds "
                                          f"%{{y:.2%}} ± {result.spread:.2%}<extra></extra>"))
    if published:
        # Numbers, not names, beside the circles: close results' names ran into each other on a projector.
        figure.add_scatter(x=[p.params for p in published], y=[p.accuracy for p in published],
                           mode="markers+text",
                           name="the notebook and published results (numbered as in the notes; most: one run's "
                                "best epoch)",
                           marker={"symbol": "circle-open", "size": 12, "color": "#555555", "line": {"width": 2}},
                           text=[str(number) for number in range(1, len(published) + 1)],
                           # Right of the circle: above it, "1" sat under best-under-15k's seeds.
                           textposition="middle right", textfont={"size": 13, "color": "#555555"},
                           customdata=[[html.escape(text, quote=False) for text in (p.label, p.how, p.source)]
                                       for p in published],
                           hovertemplate="%{text}. %{customdata[0]}: %{x:,} params, %{y:.2%}<br>%{customdata[1]}"
                                         "<br>%{customdata[2]}<extra></extra>")
    if runs:
        figure.add_scatter(x=[params for _, params, _ in runs], y=[accuracy for _, _, accuracy in runs],
                           mode="markers", name=runs_name, marker={"symbol": "x", "size": 11, "color": "#222222"},
                           text=[html.escape(_clipped(label), quote=False) for label, _, _ in runs],
                           hovertemplate="%{text}: %{x:,} params, %{y:.2%}<extra></extra>")
    # From 400 to 22K params, wider where a run lies outside (up to FRONTIER_PARAMS), with ticks out there too.
    sizes = [400, 22_000, *(params for _, params, _ in runs)]
    low, high = min(sizes) / 1.2, max(sizes) * 1.2
    ticks = [tick for tick in (10, 20, 50, 100, 200, 500) if tick >= low] + list(budgets) + [
        tick for tick in (50_000, 100_000, 200_000) if tick <= high]
    figure.update_xaxes(type="log", title_text="total params (log scale)", tickvals=ticks,
                        ticktext=[f"{tick // 1000}K" if tick >= 1000 else str(tick) for tick in ticks],
                        range=[math.log10(low), math.log10(high)])
    figure.update_yaxes(title_text="test accuracy", tickformat=".1%", range=[floor, 1.0])
    figure.update_layout(height=height, margin={"t": TOOLBAR_CLEARANCE, "b": 10, "l": 10, "r": 10},
                         legend={"orientation": "h", "y": -0.18}, font={"size": 14}, clickmode="event+select")
    # A click selects a point (to open its preset); Plotly would then grey every other point until the next click.
    for trace in figure.data:
        trace.unselected = {"marker": {"opacity": trace.marker.opacity or 1.0}}
    return figure


def on_frontier(run: tuple[str, int, float], floor: float) -> bool:
    """Whether the frontier chart draws this (label, params, accuracy) run: at or above `floor`, and within
    FRONTIER_PARAMS."""
    _, params, accuracy = run
    return accuracy >= floor and _within_params(params)


def _within_params(params: int) -> bool:
    return FRONTIER_PARAMS[0] <= params <= FRONTIER_PARAMS[1]


def _clipped(label: str) -> str:
    return label if len(label) <= FRONTIER_LABEL else label[:FRONTIER_LABEL - 1] + "…"


def frontier_floor(results: Sequence, published: Sequence, runs: Sequence[tuple[str, int, float]] = ()) -> float:
    """The foot of the frontier's accuracy axis: half a point under its lowest seed, published result or run,
    runs under FRONTIER_RUNS_FROM left out (a run that barely learned would squash the presets together)."""
    lowest = min([0.99, *(min(r.test.values()) for r in results), *(p.accuracy for p in published),
                  *(accuracy for _, params, accuracy in runs
                    if accuracy >= FRONTIER_RUNS_FROM and _within_params(params))])
    return math.floor((lowest - 0.005) * 200) / 200
