"""Frontier: test accuracy against total params, for the measured presets, published results and your runs."""

import statistics

import streamlit as st

from mnist_core.charts import FRONTIER_PARAMS, frontier_figure, frontier_floor, on_frontier
from mnist_core.db import StoreError
from mnist_core.evidence import NO_ACCURACY, accuracy_text
from mnist_core.budget import Budget
from mnist_core.frontier import MEASURED, PUBLISHED, PresetResult
from mnist_core.spec import PRESETS
from mnist_core.words import plural
from ui import common

notices = common.begin_page()
st.title("Budget frontier")
lab = common.get_lab()
me = common.visitor(lab) if lab is not None else None
# In a class a student sees their own runs, the teacher everyone's: where the class lands.
everyone = lab is not None and lab.in_class and me.teacher
whose, of_whom = ("the class's", "of the class") if everyone else ("your", "of yours")
st.caption(f"How small can it go? Each preset's seeds (dots) and their mean ± standard deviation (bar), "
           f"published results (numbered circles: see the notes below) and {whose} completed runs (crosses). "
           f"Click a preset, or its button below, to open it on the Architecture page.")

runs = []
if lab is not None:
    try:
        runs = [run for run in lab.runs() if run.status == "completed" and run.test_accuracy is not None
                and (not lab.in_class or everyone or run.owner == me.owner)]
    except StoreError as err:
        st.warning(f"The runs are not shown: {err}")


def open_preset(result: PresetResult) -> None:
    common.set_arch(PRESETS[result.preset], f"Loaded preset {result.preset} from the frontier")
    common.set_budget(Budget(result.budget))  # best-under-2k opens under a budget of 2,000
    st.switch_page("pages/architecture.py")


results = sorted(MEASURED.values(), key=lambda result: result.params)
points = [(f"run {run.id}: {run.name}", run.total_params, run.test_accuracy) for run in runs]
floor = frontier_floor(results, PUBLISHED, points)
event = st.plotly_chart(frontier_figure(results, PUBLISHED, points, f"{whose} runs"), width="stretch",
                        key="frontier_chart", on_select="rerun", selection_mode="points",
                        config={"displayModeBar": False})
chosen = [point.get("customdata") for point in (event.selection.points if event else [])]
for name in chosen:
    if isinstance(name, str) and name in MEASURED:
        open_preset(MEASURED[name])
below = sum(accuracy < floor for _, _, accuracy in points)
aside = sum(not on_frontier(point, floor) for point in points) - below
if below:
    st.caption(f"{plural(below, 'run')} {of_whom} under {accuracy_text(floor)} {'is' if below == 1 else 'are'} "
               f"below the chart.")
if aside:
    low, high = FRONTIER_PARAMS
    st.caption(f"{plural(aside, 'run')} {of_whom} under {low:,} or over {high:,} params "
               f"{'is' if aside == 1 else 'are'} beside the chart.")

with st.container(horizontal=True):
    for result in results:
        if st.button(f"Open {result.preset} ({result.params:,})", key=f"open_{result.preset}"):
            open_preset(result)

st.subheader("Measured here")
# The long columns last: at 1024x768 the table scrolls sideways, and what a class reads first stays in view.
st.dataframe([{"preset": result.preset, "params": f"{result.params:,}",
               "mean test": accuracy_text(result.mean), "sd": f"{result.spread:.2%}",
               "mean validation": accuracy_text(statistics.mean(result.validation.values()))
               if result.validation else NO_ACCURACY,
               "chosen on": "test set" if result.chosen_on_test else "validation",
               "recipe": result.recipe,
               "seeds (final epoch)": ", ".join(f"{value:.2%}" for value in result.test.values())}
              for result in results], hide_index=True, width="stretch")

with st.expander("Notes: the published results and how the presets were measured"):
    st.markdown(
        "Every preset's number is the mean of the **final** epoch's test accuracy over its seeds. The presets "
        "under 8K, 5K, 2K and 1K were designed and tuned on a validation split (the last 5,000 of the 60,000 "
        "training images, never trained on); the test set was read once per seed, after training. "
        "`best-under-15k` was chosen earlier by its test accuracy, so its number is a little optimistic. "
        "Most published results are one run's **best** epoch read on the test set: a mean of final epochs that "
        "matches one is the stronger result. Bench: `python -m bench.frontier`; every seed is in "
        "`bench/results/frontier.json`.")
    st.dataframe([{"#": number, "result": published.label, "params": f"{published.params:,}",
                   "test accuracy": accuracy_text(published.accuracy), "link": published.url or "",
                   "how": published.how, "source": published.source}
                  for number, published in enumerate(PUBLISHED, 1)],
                 hide_index=True, width="stretch",
                 # The site's name, not "https://" cut short: readable from the back of a room.
                 column_config={"link": st.column_config.LinkColumn(display_text=r"https?://(?:www\.)?([^/]+)")})

common.end_page(notices)
