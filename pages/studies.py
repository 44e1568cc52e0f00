"""Studies: one click trains a baseline and each BatchNorm/Dropout flipped on its own; what did each buy?"""

import streamlit as st

from mnist_core.budget import summarize
from mnist_core.charts import study_figure
from mnist_core.classroom import NotAllowed
from mnist_core.db import StoreError
from mnist_core.evidence import accuracy_text
from mnist_core.recipe import FIRST_LOOK, NOTEBOOK, QUICK_RUN
from mnist_core.study import MAX_SEEDS, STUDY_PRESETS, summarize_study, variants
from mnist_core.words import points
from ui import common

RECIPES = {f"Quick run (the fast recipe over {QUICK_RUN.images:,} images once: about half a minute a variant)": QUICK_RUN,
           f"A first look ({FIRST_LOOK.images:,} images once: seconds a variant)": FIRST_LOOK,
           f"The notebook's recipe ({NOTEBOOK.epochs} epochs)": NOTEBOOK}
CHOSEN = "study_id"

notices = common.begin_page()
st.title("Studies")
st.write("What does each BatchNorm or Dropout actually buy? A study trains the current network and one "
         "variant per toggle, each flipped on its own, with the same recipe and seeds, then compares them.")
lab = common.get_lab()
if lab is None:
    common.stop(notices)
arch = common.current_arch()
me = common.visitor(lab)


def stop_study(study_id: int) -> None:
    try:
        lab.stop_study(study_id, me)
    except (NotAllowed, StoreError) as err:
        common.notify(str(err))

with st.form("new_study"):
    planned = variants(arch)
    st.markdown(f"**Study {common.plain(arch.name)}** ({summarize(arch).total:,} params): the baseline and "
                f"{len(planned) - 1} variants.")
    options = st.columns([2, 1, 1])  # the recipe's name is long
    recipe_name = options[0].selectbox("Recipe", list(RECIPES))
    seeds = options[1].number_input("Seeds per variant", 1, MAX_SEEDS, 1,
                                    help="More seeds tell a real effect from seed noise; each one adds a run per variant.")
    presets = options[2].checkbox("Also the other 15K presets", help=", ".join(STUDY_PRESETS))
    if st.form_submit_button("Study this architecture", type="primary"):
        try:
            st.session_state[CHOSEN] = lab.submit_study(arch, RECIPES[recipe_name],
                                                        seeds=tuple(range(int(seeds))), include_presets=presets,
                                                        visitor=me)
        except (StoreError, ValueError) as err:
            st.error(f"Study not started: {err}")

try:
    studies = lab.store.list_studies()
except StoreError as err:
    st.error(str(err))
    common.stop(notices)
if not studies:
    st.info("No studies yet. Press 'Study this architecture' to queue one.")
    common.stop(notices)
by_id = {study.id: study for study in studies}
chosen = st.selectbox("Study", list(by_id), format_func=lambda i: f"Study {i}: {by_id[i].name}",
                      index=list(by_id).index(st.session_state.get(CHOSEN, studies[0].id))
                      if st.session_state.get(CHOSEN) in by_id else 0)


@st.fragment(run_every=2.0)
def study_view(study_id: int) -> None:
    """Progress, then the table and scatter; refreshed from the store while the study trains."""
    try:
        summary = summarize_study(lab.store, study_id)
    except StoreError as err:
        st.error(str(err))
        return
    counts = " · ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
    st.progress(summary.done / max(summary.total, 1), text=f"{summary.done} of {summary.total} runs done ({counts})")
    if summary.status != "finished" and me.may_manage(by_id[study_id].owner):
        st.button("Stop the whole study", on_click=stop_study, args=(study_id,), key=f"stop_study_{study_id}")
    # The verdict next to the variant: at 1024 px the columns on the right are cut.
    st.dataframe([{"variant": row.label, "verdict": row.verdict,
                   "Δ accuracy": "" if row.delta_accuracy is None else points(row.delta_accuracy),
                   "Δ params": f"{row.delta_params:+,}", "test accuracy": accuracy_text(row.mean),
                   "seeds": ", ".join(f"{seed}: {row.accuracies[seed]:.2%}" if seed in row.accuracies else
                                      f"{seed}: {status}" for seed, status in row.statuses.items())}
                  for row in summary.rows],
                 hide_index=True, width="stretch")
    if summary.seed_std is not None:
        source = ("measured across this study's seeds" if summary.seed_std_source == "observed" else
                  "typical for this recipe: with one seed an effect cannot be told from noise")
        st.caption(f"Seed noise: one standard deviation is {points(summary.seed_std, signed=False)} of accuracy ({source}). "
                   f"A difference within about two of them is called within seed noise.")
    if any(row.delta_accuracy is not None for row in summary.rows[1:]):
        st.plotly_chart(study_figure(summary), width="stretch", key=f"study_figure_{study_id}")


study_view(chosen)
common.end_page(notices)
