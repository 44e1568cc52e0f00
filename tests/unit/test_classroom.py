"""A class on one server, in the core: owners, refusals, the round-robin queue, caps, the time limit, the
keeper that starts queued runs without a page, names, samples and the board's ranking."""

import json
from dataclasses import replace

import numpy as np
import pytest

from mnist_core.budget import Budget, summarize
from mnist_core.classroom import (LAB_USER, ClassSettings, Duplicate, NotAllowed, ShareExceeded, read_settings,
                                  teacher_mark, is_passcode, write_settings)
from mnist_core.cost import LimitError
from mnist_core.jobs import SOON_SECONDS, Lab, from_now, timetable
from mnist_core.recipe import QUICK_RUN, RECIPES, Recipe
from mnist_core.report import leaderboard
from mnist_core.runs import RunStore
from mnist_core.samples import SampleStore
from mnist_core.spec import PRESETS
from mnist_core.students import RosterError
from tests.conftest import wait_for

FINAL = PRESETS["seed-final"]
TINY = Recipe(epochs=1, train_subset=256, batch_size=64)


@pytest.fixture
def lab(lab_home, monkeypatch, idle_executor):
    """A class's Lab whose runs stay rows: the queue is paused and no worker is started."""
    monkeypatch.setenv("MNIST_LAB_TEACHER_PASSCODE", "owl-42")
    lab = Lab(lab_home)
    write_settings(lab_home, ClassSettings(paused=True))
    yield lab
    lab.shutdown()


def queue(lab, owner, seed, teacher=False):
    return lab.submit(FINAL, replace(TINY, seed=seed), visitor=lab.visitor(owner, teacher)).run_id


def test_without_a_class_everyone_is_the_lab_user_and_may_do_everything(lab_home):
    lab = Lab(lab_home)
    assert not lab.in_class and lab.visitor("anyone", teacher=False) is LAB_USER
    run_id = lab.submit(FINAL, TINY).run_id
    lab.stop(run_id, lab.visitor("someone else"))
    lab.delete(run_id, lab.visitor("someone else"))
    assert lab.store.list() == []


def test_only_the_owner_or_the_teacher_may_stop_or_delete_a_run_or_a_study(lab):
    ann, ben, teacher = lab.visitor("ann-token"), lab.visitor("ben-token"), lab.visitor("tea-token", teacher=True)
    run_id = queue(lab, "ann-token", 0)
    with pytest.raises(NotAllowed, match=f"Run {run_id} belongs to another student: only they or the teacher"):
        lab.stop(run_id, ben)
    with pytest.raises(NotAllowed):
        lab.delete(run_id, ben)
    assert lab.store.get(run_id).status == "queued"
    lab.stop(run_id, ann)
    lab.delete(run_id, teacher)
    assert lab.store.get(run_id) is None
    study_id = lab.submit_study(FINAL, TINY, visitor=ann)
    with pytest.raises(NotAllowed, match=f"Study {study_id} belongs to another student"):
        lab.stop_study(study_id, ben)
    assert len(lab.stop_study(study_id, teacher)) == 17
    with pytest.raises(NotAllowed, match="Only the teacher can clear"):
        lab.clear_student("ann-token", ben)
    assert lab.clear_student("ann-token", teacher) == (0, 17)


def test_an_identical_start_is_one_run_with_or_without_a_class(lab, lab_home, monkeypatch):
    first = queue(lab, "ann-token", 0)
    with pytest.raises(Duplicate, match=f"already queued as run {first}; it was not queued twice") as refused:
        queue(lab, "ann-token", 0)
    assert refused.value.run_id == first
    queue(lab, "ben-token", 0)  # a classmate's same network is their own run
    queue(lab, "ann-token", 1)  # another seed is another run
    assert len(lab.store.list()) == 3
    monkeypatch.delenv("MNIST_LAB_TEACHER_PASSCODE")
    alone = Lab(lab_home / "alone")
    alone.submit(FINAL, TINY)
    with pytest.raises(Duplicate):
        alone.submit(FINAL, TINY)


