"""My handwriting: the digits a user saved, browsed as a grid, exported, imported, and every model judged on them."""

import streamlit as st

from mnist_core.db import StoreError
from mnist_core.judge import evaluate_all
from mnist_core.reading import enlarge
from mnist_core.report import NONE, percent
from mnist_core.samples import Sample, SampleError, SampleStore
from mnist_core.words import plural
from ui import common

COLUMNS = 10
PAGE = 100  # samples drawn at once: every image is an element the server sends and the browser draws

notices = common.begin_page()
st.title("My handwriting")
st.write("Digits you saved from the Predict page (drawn or photographed), each with its true label: "
         "a test set of your own to judge every model on.")
lab = common.get_lab()
if lab is None:
    common.stop(notices)
samples = SampleStore(lab.store, common.visitor(lab))


def grid(pictures: list[tuple[Sample, str]]) -> None:
    """(sample, caption) pairs as rows of COLUMNS images."""
    for start in range(0, len(pictures), COLUMNS):
        for cell, (sample, caption) in zip(st.columns(COLUMNS), pictures[start:start + COLUMNS]):
            cell.image(enlarge(sample.digit28, 2), caption=caption)


def import_set() -> None:
    upload = st.session_state.get("import_npz")
    if upload is None:  # none chosen, or a big file still uploading
        st.session_state["import_result"] = ("error", "Not imported: choose a .npz file first, and wait until "
                                                      "it shows as uploaded.")
        return
    try:
        imported = samples.import_npz(upload.getvalue())
    except (SampleError, StoreError) as err:
        st.session_state["import_result"] = ("error", f"Not imported: {err}")
    else:
        skipped = f"; skipped {plural(imported.already_held, 'sample')} your set already holds" \
            if imported.already_held else ""
        st.session_state["import_result"] = ("success", f"Imported {plural(len(imported.ids), 'sample')}{skipped}.")
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
                     key="import_npz", max_upload_size=common.UPLOAD_CEILING_MB)
    st.button("Import", on_click=import_set)
    if "import_result" in st.session_state:
        kind, message = st.session_state.pop("import_result")
        (st.error if kind == "error" else st.success)(message)

if not saved:
    st.info("No samples yet. On the Predict page, draw or photograph a digit, correct its label if needed, "
            "and press 'Save to my handwriting set'.")
    common.stop(notices)

counts = {digit: sum(sample.label == digit for sample in saved) for digit in range(10)}
st.caption(f"{plural(len(saved), 'sample')} · " + " · ".join(f"{digit}: {n}" for digit, n in counts.items()))
shown = st.segmented_control("Show", ["all", *range(10)], default="all", key="sample_filter", required=True)
visible = [sample for sample in saved if shown == "all" or sample.label == shown]
pages, page = -(-len(visible) // PAGE), 1
if pages > 1:  # one page number per filter; a number a delete took out of range goes back to 1
    page = st.number_input(f"Page (of {pages}, {PAGE} samples each)", 1, pages, key=f"sample_page_{shown}")
on_page = visible[(page - 1) * PAGE:page * PAGE]
grid([(sample, f"#{sample.id}: {sample.label}") for sample in on_page])
delete = st.multiselect("Delete samples", [sample.id for sample in on_page], format_func=lambda i: f"#{i}")
if delete and st.button(f"Delete {plural(len(delete), 'sample')}", type="primary"):
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
    misses = sorted(by_label[chosen].misses, key=lambda miss: -miss.confidence) if chosen else []
    if chosen and not misses:
        st.success(f"{common.plain(chosen)} reads every sample correctly.")
    if len(misses) > PAGE:
        st.caption(f"The {PAGE} most confident of its {len(misses):,} misreadings:")
    by_id = {sample.id: sample for sample in saved}
    grid([(by_id[miss.sample_id], f"#{miss.sample_id}: {miss.label} read as {miss.predicted} ({miss.confidence:.0%})")
          for miss in misses[:PAGE] if miss.sample_id in by_id])
common.end_page(notices)
