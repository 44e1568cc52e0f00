"""Runs: the history table, overlaid curves, Stop for active runs, downloads, reload and delete."""

import streamlit as st

from mnist_core.budget import describe_change
from mnist_core.charts import overlay_figure
from mnist_core.classroom import NotAllowed
from mnist_core.db import StoreError
from mnist_core.evidence import accuracy_text, did_not_learn, did_not_learn_sentence
from mnist_core.catalogue import bundled_model, model_problem
from mnist_core.report import run_rows
from mnist_core.report import spec_or_error, unsettled_batchnorm
from mnist_core.words import plural
from ui import analysis, common
from ui.export import export_buttons

CHOSEN = "runs_chosen"

notices = common.begin_page()
st.title("Runs")
lab = common.get_lab()
if lab is None:
    common.stop(notices)
me = common.visitor(lab)
try:
    runs = lab.runs()  # a run whose worker died shows as interrupted, not running forever
    progress = lab.store.progress_counts()
    names = common.owner_names(lab)
except StoreError as err:
    st.error(str(err))
    common.stop(notices)


def stop(run_id: int) -> None:
    try:
        lab.stop(run_id, me)
    except (NotAllowed, StoreError) as err:
        common.notify(str(err))


def bundled_exports() -> None:
    """The bundled model as ONNX or TFLite, made once into the run store's exports folder."""
    bundled = bundled_model()
    st.caption(f"The model shipped with the app ({common.plain(bundled.title)}, "
               f"{accuracy_text(bundled.test_accuracy)}) to run outside the lab:")
    export_buttons(st.container(horizontal=True), bundled.path, "mnist-budget-lab-bundled", "bundled",
                   folder=lab.store.home / "exports")


if not runs:
    st.info("No runs yet. Train a network on the Train page and it appears here.")
    bundled_exports()
    common.stop(notices)

runs.sort(key=lambda run: run.owner != me.owner)  # in a class your own runs come first, each part newest first
epochs_done = {run.id: progress.get(run.id, (0, 0))[1] for run in runs}
rows = run_rows(runs, common.current_budget(), epochs_done)
if lab.in_class:
    for row, run in zip(rows, runs):
        row["by"] = "you" if run.owner == me.owner else names.get(run.owner, "the lab")
# The columns a teacher compares runs by come first, narrow enough that all of them show in the 564 px a
# 1024 px projector leaves beside the sidebar; the long ones (recipe words, architecture) come after.
st.dataframe(rows, hide_index=True, width="stretch",
             column_order=["run", *(["by"] if lab.in_class else []), "status", "test accuracy", "total params",
                           "budget", "epochs", "duration", "recipe", "architecture", "name", "trainable params",
                           "started", "note"],
             column_config={"run": st.column_config.NumberColumn(width=40),
                            "by": st.column_config.TextColumn(width=85),
                            "status": st.column_config.TextColumn(width=80),
                            "test accuracy": st.column_config.TextColumn("accuracy", width=70),
                            "total params": st.column_config.NumberColumn("params", format="localized", width=60),
                            "budget": st.column_config.TextColumn(width=100),  # 'at limit, 1 over' whole
                            "epochs": st.column_config.TextColumn(width=55),
                            "duration": st.column_config.TextColumn(width=70),
                            "recipe": st.column_config.TextColumn(width=180),
                            "trainable params": st.column_config.NumberColumn(format="localized"),
                            "architecture": st.column_config.TextColumn(width="large")})

by_id = {run.id: run for run in runs}
label = {run.id: f"Run {run.id}: {run.name} ({run.status})" for run in runs}
trained = [run.id for run in runs if epochs_done[run.id]]
compare = st.multiselect("Overlay each epoch's accuracy and learning rate of", trained, format_func=label.get,
                         default=[run.id for run in runs if run.status == "completed" and run.id in trained
                                  and run.study_id is None][:3])
if compare:
    try:
        # A run that held a validation split out scored its epochs on it, not on the test digits.
        curves = [(label[run_id] + (" · validation" if by_id[run_id].recipe.get("validation") else ""),
                   lab.store.events(run_id)) for run_id in compare]  # only the runs shown
    except StoreError as err:
        st.error(str(err))
    else:
        st.plotly_chart(overlay_figure(curves), width="stretch")

st.subheader("One run")
# Keep the chosen run chosen while runs come and go; else preselect the newest one that trained at all.
if st.session_state.get(CHOSEN) not in by_id:
    own = [run_id for run_id in trained if by_id[run_id].study_id is None]  # a study's runs are many
    st.session_state[CHOSEN] = (own or trained or [runs[0].id])[0]
run = by_id[st.selectbox("Run", list(by_id), format_func=label.get, key=CHOSEN)]
arch, spec_error = spec_or_error(run)
st.caption(f"{run.status} · test accuracy {accuracy_text(run.test_accuracy)} · {epochs_done[run.id]} / "
           f"{plural(run.recipe.get('epochs', 0), 'epoch')}" + (f" · {run.error}" if run.error else ""))
if did_not_learn(run.test_accuracy):
    st.warning(did_not_learn_sentence(run.test_accuracy))
if run.test_accuracy is not None:
    try:
        why = unsettled_batchnorm(run, lab.store.events(run.id))
    except StoreError:
        why = None  # the explanation is extra; the page stands without it
    if why:
        st.warning(why)
actions = st.container(horizontal=True)  # each button as wide as its label
if spec_error:
    st.error(spec_error)
else:
    actions.download_button("Download spec JSON", arch.to_json(), file_name=f"run-{run.id}-spec.json",
                            mime="application/json")
    if actions.button("Load architecture"):
        common.set_arch(arch, f"Loaded from run {run.id}: " + describe_change(common.current_arch(), arch))
        st.switch_page("pages/architecture.py")
problem = model_problem(lab.store, run)
yours = me.may_manage(run.owner)  # Stop and Delete are the owner's and the teacher's (the Lab refuses others)
if run.status in ("queued", "running") and yours:
    actions.button("Stop", key=f"stop_{run.id}", on_click=stop, args=(run.id,))
elif problem is None:
    st.page_link("pages/predict.py", label=f"Draw a digit for run {run.id}'s model",
                 icon=":material/draw:", query_params={**st.query_params.to_dict(), "model": str(run.id)})
    # The bytes themselves (~100 KB), not a deferred reader: a deferred one was lost between reruns.
    actions.download_button("Download model (.keras)", lab.store.model_path(run.id).read_bytes(),
                            file_name=f"run-{run.id}.keras", mime="application/zip")
    st.caption(f"Run {run.id}'s model to run outside the lab (float32 images 28x28x1 scaled 0-1 in, "
               "10 probabilities out):")
    export_buttons(st.container(horizontal=True), lab.store.model_path(run.id), f"run-{run.id}", str(run.id))
elif run.has_model:  # a model it should have is missing or damaged
    st.error(problem)
else:
    st.caption(problem)
if run.status not in ("queued", "running") and yours:
    # One popover per run: after a delete it closes instead of offering the next run's deletion.
    with actions.popover("Delete run", key=f"delete_popover_{run.id}"):
        st.write(f"Delete run {run.id}" + (" and its model" if run.has_model else "") + " for good?")
        if st.button("Yes, delete", type="primary", key=f"delete_{run.id}"):
            try:
                lab.delete(run.id, me)
            except (NotAllowed, StoreError) as err:
                st.error(str(err))
            else:
                st.toast(f"Run {run.id} deleted.")
                st.rerun()
if run.has_model:
    analysis.mistakes(lab, run, has_model=problem is None)
bundled_exports()
common.end_page(notices)
