"""Class board: each student's best under-budget model, who trains now, the queue with times; the teacher's
switches (pause the queue, runs per student, stop a run, clear a student's runs)."""

import streamlit as st

from mnist_core.classroom import MAX_RUNS_PER_STUDENT, ClassSettings, NotAllowed, by_study, queue_order
from mnist_core.db import StoreError
from mnist_core.jobs import from_now
from mnist_core.report import leaderboard
from mnist_core.words import plural
from ui import common

notices = common.begin_page()
st.title("Class board")
lab = common.get_lab()
if lab is None:
    common.stop(notices)
if not lab.in_class:
    st.info("No class is set up on this server: start it with MNIST_LAB_TEACHER_PASSCODE set (see the README) "
            "and every browser becomes a student with runs of their own.")
    common.stop(notices)
me = common.visitor(lab)
budget = common.current_budget()


def act(action, *args) -> None:
    """A teacher's button: the Lab refuses anyone else; what it says is shown once."""
    try:
        said = action(*args, me)
    except (NotAllowed, StoreError, ValueError) as err:
        common.notify(str(err))
    else:
        if isinstance(said, tuple):
            common.notify(f"{said[0]} runs stopped and {said[1]} deleted.")


if me.teacher:
    settings = lab.settings()
    with st.container(horizontal=True, vertical_alignment="bottom"):
        st.button("Resume the queue" if settings.paused else "Pause the queue", type="primary",
                  on_click=act, args=(lab.change_settings, ClassSettings(not settings.paused,
                                                                         settings.runs_per_student)))
        cap = st.number_input("Runs per student", 1, MAX_RUNS_PER_STUDENT, settings.runs_per_student, width=160,
                              help="Queued or training at once; a study counts as one")
        if cap != settings.runs_per_student:
            act(lab.change_settings, ClassSettings(settings.paused, int(cap)))


@st.fragment(run_every=3.0)
def board() -> None:
    """Re-drawn every 3 s from the store: the ranking, who trains, the queue."""
    try:
        active, runs, names = lab.active(), lab.store.list(("completed",)), lab.store.roster.names()
        times, progress = lab.timetable(active), lab.store.progress_counts()
    except StoreError as err:
        st.error(str(err))
        return
    if lab.settings().paused:
        st.warning("The queue is paused: runs training go on, queued runs wait for the teacher.")
    st.subheader(f"Best under {budget.limit:,} {budget.counting} params")
    ranking = leaderboard(runs, budget, names)
    if ranking:
        st.dataframe(ranking, hide_index=True, width="stretch",
                     column_order=["place", "student", "test accuracy", "params", "epochs", "run", "recipe"],
                     column_config={"place": st.column_config.NumberColumn(width=50),
                                    "params": st.column_config.NumberColumn(format="localized", width=70),
                                    "epochs": st.column_config.NumberColumn(width=60),
                                    "run": st.column_config.NumberColumn(width=50)})
    else:
        st.info("No completed run under the budget yet.")
    st.subheader("Training now")
    running = [run for run in active if run.status == "running"]
    if not running:
        st.caption("Nobody.")
    for run, _ in by_study(running):
        line(run, names, "", f" · epoch {progress.get(run.id, (0, 0))[1] + 1} of {run.recipe.get('epochs')}")
    st.subheader("Queue")
    waiting = queue_order(active)
    if not waiting:
        st.caption("Empty.")
    for place, (run, count) in enumerate(by_study(waiting), 1):  # a study is one line, at its next run's place
        start = times.get(run.id, (None, None))[0]  # none while the queue is paused
        line(run, names, f"{place}. ", (f" and {plural(count - 1, 'more run')} of its study" if count > 1 else "")
             + (" · waits for the teacher" if start is None else
                f" · starts {from_now(start)}"))


def line(run, names, before: str, after: str = "") -> None:
    """One run of the board (or a study, by its next run): whose, which, and the teacher's Stop beside it."""
    what = f"run {run.id}" if run.study_id is None else f"study {run.study_id}: run {run.id}"
    with st.container(horizontal=True, vertical_alignment="center"):
        st.text(f"{before}{names.get(run.owner, 'the lab')}: {what}{after}")  # names shown as typed
        if me.teacher:
            stop = (lab.stop, run.id) if run.study_id is None else (lab.stop_study, run.study_id)
            st.button("Stop" if run.study_id is None else "Stop the whole study", key=f"board_stop_{run.id}",
                      on_click=act, args=stop, help=f"Stop {what.split(':')[0]}")


board()
if me.teacher:
    try:
        names, owners = lab.store.roster.names(), {run.owner for run in lab.store.list()}
    except StoreError as err:
        st.error(str(err))
        names, owners = {}, set()
    students = {owner: name for owner, name in names.items() if owner in owners}  # those with runs to clear
    if students:
        with st.expander("Clear a student's runs"):
            owner = st.selectbox("Student", list(students), format_func=students.get)
            st.button("Stop and delete their runs", on_click=act, args=(lab.clear_student, owner))
else:
    st.caption("The teacher can pause the queue and stop runs from here.")
common.end_page(notices)
