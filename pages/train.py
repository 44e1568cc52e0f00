"""Train: the recipe, Start, every active run with its own Stop, and a live chart polled from the store."""

import streamlit as st

from mnist_core.budget import summarize
from mnist_core.catalogue import usable
from mnist_core.classroom import Duplicate, NotAllowed, queue_order
from mnist_core.cost import check_cost, estimate_words
from mnist_core.db import StoreError
from mnist_core.evidence import accuracy_text, did_not_learn, did_not_learn_sentence
from mnist_core.jobs import LIVE_SECONDS, from_now, watch_seconds
from mnist_core.links import parse_run_id
from mnist_core.recipe import ABOUT, BEST_MEASURED, FIELD, RECIPES, Recipe, subset_field, unused_fields
from mnist_core.report import epochs_text, progress_text, recipe_text, unsettled_batchnorm
from mnist_core.spec import PRESETS
from mnist_core.words import plural
from ui import common

WATCH = "watch_run"
WATCH_PARAM = "run"
BEST_PRESET = BEST_MEASURED.preset
BEST_CLAIM = (f"Best's {accuracy_text(BEST_MEASURED.mean)} (mean of {plural(BEST_MEASURED.seeds, 'seed')}) "
              f"was measured on the {BEST_PRESET}")
RECIPE_CHOICES = {"quick": "Quick run", "fast": "Fast", "best": "Best", "notebook": "Notebook"}  # the link shows these

# The recipe's fields (declared in mnist_core.recipe), three a row (four short ones) so every value shows whole
# at 1024 px.
FIELD_ROWS = [("epochs", "train_subset", "validation"), ("batch_size", "seed", "optimizer"),
              ("schedule", "learning_rate", "warmup"), ("lr_decay", "weight_decay", "bn_momentum"),
              ("label_smoothing", "rotate", "shift", "zoom")]


LIVE_HEIGHT = 440  # px: the live chart's first points show on a 1024x768 projector right after a click
STARTED = "started_runs"  # the runs this tab started: one of them in training stays in front
STOPPED_HERE = "stopped_in_front"  # the run this tab stopped from the front: it stays there, saying so
CLASSMATES_LISTED = 5  # a student's Train page names the next few classmates' runs; the Class board lists all
PACE = "live_pace"  # seconds between the live view's redraws, as `watch_seconds` last said


def _show_quick_recipe() -> None:
    # The recipe beside the button and the caption then describe the run Quick run starts, not another one.
    st.session_state["recipe"] = "quick"


def recipe_from(values: dict) -> Recipe:
    """The recipe the fields describe; the fields the schedule and optimizer make irrelevant keep their defaults."""
    used = {field: value for field, value in values.items() if field not in unused_fields(values)}
    return Recipe(**{**used, "train_subset": subset_field(values["train_subset"])})


def length_text(recipe: Recipe) -> str:
    """How long a recipe trains, e.g. '5 epochs on 60,000 images'."""
    return f"{plural(recipe.epochs, 'epoch')} on {plural(recipe.images, 'image')}"


def recipe_caption(recipe: Recipe) -> str:
    """The recipe in one caption: its length, schedule, optimizer and what augmentation means."""
    return f"{length_text(recipe)} · {recipe.describe()}." + (
        " Augmentation moves training images only: it adds no parameters and is off when the model reads a digit."
        if recipe.augments else "")


def submit(recipe: Recipe) -> None:
    """Queue a run of the current architecture and watch it; a refusal is said where the buttons are. A Start
    of a run already queued or training (a double click, a second tab) watches that run instead."""
    try:
        run_id = lab.submit(arch, recipe, visitor=me).run_id
    except Duplicate as err:
        st.info(str(err))
        run_id = err.run_id
    except (StoreError, ValueError) as err:
        st.error(f"Training not started: {err}")
        return
    st.session_state[WATCH] = run_id
    st.session_state.setdefault(STARTED, []).append(run_id)
    st.query_params[WATCH_PARAM] = str(run_id)  # a reload keeps watching this run


notices = common.begin_page()
arch, budget = common.current_arch(), common.current_budget()
summary = summarize(arch)
verdict = budget.verdict(summary)
lab = common.get_lab()
me = common.visitor(lab) if lab else None

st.title("Train")
st.write(f"**{common.plain(arch.name)}**: {summary.total:,} total / {summary.trainable:,} trainable params. {verdict.text}.")
if lab is None:
    common.stop(notices)
lab.status()  # warms the executor: TensorFlow loads while the user reads the recipe

confirmed = True
if not verdict.within:
    confirmed = st.checkbox(f"Train anyway: this network is {verdict.over_text}")
