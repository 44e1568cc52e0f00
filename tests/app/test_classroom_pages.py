"""The pages in a class (a teacher passcode set): who you are, whose runs you may stop or delete, the
refusals' sentences, and the class board. Each AppTest is its own browser session, so two are two students.
Page states come from store rows; the real training path is covered by tests/unit/test_classroom.py and the
browser test tests/e2e/test_classroom.py."""

import argparse
import os
import re

import pytest

from mnist_core.budget import summarize
from mnist_core.classroom import ClassSettings, read_settings, write_settings
from mnist_core.jobs import Lab
from mnist_core.recipe import RECIPES
from mnist_core.runs import RunStore
from mnist_core.slots import open_slot
from mnist_core.spec import PRESETS
from tests.app.conftest import texts
from ui.common import plain

PASSCODE = "owl-42"
FINAL = PRESETS["seed-final"]


@pytest.fixture(autouse=True)
def a_class(monkeypatch):
    monkeypatch.setenv("MNIST_LAB_TEACHER_PASSCODE", PASSCODE)


def owner(at) -> str:
    return at.session_state["visitor_owner"]


def button(at, label):
    return next(b for b in at.button if b.label == label)


def add_run(store, owner_token, status="completed", accuracy=0.99, arch=FINAL, seed=0):
    """A run row of `owner_token`'s, finished as `status` (no training: the page reads only the row)."""
    summary = summarize(arch)
    run_id = store.create_run(arch.name, arch, {**RECIPES["quick"].to_dict(), "seed": seed}, summary.total,
                              summary.trainable, owner=owner_token)
    if status != "queued":
        store.claim_next(1)
        if status != "running":
            store.finish(run_id, status, test_accuracy=accuracy)
    return run_id


def test_a_student_gets_a_name_can_change_it_and_cannot_take_a_classmates(app, lab_home):
    ann, ben = app(), app()
    names = RunStore(lab_home).roster.names()
    assert set(names) == {owner(ann), owner(ben)} and owner(ann) != owner(ben)
    assert names[owner(ann)] in texts(ann.sidebar.text)
    ann.sidebar.text_input(key="new_name").set_value("**Ann** [x](http://evil)")  # a form: sent with its button
    button(ann, "Use this name").click().run()
    assert "**Ann** [x](http://evil)" in texts(ann.sidebar.text)  # shown as typed, never as markdown
    ben.sidebar.text_input(key="new_name").set_value("**ann** [X](http://evil)")  # a form: sent with its button
    button(ben, "Use this name").click().run()
    assert texts(ben.sidebar.error) == ["Someone in this class already has that name; pick another."]  # not echoed
    ben.sidebar.text_input(key="new_name").set_value("x" * 31)  # no widget limit: the core's own sentence shows
    button(ben, "Use this name").click().run()
    assert texts(ben.sidebar.error) == ["A name is at most 30 characters; this one has 31."]


def test_the_teacher_passcode_unlocks_teacher_mode_and_a_wrong_one_is_refused(app, lab_home):
    at = app("board")
    assert not [b for b in at.button if b.label == "Pause the queue"]
    at.sidebar.text_input(key="passcode").set_value("owl")  # a form: sent with its button
    button(at, "Unlock").click().run()
    assert texts(at.sidebar.error) == ["That is not the teacher passcode."]
    at.sidebar.text_input(key="passcode").set_value(PASSCODE)  # a form: sent with its button
    button(at, "Unlock").click().run()
    assert any(text.endswith("(teacher)") for text in texts(at.sidebar.text))
    button(at, "Pause the queue").click().run()
    assert read_settings(lab_home).paused
    assert "The queue is paused: runs training go on, queued runs wait for the teacher." in texts(at.warning)
    button(at, "Leave teacher mode").click().run()
    assert not [b for b in at.button if b.label == "Resume the queue"]


def test_a_student_may_stop_and_delete_only_their_own_runs(app, lab_home, idle_executor):
    ann, ben = app("runs"), app("runs")
    store = RunStore(lab_home)
    theirs = add_run(store, owner(ann), "queued")
    ben.run()
    ben.selectbox(key="runs_chosen").set_value(theirs).run()
    assert not [b for b in ben.button if b.label in ("Stop", "Yes, delete")]
    assert ben.dataframe[0].value["by"].tolist() == [store.roster.names()[owner(ann)]]
    ann.run()
    assert ann.dataframe[0].value["by"].tolist() == ["you"]
    button(ann, "Stop").click().run()
    assert store.get(theirs).status == "stopped"
    button(ann, "Yes, delete").click().run()
    assert store.list() == []