def test_a_student_has_at_most_their_share_of_the_queue_and_the_teacher_sets_it(lab, lab_home):
    queue(lab, "ann-token", 0)
    queue(lab, "ann-token", 1)
    with pytest.raises(ShareExceeded, match=r"You already have 2 runs or studies queued or training, the most one "
                                            r"student may have at once \(2\)"):
        queue(lab, "ann-token", 2)
    with pytest.raises(ShareExceeded):  # a study counts as one of the share
        lab.submit_study(FINAL, TINY, visitor=lab.visitor("ann-token"))
    for seed in range(3):
        queue(lab, "tea-token", seed, teacher=True)  # the teacher is not capped
    with pytest.raises(NotAllowed):
        lab.change_settings(ClassSettings(runs_per_student=3), lab.visitor("ann-token"))
    lab.change_settings(ClassSettings(paused=True, runs_per_student=3), lab.visitor("tea-token", teacher=True))
    queue(lab, "ann-token", 2)
    assert read_settings(lab_home) == ClassSettings(paused=True, runs_per_student=3)


def test_a_students_study_is_capped_at_24_runs_the_teachers_is_not(lab):
    with pytest.raises(LimitError, match="this study would queue 34 runs, over the 24 a student's study may queue"):
        lab.submit_study(FINAL, TINY, seeds=(0, 1), visitor=lab.visitor("ann-token"))
    assert lab.store.list() == []
    study_id = lab.submit_study(FINAL, TINY, seeds=(0, 1), visitor=lab.visitor("tea-token", teacher=True))
    assert len(lab.store.study_runs(study_id)) == 34


def test_the_queue_takes_turns_between_students(lab):
    """Ann queues two runs, then Ben one, then a study of Cat's: Ben's first goes before Ann's second;
    singles before study runs."""
    ann = [queue(lab, "ann-token", seed) for seed in (0, 1)]
    ben = queue(lab, "ben-token", 0)
    study = lab.submit_study(FINAL, TINY, visitor=lab.visitor("cat-token"))
    study_runs = [run.id for run in lab.store.study_runs(study)]
    write_settings(lab.home, ClassSettings())
    claimed = [lab.store.claim_next(1).id for _ in range(5)]
    assert claimed == [ann[0], ben, ann[1], *study_runs[:2]]
    write_settings(lab.home, ClassSettings(paused=True))
    assert lab.store.claim_next(1) is None  # paused: nothing new starts


def test_the_timetable_gives_each_queued_run_a_start_and_finish(lab, monkeypatch):
    from mnist_core import config

    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    ids = [queue(lab, owner, 0) for owner in ("a-token", "b-token", "c-token")]
    active = sorted(lab.store.list(("queued", "running")), key=lambda run: run.id)
    times = timetable(active, {ids[0]: 30.0, ids[1]: 60.0, ids[2]: 10.0}, slots=1)
    assert times == {ids[0]: (0.0, 30.0), ids[1]: (30.0, 90.0), ids[2]: (90.0, 100.0)}
    times = timetable(active, {ids[0]: 30.0, ids[1]: 60.0, ids[2]: 10.0}, slots=2)
    assert times == {ids[0]: (0.0, 30.0), ids[1]: (0.0, 60.0), ids[2]: (30.0, 40.0)}
    write_settings(lab.home, ClassSettings())  # running: the Lab's own estimates lay out the queue
    in_class = Lab(lab.home)
    assert in_class.slots == 2  # a class trains two runs at once on this machine's cores
    estimated = in_class.timetable(active)
    assert estimated[ids[0]][0] == estimated[ids[1]][0] == 0
    assert estimated[ids[2]][1] == pytest.approx(2 * estimated[ids[0]][1])
    write_settings(lab.home, ClassSettings(paused=True))


def test_a_run_behind_one_past_its_estimate_should_start_soon_not_in_a_made_up_5_s(lab, monkeypatch):
    """A running run that takes longer than estimated has no known end: the run behind it 'should start
    soon', and it finishes its own estimate after that."""
    from mnist_core import jobs

    first, second = queue(lab, "a-token", 0), queue(lab, "b-token", 0)
    write_settings(lab.home, ClassSettings())  # running: nobody can say when a paused queue goes on
    assert lab.store.claim_next(1).id == first
    started = lab.store.get(first).started_at
    monkeypatch.setattr(jobs.time, "time", lambda: started + 3600)  # an hour over its estimate
    active = sorted(lab.store.list(("queued", "running")), key=lambda run: run.id)
    start, finish = Lab(lab.home, max_workers=1).timetable(active)[second]
    assert start == SOON_SECONDS and from_now(start) == "soon"
    assert from_now(finish).startswith("in about") and finish > start
    assert [from_now(seconds) for seconds in (0.0, 40.0)] == ["now", "in about 40 s"]