# The buttons, then the live view, then the recipe's fields: what a class watches is where the eye is after a click.
with st.container(horizontal=True, vertical_alignment="bottom"):
    quick_start = st.button("Quick run", type="primary", icon=":material/bolt:", on_click=_show_quick_recipe,
                            help=f"For a demo: train this network at once with the Quick run recipe, "
                                 f"{length_text(RECIPES['quick'])}, whichever recipe is chosen beside it")
    recipe_name = st.segmented_control(
        "Recipe", list(RECIPE_CHOICES), format_func=RECIPE_CHOICES.get, required=True, default="notebook",
        key="recipe", persist_state="session", bind="query-params",  # a reload or a shared link keeps the recipe
        help=" ".join(f"{label}: {ABOUT[name]}." for name, label in RECIPE_CHOICES.items()) + f" {BEST_CLAIM}.")
    start = st.button("Start training")
caption = st.empty()  # filled once the fields below are read, so it says what Start would train
if recipe_name == "best" and arch.to_code() != PRESETS[BEST_PRESET].to_code():
    st.info(f"{BEST_CLAIM} preset; this page trains "
            f"{common.plain(arch.name)}.")
    st.button(f"Train {BEST_PRESET} instead", on_click=common.set_arch,
              args=(PRESETS[BEST_PRESET], f"Loaded preset {BEST_PRESET}"))
feedback = st.container()
live = st.container()
if WATCH not in st.session_state and WATCH_PARAM in st.query_params:
    linked = parse_run_id(st.query_params.get(WATCH_PARAM))
    try:
        missing = linked is not None and lab.store.get(linked) is None
    except StoreError:
        missing = False  # the live view below says what is wrong with the store
    if linked is None or missing:  # the link's own text is never shown: it may be markdown
        feedback.info(("The link's run is not a run number" if linked is None else f"There is no run {linked} "
                       f"(deleted, or from another server)") + ": this page shows the newest run instead.")

# No form: a change reruns the page, so fields a choice makes irrelevant are disabled at once; only the
# buttons start a run. Each recipe's fields have their own keys, so picking one fills in its values and
# keeps your edits to it; a page switch or a reload of the page keeps what was typed.
shown = RECIPES[recipe_name]
quick = recipe_name == "quick"
values = {}
with st.expander("Recipe fields: epochs, images, learning rate, augmentation", key="recipe_fields"):
    for row in FIELD_ROWS:
        for column, field in zip(st.columns(len(row)), map(FIELD.get, row)):
            options = dict(key=f"{field.name}_{recipe_name}", help=field.help, persist_state="session")
            shown_value = shown.images if field.name == "train_subset" else getattr(shown, field.name)
            if field.kind is str:  # a choice
                values[field.name] = column.selectbox(field.label, field.low, field.low.index(shown_value), **options)
            else:
                # Quick-run epochs and images are locked: they are what makes it quick.
                locked = quick and field.name in ("epochs", "train_subset")
                values[field.name] = column.number_input(
                    field.label, field.smallest, field.high, field.kind(shown_value), step=field.step,
                    format=field.format, disabled=locked or field.name in unused_fields(values), **options)
    switch = FIELD["recalibrate_bn"]
    values[switch.name] = st.checkbox(switch.label, shown.recalibrate_bn, key=f"{switch.name}_{recipe_name}",
                                      persist_state="session", help=switch.help)
try:
    edited, problem = recipe_from(values), None
except ValueError as err:
    edited, problem = None, str(err)
if edited:
    cost = lab.estimate(arch, edited)
    caption.caption(f"{recipe_caption(edited)} Takes {cost.time_text} here, {cost.memory_text} of training memory.")
    try:
        check_cost(cost)
    except ValueError as err:  # over a cap, or a cap's setting the server cannot read (Start says the same)
        st.warning(f"Start would be refused: {err}")
else:
    caption.caption(f"Start cannot train these fields: {problem}")

with feedback:
    if (start or quick_start) and not confirmed:
        st.error(f"This network is {verdict.over_text}: tick 'Train anyway' to train it regardless.")
    elif quick_start:
        submit(RECIPES["quick"])
    elif start and edited is None:
        st.error(f"Training not started: {problem}")
    elif start:
        submit(edited)