def test_the_train_page_refuses_a_duplicate_and_a_students_third_run_with_sentences(app, lab_home, idle_executor):
    at = app("train")
    store = RunStore(lab_home)
    lab = Lab(lab_home)
    lab.change_settings(ClassSettings(paused=True), lab.visitor(None, teacher=True))  # the runs stay queued
    button(at, "Quick run").click().run()
    first = at.session_state["watch_run"]
    button(at, "Quick run").click().run()
    assert f"This network with this recipe is already queued as run {first}; it was not queued twice." \
        in texts(at.info)
    assert at.session_state["watch_run"] == first and len(store.list()) == 1
    at.segmented_control(key="recipe").set_value("notebook").run()
    at.number_input(key="seed_notebook").set_value(1).run()
    button(at, "Start training").click().run()
    at.number_input(key="seed_notebook").set_value(2).run()
    button(at, "Start training").click().run()
    assert texts(at.error) == ["Training not started: You already have 2 runs or studies queued or training, the most "
                               "one student may have at once (2): wait for one to finish, or stop one."]
    assert len(store.list()) == 2
    assert "The teacher paused the queue: runs already training go on, queued runs wait." in texts(at.warning)


def test_a_students_study_over_the_cap_is_refused(app, lab_home, idle_executor):
    at = app("studies")
    at.number_input[0].set_value(5)  # a form: its fields count when it is submitted, in the same run
    at.checkbox[0].check()
    next(b for b in at.button if b.label == "Study this architecture").click().run()
    (error,) = texts(at.error)
    assert error == ("Study not started: this study would queue 95 runs, over the 24 a student's study may queue: "
                     "use fewer seeds, or leave the presets out.")
    assert RunStore(lab_home).list() == []


def test_the_board_ranks_each_students_best_final_accuracy_under_the_budget(app, lab_home, idle_executor):
    ann, ben = app(), app()
    store = RunStore(lab_home)
    names = store.roster.names()
    add_run(store, owner(ann), accuracy=0.985)
    add_run(store, owner(ann), accuracy=0.991, seed=1)
    add_run(store, owner(ben), accuracy=0.993)
    add_run(store, owner(ben), accuracy=0.999, arch=PRESETS["seed-first"], seed=2)  # 15,088 params: over budget
    add_run(store, owner(ben), "stopped", accuracy=0.9995, seed=3)
    write_settings(lab_home, ClassSettings(paused=True))  # the queue stays as it is while the board is read
    queued = add_run(store, owner(ann), "queued", seed=4)
    study = Lab(lab_home).submit_study(FINAL, RECIPES["quick"], visitor=Lab(lab_home).visitor(owner(ben)))
    board = app("board")
    ranking = board.dataframe[0].value
    assert ranking["student"].tolist() == [names[owner(ben)], names[owner(ann)]]
    assert ranking["test accuracy"].tolist() == ["99.30%", "99.10%"]
    first_of_study = store.study_runs(study)[0].id
    assert [text for text in texts(board.text) if text[:3] in ("1. ", "2. ", "3. ")] == [  # a study is one line
        f"1. {names[owner(ann)]}: run {queued} · waits for the teacher",
        f"2. {names[owner(ben)]}: study {study}: run {first_of_study} and 16 more runs of its study · waits for the "
        f"teacher"]
    write_settings(lab_home, ClassSettings())  # going on: each line says when it starts
    board.run()
    first, second = [text for text in texts(board.text) if text[:3] in ("1. ", "2. ", "3. ")]
    assert first == f"1. {names[owner(ann)]}: run {queued} · starts now"
    assert re.fullmatch(rf"2\. .+: study {study}: run {first_of_study} and 16 more runs of its study · starts "
                        r"(now|in about \d+ (s|min))", second), second


