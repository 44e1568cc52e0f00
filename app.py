"""MNIST Budget Lab: home page and navigation. Run with `streamlit run app.py`."""

from pathlib import Path

import streamlit as st

from mnist_core.budget import summarize
from mnist_core.evidence import accuracy_text
from mnist_core.catalogue import available_models, best_model, bundled_model
from mnist_core.store import StoreError
from pages import common

# Served by this server: a Material icon as the tab's icon is fetched from fonts.gstatic.com, offline it fails.
ICON = Path(__file__).parent / "assets" / "icon.png"
st.set_page_config(page_title="MNIST Budget Lab", page_icon=str(ICON), layout="wide")


def home() -> None:
    notices = common.begin_page()
    st.title("MNIST Budget Lab")
    st.write("Design a tiny convolutional network for handwritten digits under a hard parameter budget, "
             "train it while you watch it learn, and test it on digits you draw. "
             "Every BatchNorm, Dropout and filter you toggle shows its cost in parameters at once.")
    arch, budget = common.current_arch(), common.current_budget()
    verdict = budget.verdict(summarize(arch))
    left, right = st.columns(2)
    left.metric(f"Current architecture ({common.plain(arch.name)}), {budget.counting} params", f"{verdict.counted:,}",
                delta=f"{verdict.spare:,} to spare" if verdict.within else verdict.short,
                delta_color="normal" if verdict.within else "inverse")
    lab = common.get_lab()
    choices = [bundled_model()]
    if lab is not None:
        try:
            choices = available_models(lab.store)
        except StoreError as err:
            st.error(str(err))
    best = best_model(choices)
    right.metric(f"Best model so far: {common.plain(best.title)}", accuracy_text(best.test_accuracy))
    right.caption(best.description)
    st.subheader("Where to go")
    st.page_link(ARCHITECTURE, label="Architecture: design the network under the budget")
    st.page_link(TRAIN, label="Train: watch it learn, live")
    st.page_link(PREDICT, label="Predict: draw or photograph a digit and see what the model sees")
    st.page_link(RUNS, label="Runs: compare, download, reload or delete past runs")
    st.page_link(STUDIES, label="Studies: measure what each BatchNorm and Dropout buys")
    st.page_link(HANDWRITING, label="My handwriting: your own digits, to judge every model on")
    common.end_page(notices)


HOME = st.Page(home, title="Home", icon=":material/home:", default=True)
ARCHITECTURE = st.Page("pages/architecture.py", title="Architecture", icon=":material/account_tree:")
TRAIN = st.Page("pages/train.py", title="Train", icon=":material/monitoring:")
PREDICT = st.Page("pages/predict.py", title="Predict", icon=":material/draw:")
RUNS = st.Page("pages/runs.py", title="Runs", icon=":material/history:")
STUDIES = st.Page("pages/studies.py", title="Studies", icon=":material/science:")
HANDWRITING = st.Page("pages/handwriting.py", title="My handwriting", icon=":material/collections:")

st.navigation([HOME, ARCHITECTURE, TRAIN, PREDICT, RUNS, STUDIES, HANDWRITING]).run()
