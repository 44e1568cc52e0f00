"""The Architecture page's budget advisor and its picture of the network."""

from functools import lru_cache

import streamlit as st

from mnist_core import advisor as advice
from mnist_core import study
from mnist_core.db import StoreError
from mnist_core.budget import summarize
from mnist_core.diagram import network_dot
from mnist_core.evidence import accuracy_text
from mnist_core.frontier import best_within, smallest_measured
from mnist_core.spec import PRESETS
from mnist_core.words import plural
from ui import common

# The advice depends only on the network and the budget (both immutable): a rerun after a toggle
# back, or another student on the same preset, gets it without searching again.
fits, single_edits, spare = (lru_cache(maxsize=256)(f) for f in (advice.fits, advice.single_edits, advice.spare))

GROUPS = {1: "One edit", 2: "Two edits (the notebook's kind of fix: two BatchNorms)", 3: "Three edits"}


def _apply(arch, change, label: str) -> None:
    common.set_arch(change.apply(arch), f"{label}: {change.delta.total:+,} total / {change.delta.trainable:+,} trainable")


def _row(arch, change, label: str, note: str, key: str) -> None:
    line = st.columns([5, 2, 1], vertical_alignment="center")
    line[0].write(label)
    line[1].write(note)
    line[2].button("Apply", key=key, on_click=_apply, args=(arch, change, change.label), help=f"Apply: {change.label}")


def measured_effects(lab, arch) -> dict[str, str]:
    """Edit key -> its measured accuracy effect in words, from the strongest study of exactly this network."""
    if lab is None:
        return {}
    try:
        return {key: effect.text for key, effect in study.measured_effects(lab.store, arch).items()}
    except StoreError:
        return {}  # the advice stands without measurements


def advisor(arch, budget, verdict, measured: dict[str, str]) -> None:
    """What to drop to fit the budget (or what the spare parameters buy), each applied with one click."""
    st.subheader("Budget advisor")
    nearest = best_within(budget)
    if nearest is None:
        smallest = smallest_measured()
        counted = summarize(PRESETS[smallest.preset]).counted(budget.counting)
        st.caption(f"No measured preset is under {budget.limit:,} {budget.counting} params: the smallest, "
                   f"{smallest.preset}, has {counted:,}.")
    elif PRESETS[nearest.preset] != arch:  # the same layers under another name are the same network
        line = st.columns([5, 2, 1], vertical_alignment="center")
        counted = summarize(PRESETS[nearest.preset]).counted(budget.counting)  # the count the budget rule sees
        line[0].write(f"Best measured preset within this budget: {nearest.preset} ({counted:,} {budget.counting} "
                      f"params)")
        line[1].write(f"{accuracy_text(nearest.mean)}, mean of {plural(len(nearest.test), 'seed')}"
                      + (" (chosen on the test set)" if nearest.chosen_on_test else ""))
        line[2].button("Load", key=f"nearest-{nearest.preset}", on_click=common.set_arch,
                       args=(PRESETS[nearest.preset], f"Loaded preset {nearest.preset}"),
                       help=f"Load {nearest.preset}: the edits below then start from it")
    if not verdict.within:
        plans = fits(arch, budget)
        if not plans:
            st.warning("No combination of up to three edits brings this network under the budget: "
                       "remove a layer or reduce filters by more.")
        for size in sorted({len(plan.edits) for plan in plans}):
            st.markdown(f"**{GROUPS[size]}** that {'fits' if size == 1 else 'fit'}"
                        + (" (fewest edits)" if size == len(plans[0].edits) else ""))
            for plan in (plan for plan in plans if len(plan.edits) == size):
                effects = [measured[edit.key] for edit in plan.edits if edit.key in measured]
                _row(arch, plan, plan.label + (f" · measured: {'; '.join(effects)}" if effects else ""),
                     f"{plan.delta.counted(budget.counting):+,} → {plan.spare:,} to spare",
                     "plan-" + "+".join(edit.key for edit in plan.edits))
    else:
        buys = spare(arch, budget)
        st.markdown(f"**What the {verdict.spare:,} spare parameters could buy**" if buys else
                    f"No single addition fits in the {verdict.spare:,} spare parameters "
                    f"(the rule is strictly under {budget.limit:,}).")
        for edit in buys:
            _row(arch, edit, edit.label, f"{edit.delta.counted(budget.counting):+,}", f"buy-{edit.key}")
    with st.expander("Every single edit and what it costs"):
        # The measured effect next to the edit: at 1024 px the columns on the right are cut.
        st.dataframe([{"edit": edit.label, "measured effect": measured.get(edit.key, ""),
                       "total": f"{edit.delta.total:+,}", "trainable": f"{edit.delta.trainable:+,}",
                       "within budget after": "yes" if edit.fits else "no"}
                      for edit in single_edits(arch, budget, free=True)], hide_index=True, width="stretch")


def picture(arch, budget) -> None:
    """The layer stack as a diagram that follows every edit: shapes, params, marks, share of the budget."""
    st.subheader("The network")
    st.graphviz_chart(network_dot(arch, budget))