def test_a_class_trains_two_runs_at_once_on_two_cores_and_one_alone_uses_them_all(monkeypatch):
    """30 Quick runs of a class finished 1.4x sooner on two one-core workers (docs/benchmarks.md); one person's
    run alone is soonest on every core. MNIST_LAB_MAX_WORKERS decides where it is set."""
    from mnist_core import config

    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    monkeypatch.delenv("MNIST_LAB_TEACHER_PASSCODE", raising=False)
    monkeypatch.delenv("MNIST_LAB_MAX_WORKERS", raising=False)
    assert config.max_workers() == 1
    monkeypatch.setenv("MNIST_LAB_TEACHER_PASSCODE", "owl-42")
    assert config.max_workers() == 2
    monkeypatch.setattr(config.os, "cpu_count", lambda: 1)
    assert config.max_workers() == 1
    monkeypatch.setenv("MNIST_LAB_MAX_WORKERS", "3")
    assert config.max_workers() == 3
    monkeypatch.setenv("MNIST_LAB_MAX_WORKERS", "many")
    assert config.max_workers() == 1


def test_a_queued_runs_words_say_how_many_runs_train_at_once(lab):
    """A class trains two at once: its queued runs once said 'one training at a time' under a footer saying
    'up to 2 at once'."""
    from mnist_core.executors import LocalExecutor

    first, second = queue(lab, "ann-token", 0), queue(lab, "ben-token", 0)
    run, ahead = lab.store.get(second), [lab.store.get(first)]
    for slots, words in ((1, "(one training at a time keeps this machine responsive)"),
                         (2, "(2 trainings at a time keep this machine responsive)")):
        executor = LocalExecutor(lab.store, None, 60.0, slots)
        assert executor.waiting_text(run, ahead, executor.status()) == \
            f"Run {second} is queued: 1 run ahead of it trains first {words}."
        assert executor.status().where == ("on this machine, one at a time" if slots == 1 else
                                           "on this machine, up to 2 at once")


def test_a_queued_run_starts_without_a_page_and_a_run_over_the_time_limit_is_stopped(lab_home, monkeypatch):
    """As after a restart: a run waits queued in the store and nobody opens the Train page. The server's keeper
    starts it; it then trains past the limit (0.15 min here) and is stopped with the reason 'time limit'."""
    monkeypatch.setenv("MNIST_LAB_MAX_RUN_MINUTES", "0.15")
    store = RunStore(lab_home)
    counts = summarize(FINAL)
    long_run = Recipe(epochs=50, train_subset=2048, batch_size=64).to_dict()  # over the limit: queued by hand
    run_id = store.create_run(FINAL.name, FINAL, long_run, counts.total, counts.trainable, owner="ann-token")
    lab = Lab(lab_home)
    try:
        lab.keep_queue_moving(every=0.5)
        wait_for(lambda: store.get(run_id).status != "queued", timeout=120)
        wait_for(lambda: store.get(run_id).finished, timeout=120)
    finally:
        lab.shutdown()
    run = store.get(run_id)
    assert run.status == "stopped" and run.error.startswith("time limit: it trained for longer than this server's "
                                                            "0.15 minutes a run")
    assert 9 <= run.duration < 60


def test_names_are_friendly_unique_and_rebuilt_from_their_files(lab_home):
    store = RunStore(lab_home)
    roster = store.roster
    first = roster.join("ann-token")
    assert len(first.split()) == 2 and roster.join("ann-token") == first
    assert roster.rename("ann-token", "  Ann\n  Lee ") == "Ann Lee"
    with pytest.raises(RosterError, match="already has that name"):
        roster.rename("ben-token", "ann lee")
    with pytest.raises(RosterError, match="at most 30 characters; this one has 31"):
        roster.rename("ben-token", "x" * 31)
    with pytest.raises(RosterError, match="at least one letter"):
        roster.rename("ben-token", " \t")
    (lab_home / "runs.sqlite").unlink()
    assert store.roster.names()["ann-token"] == "Ann Lee"  # made again from students/<id>.json


def test_each_students_handwriting_set_is_their_own(lab):
    ann = SampleStore(lab.store, lab.visitor("ann-token"))
    ben = SampleStore(lab.store, lab.visitor("ben-token"))
    teacher = SampleStore(lab.store, lab.visitor("tea-token", teacher=True))
    sample = ann.add(np.zeros((28, 28), np.uint8), 3, "canvas")
    ben.add(np.ones((28, 28), np.uint8), 4, "canvas")
    assert [s.id for s in ann.list()] == [sample] and ben.get(sample) is None and ann.count() == 1
    with pytest.raises(NotAllowed, match=f"Sample {sample} belongs to another student"):
        ben.delete(sample)
    assert teacher.count() == 2
    teacher.delete(sample)
    assert ann.count() == 0


