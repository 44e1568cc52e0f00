"""Train: the notebook's recipe, Start/Stop, and a live chart polled from the run store."""

import streamlit as st

from mnist_core.budget import summarize
from mnist_core.charts import training_figure
from mnist_core.store import StoreError
from mnist_core.train import Recipe
from pages import common

QUICK = dict(epochs=2, train_subset=10_000, bn_momentum=0.9)  # ~40 s on 2 cores: a classroom demo
WATCH = "watch_run"

notices = common.begin_page()
arch, budget = common.current_arch(), common.current_budget()
summary = summarize(arch)
verdict = budget.verdict(summary)
lab = common.get_lab()

st.title("Train")
st.write(f"**{arch.name}**: {summary.total:,} total / {summary.trainable:,} trainable params. {verdict.text}.")
if lab is None:
    common.stop(notices)
lab.ensure_worker()  # warm up TensorFlow in the worker while the user reads the recipe

with st.form("recipe"):
    quick = st.toggle("Quick run: 10,000 training images, 2 epochs (under a minute)", value=False,
                      help="BatchNorm momentum 0.9 in quick runs, so its statistics settle in few steps.")
    cols = st.columns(5)
    epochs = cols[0].number_input("Epochs", 1, 200, 20)
    batch_size = cols[1].number_input("Batch size", 8, 4096, 128)
    learning_rate = cols[2].number_input("Adam learning rate", 0.0001, 0.1, 0.003, step=0.0005, format="%.4f")
    lr_decay = cols[3].number_input("LR decay", 0.0, 10.0, 0.319, step=0.01, format="%.3f",
                                    help="lr = rate / (1 + decay x epoch)")
    seed = cols[4].number_input("Seed", 0, 2**31 - 1, 0)
    confirmed = True
    if not verdict.within:
        confirmed = st.checkbox(f"Train anyway: this network is {verdict.over_by:,} params over the "
                                f"{budget.limit:,} budget")
    start = st.form_submit_button("Start training", type="primary")

if start:
    if not confirmed:
        st.error(f"Over budget by {verdict.over_by:,} params: tick 'Train anyway' to train it regardless.")
    else:
        chosen = dict(epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
                      lr_decay=float(lr_decay), seed=int(seed))
        recipe = Recipe(**{**chosen, **(QUICK if quick else {})})
        try:
            submitted = lab.submit(arch, recipe)
        except (StoreError, ValueError) as err:
            st.error(f"Training not started: {err}")
        else:
            st.session_state[WATCH] = submitted.run_id
            if submitted.ahead:
                st.info(f"Run {submitted.run_id} is queued: {submitted.ahead} run(s) ahead of it train first "
                        f"(one training at a time keeps this machine responsive).")


@st.fragment(run_every=1.0)
def live_run() -> None:
    """Re-drawn every second from the store, so it survives reruns, page switches and refreshes."""
    try:
        active = lab.active()
        run_id = st.session_state.get(WATCH) or (active[-1].id if active else None)
        run = lab.store.get(run_id) if run_id else next(iter(lab.store.list()), None)
        if run is None:
            st.info("No training yet. Press Start to train the current architecture.")
            return
        events = lab.store.events(run.id)
    except StoreError as err:
        st.error(str(err))
        return
    recipe = Recipe.from_dict(run.recipe)
    st.subheader(f"Run {run.id}: {run.name} · {run.status}")
    if run.status == "queued":
        ahead = [str(other.id) for other in active if other.id < run.id]
        st.info(f"Queued behind run(s) {', '.join(ahead)}; it starts when they finish." if ahead else
                "Waiting for the training worker (it loads TensorFlow once, then stays warm)...")
    last = events[-1] if events else None
    if run.status in ("queued", "running"):
        done = last.elapsed / (last.elapsed + last.eta) if last and last.eta is not None else 0.0
        label = (f"Epoch {int(last.epoch - 1e-9) + 1}/{recipe.epochs}, batch {last.batch} · "
                 f"ETA {last.eta:.0f}s" if last else "Starting (loading data and compiling the model)...")
        st.progress(min(done, 1.0), text=label)
        if st.button("Stop", key=f"stop_{run.id}"):
            lab.stop(run.id)
            st.toast(f"Stopping run {run.id}...")
    if events:
        st.plotly_chart(training_figure(events, recipe.epochs), width="stretch", key=f"chart_{run.id}")
    if run.finished:
        _final(run)


def _final(run) -> None:
    if run.status == "failed":
        st.error(f"Run {run.id} failed: {run.error}")
        return
    if run.status == "interrupted":
        st.warning(f"Run {run.id} was interrupted: {run.error} Its history so far is kept.")
    cols = st.columns(3)
    accuracy = f"{run.test_accuracy:.2%}" if run.test_accuracy is not None else "n/a"
    cols[0].metric("Final test accuracy" if run.status == "completed" else "Test accuracy (last full epoch)",
                   accuracy)
    cols[1].metric("Duration", f"{run.duration or 0:.0f} s")
    cols[2].metric("Params", f"{run.total_params:,}")
    if run.status in ("completed", "stopped") and lab.store.model_path(run.id).exists():
        st.page_link("pages/predict.py", label=f"Try run {run.id}'s model on the Predict page →",
                     icon=":material/draw:")


live_run()
common.end_page(notices)
