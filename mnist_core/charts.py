"""Plotly figures from plain data (events, probabilities, verdicts); no Streamlit here."""

from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .budget import Verdict
from .store import Event

OK_GREEN, OVER_RED, NEUTRAL = "#2e9d5b", "#d62728", "#9aa5b1"
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def training_figure(events: Sequence[Event], epochs: int | None = None, title: str = "") -> go.Figure:
    """Accuracy (train and validation) and learning rate on top, loss below, against epoch.

    With `epochs`, the x axis spans the whole run from the start, so a live chart fills in
    instead of rescaling at every point.
    """
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.6, 0.4],
                           specs=[[{"secondary_y": True}], [{}]])
    ends = [e for e in events if e.kind == "epoch"]
    x = [e.epoch for e in events]
    figure.add_scatter(x=x, y=[e.accuracy for e in events], name="train accuracy", mode="lines",
                       line={"color": PALETTE[0]}, row=1, col=1)
    figure.add_scatter(x=[e.epoch for e in ends], y=[e.val_accuracy for e in ends], name="test accuracy",
                       mode="lines+markers", line={"color": PALETTE[1]}, row=1, col=1)
    figure.add_scatter(x=x, y=[e.lr for e in events], name="learning rate", mode="lines",
                       line={"color": NEUTRAL, "dash": "dot"}, row=1, col=1, secondary_y=True)
    figure.add_scatter(x=x, y=[e.loss for e in events], name="train loss", mode="lines",
                       line={"color": PALETTE[2]}, row=2, col=1)
    figure.add_scatter(x=[e.epoch for e in ends], y=[e.val_loss for e in ends], name="test loss",
                       mode="lines+markers", line={"color": PALETTE[3]}, row=2, col=1)
    figure.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1, secondary_y=False)
    figure.update_yaxes(title_text="learning rate", rangemode="tozero", row=1, col=1, secondary_y=True,
                        showgrid=False)
    figure.update_yaxes(title_text="loss", rangemode="tozero", row=2, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=1)
    if epochs:
        figure.update_xaxes(range=[0, epochs])
    figure.update_layout(title=title, height=520, margin={"t": 40 if title else 10, "b": 10},
                         legend={"orientation": "h", "y": -0.12}, uirevision="keep")
    return figure


def overlay_figure(curves: Sequence[tuple[str, Sequence[Event]]]) -> go.Figure:
    """Test accuracy (top) and learning rate (bottom) of several runs, one colour per run."""
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.65, 0.35])
    for number, (label, events) in enumerate(curves):
        colour = PALETTE[number % len(PALETTE)]
        epochs = [e for e in events if e.kind == "epoch"]
        figure.add_scatter(x=[e.epoch for e in epochs], y=[e.val_accuracy for e in epochs], name=label,
                           legendgroup=label, mode="lines+markers", line={"color": colour}, row=1, col=1)
        figure.add_scatter(x=[e.epoch for e in events], y=[e.lr for e in events], name=label, legendgroup=label,
                           showlegend=False, mode="lines", line={"color": colour, "dash": "dot"}, row=2, col=1)
    figure.update_yaxes(title_text="test accuracy", row=1, col=1)
    figure.update_yaxes(title_text="learning rate", row=2, col=1)
    figure.update_xaxes(title_text="epoch", row=2, col=1)
    figure.update_layout(height=520, margin={"t": 10, "b": 10}, legend={"orientation": "h", "y": -0.12})
    return figure


def probabilities_figure(probabilities: Sequence[float]) -> go.Figure:
    """Ten bars, the predicted digit highlighted."""
    best = max(range(len(probabilities)), key=lambda i: probabilities[i])
    colours = [PALETTE[0] if i == best else NEUTRAL for i in range(len(probabilities))]
    figure = go.Figure(go.Bar(x=[str(i) for i in range(len(probabilities))], y=list(probabilities),
                              marker_color=colours, text=[f"{p:.0%}" for p in probabilities],
                              textposition="outside"))
    figure.update_layout(height=300, margin={"t": 10, "b": 10}, yaxis={"range": [0, 1.15], "title": "probability"},
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