def test_a_students_own_run_stays_in_front_of_a_classmates_live_chart(app, lab_home):
    """Ben presses Quick run while Ann's run trains: his page shows his queued run in front, not her chart; a
    newcomer sees no run at all rather than a classmate's."""
    lab_home.mkdir(parents=True, exist_ok=True)
    lock = open_slot(argparse.Namespace(home=str(lab_home), slot=0))  # this process is the worker: nothing trains
    try:
        ann, ben = app("train"), app("train")
        store = RunStore(lab_home)
        theirs = add_run(store, owner(ann), "queued")
        assert store.claim_next(os.getpid()).id == theirs
        ann.run()
        assert ann.subheader[0].value == f"Run {theirs}: seed-final · yours · running"
        button(ben, "Quick run").click().run()
        mine = ben.session_state["watch_run"]
        assert ben.subheader[0].value == f"Run {mine}: seed-final · yours · queued"
        cat = app("train")
        assert "No training yet. Press Quick run or Start training to train the current architecture." in texts(cat.info)
    finally:
        lock.close()


def test_a_student_sees_their_own_runs_with_stop_and_the_next_classmates_runs_as_one_short_list(app, lab_home,
                                                                                                 idle_executor):
    """A class of 30 redraws the live view every second or few: a student's classmates' runs are one list of
    the next five to start, in the queue's turns (names shown literally), the rest counted; only the student's
    own run has a Stop. The teacher gets a Stop on every run."""
    ann, ben, cat = app("train"), app("train"), app("train")
    store = RunStore(lab_home)
    ben.sidebar.text_input(key="new_name").set_value("**Ben** [x](http://evil)")
    button(ben, "Use this name").click().run()
    bens = [add_run(store, owner(ben), "queued", seed=seed) for seed in range(6)]
    cats = add_run(store, owner(cat), "queued", seed=7)  # queued last, yet second in turn: Ben's first went before
    mine = add_run(store, owner(ann), "queued", seed=9)
    ann.run()
    assert ann.subheader[0].value == f"Run {mine}: seed-final · yours · queued"
    assert {b.help for b in ann.button if b.label == "Stop"} == {f"Stop run {mine}"}
    # Its start and its length: a rounded "done in about 3 min" beside "start in about 3 min" read as nonsense.
    assert any(re.search(r"It should start in about \d+ (s|min) and take about \d+ s\.$", text)
               for text in texts(ann.info)), texts(ann.info)
    [listed] = [text for text in texts(ann.markdown) if text.startswith("- Run ")]
    lines = listed.splitlines()
    assert [line.split(":")[0] for line in lines[:5]] == [f"- Run {run_id}" for run_id in
                                                          (bens[0], cats, *bens[1:4])]
    assert lines[0] == f"- Run {bens[0]}: seed-final by {plain('**Ben** [x](http://evil)')} · queued, should start now"
    assert lines[5] == "- and 2 more runs of the class: the Class board lists the whole queue"
    assert [link.proto.label for link in ann.get("page_link")] == ["Class board: the whole queue →"]
    teacher = app("train")
    teacher.sidebar.text_input(key="passcode").set_value(PASSCODE)
    button(teacher, "Unlock").click().run()
    teacher.run()
    every_run = {f"Stop run {run_id}" for run_id in (*bens, cats, mine)}
    assert {b.help for b in teacher.button if b.label == "Stop"} == every_run


def test_on_the_frontier_a_student_sees_their_own_runs_and_the_teacher_the_whole_class(app, lab_home,
                                                                                       idle_executor):
    import json

    ann, ben = app("frontier"), app("frontier")
    store = RunStore(lab_home)
    mine, theirs = add_run(store, owner(ann), accuracy=0.985), add_run(store, owner(ben), accuracy=0.975)

    def crosses(at) -> tuple[str, list[str]]:
        chart = json.loads(at.get("plotly_chart")[0].proto.spec)
        [runs] = [trace for trace in chart["data"] if trace.get("marker", {}).get("symbol") == "x"]
        return runs["name"], runs["text"]

    ann.run()
    assert crosses(ann) == ("your runs", [f"run {mine}: seed-final"])
    ben.sidebar.text_input(key="passcode").set_value(PASSCODE)  # a form: sent with its button
    button(ben, "Unlock").click().run()
    assert crosses(ben) == ("the class's runs", [f"run {theirs}: seed-final", f"run {mine}: seed-final"])
    assert any("the class's completed runs (crosses)" in text for text in texts(ben.caption))