def live_runs() -> None:
    """Re-drawn from the store every second or few (`watch_seconds`), so it survives reruns, page switches and
    refreshes."""
    try:
        active = lab.active()  # a worker that died while runs wait is replaced here, not only on a full rerun
        focus = _focus(active)
        events = lab.store.events(focus.id) if focus else []
        times = lab.timetable(active)
        names = common.owner_names(lab)
    except StoreError as err:
        st.error(str(err))
        return
    pace = watch_seconds(focus, active, lab.slots)
    if pace != st.session_state.get(PACE, LIVE_SECONDS):  # it changed between two full runs of the page
        st.session_state[PACE] = pace
        st.rerun()  # the whole page: the live view is set up again at its new pace
    status = lab.status()
    if status.problem:
        st.error(status.problem)
    if lab.settings().paused:
        st.warning("The teacher paused the queue: runs already training go on, queued runs wait.")
    if focus is None:
        st.info("No training yet. Press Quick run or Start training to train the current architecture.")
    else:
        _run_view(focus, events, active, times, names)
    in_turn = [run for run in active if run.status == "running"] + queue_order(active)  # as workers take them
    others = [run for run in in_turn if focus is None or run.id != focus.id]
    others.sort(key=lambda run: run.owner != me.owner)  # your own first, then the class's in queue order
    if others:
        _active_runs(others, active, times, names)
    st.caption(f"Runs train {status.where}.")


def _focus(active):
    """The run the live view shows whole; raises StoreError."""
    watched_id = st.session_state.get(WATCH) or _run_in_link()
    watched = lab.store.get(watched_id) if watched_id else None
    runs = lab.store.list()  # newest first; a study's many runs give way to the newest run of one's own
    mine = [run for run in runs if run.owner == me.owner] if lab.in_class else runs  # a class: your own
    return _front_run(watched, active) or next((run for run in mine if run.study_id is None), None) \
        or next(iter(mine), None)


def _front_run(watched, active):
    """The run shown whole: the watched one while it trains or just after this tab stopped it there; else one in
    training that this tab started (a second Start queues behind it without hiding its chart); else the watched
    one once it ended (its result); else any in training (a reload of a queued run's link shows the live chart,
    the queued run listed below), in a class only your own: a student's queued run stays in front of a
    classmate's chart; else the watched one."""
    running = [run for run in active if run.status == "running" and (not lab.in_class or run.owner == me.owner)]
    started = st.session_state.get(STARTED, [])
    if watched and (watched.status == "running" or watched.id == st.session_state.get(STOPPED_HERE)):
        return watched
    mine = next((run for run in running if run.id in started), None)
    return mine or (watched if watched and watched.finished else None) or next(iter(running), None) or watched


def _run_in_link() -> int | None:
    """The run this tab started, from its link (`?run=12`), so a reload shows that run, not another tab's."""
    return parse_run_id(st.query_params.get(WATCH_PARAM))


def _active_runs(others, active, times, names) -> None:
    """One line per other running or queued run this visitor may stop, each with its own Stop, so none trains
    out of reach; a student's classmates' runs in one short list under them, the next few by name."""
    st.subheader("Also training or queued")
    mine = [run for run in others if me.may_manage(run.owner)]
    theirs = [run for run in others if not me.may_manage(run.owner)]
    for run in mine:
        line = st.columns([5, 1], vertical_alignment="center")
        line[0].write(f"Run {run.id}: {common.plain(run.name)}{_by(run, names)} · {run.status}")
        if run.status == "queued":
            line[0].caption(_waiting(run, active, times))
        _stop_button(line[1], run)
    if theirs:
        _classmates_runs(theirs, times, names)


def _classmates_runs(theirs, times, names) -> None:
    """Classmates' runs as one list (a class of 30 redraws this every second or few: one element, not a row
    of widgets a run); the rest counted, with the Class board for the whole queue."""
    lines = []
    for run in theirs[:CLASSMATES_LISTED]:
        start, _ = times.get(run.id, (None, None))
        when = f", should start {from_now(start)}" if run.status == "queued" and start is not None else ""
        lines.append(f"- Run {run.id}: {common.plain(run.name)}{_by(run, names)} · {run.status}{when}")
    more = len(theirs) - CLASSMATES_LISTED
    if more > 0:
        lines.append(f"- and {plural(more, 'more run')} of the class: the Class board lists the whole queue")
    st.markdown("\n".join(lines))
    if more > 0:
        st.page_link("pages/board.py", label="Class board: the whole queue →", icon=":material/leaderboard:")


def _by(run, names) -> str:
    """' by Curious Otter' in a class (a name shown literally), else nothing."""
    if not lab.in_class:
        return ""
    return " · yours" if run.owner == me.owner else f" by {common.plain(names.get(run.owner, 'the lab'))}"


def _waiting(run, active, times) -> str:
    """What a queued run waits for, and when it should start and finish."""
    start, finish = times.get(run.id, (None, None))
    # Its length, not its end: rounded to minutes, "start in about 3 min and be done in about 3 min" read as nonsense.
    when = "" if start is None else f" It should start {from_now(start)} and take {estimate_words(finish - start)}."
    return lab.waiting_text(run, active) + when


