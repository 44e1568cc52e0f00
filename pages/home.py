"""Home: what the lab is, the current architecture against its budget, the best model so far, where to go."""

import streamlit as st

from mnist_core import config
from mnist_core.budget import summarize
from mnist_core.evidence import accuracy_text
from mnist_core.catalogue import available_models, best_model, bundled_model
from mnist_core.db import StoreError
from ui import common

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
st.page_link("pages/architecture.py", label="Architecture: design the network under the budget")
st.page_link("pages/train.py", label="Train: watch it learn, live")
st.page_link("pages/predict.py", label="Predict: draw or photograph a digit and see what the model sees")
st.page_link("pages/runs.py", label="Runs: compare, download, reload or delete past runs")
st.page_link("pages/studies.py", label="Studies: measure what each BatchNorm and Dropout buys")
st.page_link("pages/handwriting.py", label="My handwriting: your own digits, to judge every model on")
st.page_link("pages/frontier.py", label="Frontier: how small can it go? The best networks under 15K to 1K params")
if config.teacher_passcode():  # a board needs a class
    st.page_link("pages/board.py", label="Class board: each student's best run, who trains now, and the queue")
common.end_page(notices)
