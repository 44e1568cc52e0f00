"""My handwriting: the digits a user saved, browsed as a grid, exported, imported, and every model judged on them."""

import streamlit as st

from mnist_core.judge import evaluate_all
from mnist_core.predict import enlarge
from mnist_core.report import NONE, percent
from mnist_core.samples import SampleError, SampleStore
from mnist_core.store import StoreError
from pages import common

COLUMNS = 10

notices = common.begin_page()
st.title("My handwriting")
st.write("Digits you saved from the Predict page (drawn or photographed), each with its true label: "
         "a test set of your own to judge every model on.")
lab = common.get_lab()
if lab is None:
    common.stop(notices)
samples = SampleStore(lab.store)


def import_set() -> None:
    upload = st.session_state.get("import_npz")
    if upload is None:
        return
    try:
        added = samples.import_npz(upload.getvalue())
    except (SampleError, StoreError) as err:
        st.session_state["import_result"] = ("error", f"Not imported: {err}")
    else:
        st.session_state["import_result"] = ("success", f"Imported {len(added):,} sample(s).")
        st.session_state.pop("verdicts", None)


try:
    saved = samples.list()
except StoreError as err:
    st.error(str(err))
    common.stop(notices)

with st.expander("Export or import (.npz)", expanded="import_result" in st.session_state):
    st.download_button("Export my set (.npz)", samples.export_npz, file_name="my-handwriting.npz",
                       mime="application/octet-stream", disabled=not saved)
    st.file_uploader("Import a set (.npz with 'images' N x 28 x 28 and 'labels' 0-9)", type=["npz"],
                     key="import_npz", max_upload_size=5)
    st.button("Import", on_click=import_set)
    if "import_result" in st.session_state:
        kind, message = st.session_state.pop("import_result")
        (st.error if kind == "error" else st.success)(message)

if not saved:
    st.info("No samples yet. On the Predict page, draw or photograph a digit, correct its label if needed, "
            "and press 'Save to my handwriting set'.")
    common.stop(notices)

counts = {digit: sum(sample.label == digit for sample in saved) for digit in range(10)}
st.caption(f"{len(saved):,} samples · " + " · ".join(f"{digit}: {n}" for digit, n in counts.items()))
shown = st.segmented_control("Show", ["all", *range(10)], default="all", key="sample_filter", required=True)
visible = [sample for sample in saved if shown == "all" or sample.label == shown]
for start in range(0, len(visible), COLUMNS):
    cells = st.columns(COLUMNS)
    for cell, sample in zip(cells, visible[start:start + COLUMNS]):
        cell.image(enlarge(sample.digit28, 2), caption=f"#{sample.id}: {sample.label}")
delete = st.multiselect("Delete samples", [sample.id for sample in visible], format_func=lambda i: f"#{i}")
if delete and st.button(f"Delete {len(delete)} sample(s)", type="primary"):
    for sample_id in delete:
        samples.delete(sample_id)
    st.session_state.pop("verdicts", None)  # judged on a set that no longer exists
    st.rerun()

st.subheader("Judge the models on my handwriting")
if st.button("Evaluate every model", icon=":material/fact_check:"):
    with st.spinner(f"Reading {len(saved):,} samples with every model..."):
        st.session_state["verdicts"] = evaluate_all(lab.store, saved)
verdicts = st.session_state.get("verdicts")
if verdicts:
    st.dataframe([{"model": verdict.model, "accuracy": percent(verdict.accuracy),
                   "wrong": NONE if verdict.error else f"{len(verdict.misses):,}", "of": verdict.n,
                   "error": verdict.error or ""} for verdict in verdicts], hide_index=True, width="stretch")
    by_label = {verdict.model: verdict for verdict in verdicts if verdict.error is None}
    chosen = st.selectbox("Which samples does this model get wrong?", list(by_label))
    misses = by_label[chosen].misses if chosen else ()
    if chosen and not misses:
        st.success(f"{chosen} reads every sample correctly.")
    pictures = {sample.id: sample for sample in saved}
    for start in range(0, len(misses), COLUMNS):
        cells = st.columns(COLUMNS)
        for cell, miss in zip(cells, misses[start:start + COLUMNS]):
            if miss.sample_id in pictures:
                cell.image(enlarge(pictures[miss.sample_id].digit28, 2),
                           caption=f"#{miss.sample_id}: {miss.label} read as {miss.predicted} "
                                   f"({miss.confidence:.0%})")
common.end_page(notices)