def test_the_board_ranks_final_accuracies_of_completed_runs_under_the_budget(lab):
    store = lab.store

    def finished(owner, accuracy, status="completed", arch=FINAL, seed=0):
        counts = summarize(arch)
        run_id = store.create_run(arch.name, arch, {**QUICK_RUN.to_dict(), "seed": seed}, counts.total,
                                  counts.trainable, owner=owner)
        store.finish(run_id, status, test_accuracy=accuracy)

    finished("ann-token", 0.985)
    finished("ann-token", 0.991, seed=1)
    finished("ben-token", 0.993)
    finished("ben-token", 0.9999, arch=PRESETS["seed-first"])  # 15,088 params: over the budget
    finished("ben-token", 0.9999, status="stopped", seed=2)
    rows = leaderboard(store.list(), Budget(), {"ann-token": "Ann", "ben-token": "Ben"})
    assert [(row["place"], row["student"], row["test accuracy"]) for row in rows] == [(1, "Ben", "99.30%"),
                                                                                       (2, "Ann", "99.10%")]
    assert rows[0]["recipe"].startswith("quick") and rows[0]["epochs"] == RECIPES["quick"].epochs


def test_the_passcode_and_the_teachers_cookie_mark(lab_home):
    assert is_passcode(" owl-42 ", "owl-42") and not is_passcode("owl", "owl-42") and not is_passcode("", None)
    assert teacher_mark("owl-42", "ann") != teacher_mark("owl-43", "ann") != teacher_mark("owl-42", "ben")
    (lab_home).mkdir(parents=True, exist_ok=True)
    (lab_home / "class.json").write_text("{not json")
    assert read_settings(lab_home) == ClassSettings()
    (lab_home / "class.json").write_text(json.dumps({"paused": True, "runs_per_student": 900}))
    assert read_settings(lab_home) == ClassSettings(paused=True, runs_per_student=20)
    with pytest.raises(ValueError, match="Runs per student must be 1 to 20, not 0"):
        write_settings(lab_home, ClassSettings(runs_per_student=0))


def test_studies_started_at_once_by_one_student_stay_within_their_share(lab):
    """Five tabs press 'Study this architecture' at the same moment (the server's sessions are threads): the
    share of 2 holds, and the others are refused with the share's sentence, not a store error."""
    from concurrent.futures import ThreadPoolExecutor

    def study(_):
        try:
            return lab.submit_study(FINAL, TINY, visitor=lab.visitor("ann-token"))
        except ShareExceeded as refused:
            return str(refused)

    with ThreadPoolExecutor(5) as pool:
        outcomes = list(pool.map(study, range(5)))
    assert sum(isinstance(outcome, int) for outcome in outcomes) == 2, outcomes
    assert all(isinstance(outcome, int) or outcome.startswith("You already have 2") for outcome in outcomes)
    assert len(lab.store.owner_active("ann-token")) == 34


def test_a_page_looks_every_second_at_a_run_that_trains_or_is_next_and_every_few_at_one_that_waits(lab):
    """30 students each redrawing every second took a core from the trainings: only a run in training, or one
    a slot is free for, is watched every second."""
    from mnist_core.jobs import LIVE_SECONDS, WAITING_SECONDS, watch_seconds

    first, second, third = (queue(lab, owner, 0) for owner in ("a-token", "b-token", "c-token"))
    write_settings(lab.home, ClassSettings())
    lab.store.claim_next(1)  # the first trains
    active = lab.store.list(("queued", "running"))
    runs = {run.id: run for run in active}
    assert watch_seconds(runs[first], active, slots=1) == LIVE_SECONDS
    assert watch_seconds(runs[second], active, slots=1) == WAITING_SECONDS  # one run ahead, one slot
    assert watch_seconds(runs[second], active, slots=2) == LIVE_SECONDS  # a slot is free for it
    assert watch_seconds(runs[third], active, slots=2) == WAITING_SECONDS
    lab.store.finish(first, "completed", test_accuracy=0.98)
    assert watch_seconds(lab.store.get(first), lab.store.list(("queued", "running")), slots=1) == WAITING_SECONDS
    assert watch_seconds(None, [], slots=1) == WAITING_SECONDS
    write_settings(lab.home, ClassSettings(paused=True))


def test_a_paused_queue_gives_no_start_times(lab):
    queue(lab, "ann-token", 0)
    assert lab.timetable(lab.active()) == {}