def _stop_button(where, run, front: bool = False) -> None:
    if me.may_manage(run.owner):
        where.button("Stop", key=f"stop_{run.id}", help=f"Stop run {run.id}", on_click=_stop, args=(run.id, front))


def _stop(run_id: int, front: bool) -> None:
    # A callback, so the page drawn right after the click already shows the run stopping or stopped.
    try:
        lab.stop(run_id, me)
    except (NotAllowed, StoreError) as err:
        common.notify(str(err))
        return
    if front:  # the stopped run stays in front, saying so, rather than the next one taking its place at once
        st.session_state[WATCH] = st.session_state[STOPPED_HERE] = run_id
        st.query_params[WATCH_PARAM] = str(run_id)


def _run_view(run, events, active, times, names) -> None:
    st.subheader(f"Run {run.id}: {common.plain(run.name)}{_by(run, names)} · {run.status}")
    try:
        recipe = Recipe.from_dict(run.recipe)
    except (TypeError, ValueError) as err:  # a store edited by hand, or written by another version
        st.error(f"Run {run.id}'s stored recipe cannot be read ({common.plain(err)}); the Runs page still lists it.")
        return
    st.caption(f"Recipe: {recipe_text(run.recipe)}; {length_text(recipe)}.")
    last = events[-1] if events else None
    if run.status == "queued":
        st.info(_waiting(run, active, times))
        _stop_button(st, run, front=True)
    elif run.status == "running":
        done = last.elapsed / (last.elapsed + last.eta) if last and last.eta is not None else 0.0
        line = st.columns([5, 1], vertical_alignment="bottom")
        line[0].progress(min(done, 1.0), text=progress_text(last, recipe) if last else
                         "Starting (loading data and compiling the model)...")
        _stop_button(line[1], run, front=True)
    if run.finished:
        _final(run, events, recipe)  # above its history: on a 768 px projector the chart runs off the screen
    if events:
        # No Plotly toolbar: it covered the learning rate's top tick, and a class only watches the chart.
        st.plotly_chart(common.live_figure(run.id, events, recipe, LIVE_HEIGHT),
                        width="stretch", key=f"chart_{run.id}", config={"displayModeBar": False})


def _final(run, events, recipe: Recipe) -> None:
    if run.status == "failed":
        st.error(f"Run {run.id} failed: {common.plain(run.error)}")
        return
    if run.status == "interrupted":
        st.warning(f"Run {run.id} was interrupted: {common.plain(run.error)} Its history so far is kept.")
    elif run.status == "completed" and run.stop_requested:
        st.info(f"Run {run.id} had finished training when the stop reached it, so it completed.")
    elif run.status == "stopped":
        st.info(f"Run {run.id} was stopped" + (f": {common.plain(run.error)}" if run.error else " on request.") + (
            "" if run.test_accuracy is not None else " It stopped before its first epoch ended, so it has no test "
                                                     "accuracy and no model to draw for: train at least one epoch."))
    if did_not_learn(run.test_accuracy):
        st.warning(did_not_learn_sentence(run.test_accuracy))
    why = unsettled_batchnorm(run, events)
    if why:
        st.warning(why)
    cols = st.columns(4)
    cols[0].metric("Final test accuracy" if run.status == "completed" else "Test accuracy",
                   accuracy_text(run.test_accuracy),
                   help=None if run.status == "completed" else "After the last full epoch; none if no epoch ended")
    cols[1].metric("Epochs", epochs_text(run, events))
    cols[2].metric("Duration", f"{run.duration or 0:.0f} s")
    cols[3].metric("Params", f"{run.total_params:,}")
    ends = [event for event in events if event.kind == "epoch"]
    if recipe.validation and ends:
        st.caption(f"The test digits were read once, after training; each epoch was scored on the "
                   f"{recipe.validation:,} validation images (last epoch: {accuracy_text(ends[-1].val_accuracy)}).")
    if usable(lab.store, run):
        st.page_link("pages/predict.py", label=f"Try run {run.id}'s model on the Predict page",
                     icon=":material/draw:", query_params={**st.query_params.to_dict(), "model": str(run.id)})


try:  # the pace for this run of the page, so a click's message is not lost to a rerun for a new pace
    shown_active = lab.active()
    st.session_state[PACE] = watch_seconds(_focus(shown_active), shown_active, lab.slots)
except StoreError:
    pass  # the live view says what is wrong with the store
with live:
    st.fragment(run_every=st.session_state.get(PACE, LIVE_SECONDS))(live_runs)()
common.end_page(notices)
