"""Train: the recipe, Start, every active run with its own Stop, and a live chart polled from the store."""

import streamlit as st

from mnist_core.budget import summarize
from mnist_core.charts import training_figure
from mnist_core.jobs import ahead_of
from mnist_core.report import epochs_text, progress_text
from mnist_core.store import StoreError
from mnist_core.train import QUICK_RUN, Recipe
from pages import common

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

quick = st.toggle(f"Quick run: {QUICK_RUN.train_subset:,} training images, {QUICK_RUN.epochs} epochs "
                  f"(about a minute)", key="quick_run", persist_state="session",
                  help="BatchNorm momentum 0.9 in quick runs, so its statistics settle in few steps.")
shown = QUICK_RUN if quick else Recipe()
with st.form("recipe", enter_to_submit=False):  # Enter confirms a field; only the button starts a run
    # Quick-run fields show the values the run will use and are locked; keys differ so they refill.
    mode = "quick" if quick else "full"
    first, second = st.columns(3), st.columns(4)  # three a row keep every value whole at 1024 px
    kept = dict(persist_state="session")  # a page switch or a reload of the page keeps what was typed
    epochs = first[0].number_input("Epochs", 1, 200, shown.epochs, disabled=quick, key=f"epochs_{mode}", **kept)
    images = first[1].number_input("Training images", 100, 60_000, shown.train_subset or 60_000, step=1_000,
                                   disabled=quick, key=f"images_{mode}", **kept)
    batch_size = first[2].number_input("Batch size", 8, 4096, shown.batch_size, key="batch_size", **kept)
    seed = second[0].number_input("Seed", 0, 2**31 - 1, shown.seed, key="seed", **kept)
    learning_rate = second[1].number_input("Learning rate", 0.0001, 0.1, shown.learning_rate, step=0.0005,
                                           format="%.4f", key="learning_rate", help="Adam's initial rate", **kept)
    lr_decay = second[2].number_input("LR decay", 0.0, 10.0, shown.lr_decay, step=0.01, format="%.3f",
                                      help="lr = rate / (1 + decay x epoch)", key="lr_decay", **kept)
    bn_momentum = second[3].number_input("BN momentum", 0.0, 0.999, shown.bn_momentum, step=0.01,
                                         format="%.3f", disabled=quick, key=f"momentum_{mode}",
                                         help="How fast BatchNorm's moving statistics follow the data", **kept)
    confirmed = True
    if not verdict.within:
        confirmed = st.checkbox(f"Train anyway: this network is {verdict.over_by:,} params over the "
                                f"{budget.limit:,} budget")
    start = st.form_submit_button("Start training", type="primary")

if start:
    if not confirmed:
        st.error(f"Over budget by {verdict.over_by:,} params: tick 'Train anyway' to train it regardless.")
    else:
        try:
            recipe = Recipe(epochs=int(epochs), batch_size=int(batch_size), learning_rate=float(learning_rate),
                            lr_decay=float(lr_decay), seed=int(seed), bn_momentum=float(bn_momentum),
                            train_subset=None if int(images) == 60_000 else int(images))
            st.session_state[WATCH] = lab.submit(arch, recipe).run_id
        except (StoreError, ValueError) as err:
            st.error(f"Training not started: {err}")


@st.fragment(run_every=1.0)
def live_runs() -> None:
    """Re-drawn every second from the store, so it survives reruns, page switches and refreshes."""
    try:
        if lab.needs_worker():
            lab.ensure_worker()  # a worker that died while runs wait is replaced here, not only on a full rerun
        active = lab.active()
        watched = lab.store.get(st.session_state[WATCH]) if WATCH in st.session_state else None
        focus = watched or next((run for run in active if run.status == "running"), None) \
            or next(iter(lab.store.list()), None)
        events = lab.store.events(focus.id) if focus else []
    except StoreError as err:
        st.error(str(err))
        return
    if lab.worker_error:
        st.error(f"The training worker cannot start: {lab.worker_error}")
    others = [run for run in active if focus is None or run.id != focus.id]
    if others:
        _active_runs(others)
    if focus is None:
        st.info("No training yet. Press Start to train the current architecture.")
        return
    _run_view(focus, events, active)


def _active_runs(others) -> None:
    """One line per other running or queued run, each with its own Stop, so none trains out of reach."""
    st.subheader("Also training or queued")
    for run in others:
        _stop_line(run, f"Run {run.id}: {run.name} · {run.status}")


def _stop_line(run, text: str) -> None:
    line = st.columns([5, 1], vertical_alignment="center")
    line[0].write(text)
    _stop_button(line[1], run)


def _stop_button(where, run) -> None:
    where.button("Stop", key=f"stop_{run.id}", help=f"Stop run {run.id}", on_click=_stop, args=(run.id,))


def _stop(run_id: int) -> None:
    # A callback, so the page drawn right after the click already shows the run stopping or stopped.
    lab.stop(run_id)


def _run_view(run, events, active) -> None:
    recipe = Recipe.from_dict(run.recipe)
    st.subheader(f"Run {run.id}: {run.name} · {run.status}")
    last = events[-1] if events else None
    if run.status == "queued":
        ahead = ahead_of(run, active)
        st.info(f"Run {run.id} is queued: {len(ahead)} run(s) ahead of it train first "
                f"(one training at a time keeps this machine responsive)." if ahead else
                "Waiting for the training worker (it loads TensorFlow once, then stays warm)...")
        _stop_button(st, run)
    elif run.status == "running":
        done = last.elapsed / (last.elapsed + last.eta) if last and last.eta is not None else 0.0
        st.progress(min(done, 1.0), text=progress_text(last, recipe.epochs) if last else
                    "Starting (loading data and compiling the model)...")
        _stop_button(st, run)
    if events:
        st.plotly_chart(training_figure(events, recipe.epochs), width="stretch", key=f"chart_{run.id}")
    if run.finished:
        _final(run, events)


def _final(run, events) -> None:
    if run.status == "failed":
        st.error(f"Run {run.id} failed: {run.error}")
        return
    if run.status == "interrupted":
        st.warning(f"Run {run.id} was interrupted: {run.error} Its history so far is kept.")
    elif run.status == "stopped":
        st.info(f"Run {run.id} was stopped: {run.error or 'at your request.'}")
    cols = st.columns(4)
    accuracy = f"{run.test_accuracy:.2%}" if run.test_accuracy is not None else "none"
    cols[0].metric("Final test accuracy" if run.status == "completed" else "Test accuracy", accuracy,
                   help=None if run.status == "completed" else "After the last full epoch; none if no epoch ended")
    cols[1].metric("Epochs", epochs_text(run, events))
    cols[2].metric("Duration", f"{run.duration or 0:.0f} s")
    cols[3].metric("Params", f"{run.total_params:,}")
    if run.status in ("completed", "stopped") and run.test_accuracy is not None \
            and lab.store.model_path(run.id).exists():
        st.page_link("pages/predict.py", label=f"Try run {run.id}'s model on the Predict page",
                     icon=":material/draw:", query_params={**st.query_params.to_dict(), "model": str(run.id)})


live_runs()
common.end_page(notices)
