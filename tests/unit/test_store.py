"""The SQLite run store: lifecycle, manifests, concurrent reads, and the errors it reports."""

import json
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing

import pytest

from mnist_core.budget import summarize
from mnist_core.db import StoreError
from mnist_core.events import Event
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS
from tests.conftest import ROOT

FINAL = PRESETS["seed-final"]


def new_run(store: RunStore) -> int:
    summary = summarize(FINAL)
    return store.create_run("seed-final", FINAL, {"epochs": 1}, summary.total, summary.trainable)


def event(step: int) -> Event:
    return Event(kind="batch", epoch=step / 10, batch=step, step=step, lr=0.003, loss=1.0 / step, accuracy=0.5)


def test_run_lifecycle_queued_running_completed(lab_home):
    store = RunStore(lab_home)
    run_id = new_run(store)
    assert store.get(run_id).status == "queued"
    claimed = store.claim_next(worker_pid=1234)
    assert claimed.id == run_id and claimed.status == "running" and claimed.worker_pid == 1234
    assert store.claim_next(worker_pid=1234) is None
    for step in range(1, 4):
        store.add_event(run_id, step - 1, event(step))
    store.finish(run_id, "completed", test_accuracy=0.99, test_loss=0.03, versions={"keras": "3"})
    run = store.get(run_id)
    assert (run.status, run.test_accuracy, run.total_params) == ("completed", 0.99, 14_960)
    assert run.spec == FINAL and run.duration >= 0
    assert [e.step for e in store.events(run_id)] == [1, 2, 3]
    assert [e.step for e in store.events(run_id, after_seq=1)] == [3]
    manifest = json.loads((store.run_dir(run_id) / "run.json").read_text())
    assert manifest["status"] == "completed" and len(manifest["events"]) == 3


def test_stop_cancels_a_queued_run_at_once(lab_home):
    store = RunStore(lab_home)
    run_id = new_run(store)
    store.request_stop(run_id)
    assert store.get(run_id).status == "stopped" and store.claim_next(1) is None


def test_runs_list_newest_first_and_delete_removes_the_folder(lab_home):
    store = RunStore(lab_home)
    first, second = new_run(store), new_run(store)
    assert [run.id for run in store.list()] == [second, first]
    store.delete(first)
    assert [run.id for run in store.list()] == [second] and not store.run_dir(first).exists()


def test_readers_see_events_while_a_writer_appends(lab_home):
    """WAL mode: a reader thread never fails while another connection writes events."""
    store = RunStore(lab_home)
    run_id = new_run(store)
    errors, counts = [], []

    def read():
        try:
            for _ in range(200):
                counts.append(len(store.events(run_id)))
        except Exception as err:  # the assertion below reports it
            errors.append(err)

    reader = threading.Thread(target=read)
    reader.start()
    for step in range(1, 301):
        store.add_event(run_id, step, event(step))
    reader.join()
    assert not errors and counts == sorted(counts)


def test_a_locked_database_is_a_clear_error_not_a_traceback(lab_home, monkeypatch):
    """Another program holding a write lock makes writes fail with 'locked', and reads still work."""
    store = RunStore(lab_home)
    run_id = new_run(store)
    store.add_event(run_id, 0, event(1))
    real_connect = sqlite3.connect
    blocker = sqlite3.connect(store.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        # The real 5 s wait for the lock would only slow the test down.
        monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "timeout": 0.2}))
        with pytest.raises(StoreError, match="locked by another program"):
            new_run(store)
        assert [run.id for run in store.list()] == [run_id] and store.get(run_id).status == "queued"
        assert [e.step for e in store.events(run_id)] == [1]
    finally:
        monkeypatch.undo()
        blocker.execute("ROLLBACK")
        blocker.close()
    assert len(store.list()) == 1


def test_ids_are_never_reused_after_a_delete(lab_home):
    store = RunStore(lab_home)
    first, newest = new_run(store), new_run(store)
    store.delete(newest)
    assert new_run(store) > newest > first


def test_a_leftover_run_folder_never_attaches_to_a_new_run(lab_home):
    """Files a failed delete left behind, or folders the index no longer knows, keep their id."""
    store = RunStore(lab_home)
    deleted = new_run(store)
    store.delete(deleted)
    store.model_path(deleted).parent.mkdir()
    store.model_path(deleted).write_bytes(b"a model the delete could not remove")
    (store.runs_dir / "7").mkdir()
    (store.runs_dir / "7" / "model.keras").write_bytes(b"from an index that was lost")
    run_id = new_run(store)
    assert run_id == 8 and not store.model_path(run_id).exists()


OLD_SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
    started_at REAL, finished_at REAL, spec_json TEXT NOT NULL, recipe_json TEXT NOT NULL,
    total_params INTEGER NOT NULL, trainable_params INTEGER NOT NULL, test_accuracy REAL, test_loss REAL,
    duration REAL, error TEXT, versions_json TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, worker_pid INTEGER);
CREATE TABLE events (run_id INTEGER NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, epoch REAL, batch INTEGER,
    step INTEGER, lr REAL, loss REAL, accuracy REAL, val_loss REAL, val_accuracy REAL, elapsed REAL, eta REAL,
    PRIMARY KEY (run_id, seq));
INSERT INTO runs (id, name, status, created_at, spec_json, recipe_json, total_params, trainable_params,
    test_accuracy, worker_pid) VALUES
    (1, 'old', 'completed', 1.0, '{spec}', '{{"epochs": 1}}', 14960, 14800, 0.98, 42);
INSERT INTO events (run_id, seq, kind, epoch, batch, step, lr, loss, accuracy) VALUES (1, 0, 'epoch', 1, 4, 4,
    0.003, 0.1, 0.9);
"""


def test_an_old_schema_database_opens_and_keeps_its_runs(lab_home):
    """A database made before AUTOINCREMENT and submitter_pid keeps its rows and stops reusing ids."""
    lab_home.mkdir()
    with sqlite3.connect(lab_home / "runs.sqlite") as conn:
        conn.executescript(OLD_SCHEMA.format(spec=json.dumps(FINAL.to_dict()).replace("'", "''")))
    conn.close()
    store = RunStore(lab_home)
    (old,) = store.list()
    assert (old.id, old.name, old.test_accuracy, old.worker_pid, old.submitter_pid) == (1, "old", 0.98, 42, None)
    assert old.spec == FINAL and [e.step for e in store.events(1)] == [4]
    run_id = store.create_run("new", FINAL, {"epochs": 1}, 14_960, 14_800, submitter_pid=99)
    assert (run_id, store.get(run_id).submitter_pid) == (2, 99)
    store.delete(run_id)
    assert new_run(RunStore(lab_home)) == 3  # reopening the migrated file changes nothing
    assert [run.id for run in RunStore(lab_home).list()] == [3, 1]


def test_a_manifest_without_submitter_pid_still_imports(lab_home):
    """Run folders written before the submitter column rebuild the index as before."""
    store = RunStore(lab_home)
    run_id = new_run(store)
    store.claim_next(1)
    store.finish(run_id, "completed", test_accuracy=0.9)
    manifest = store.run_dir(run_id) / "run.json"
    data = json.loads(manifest.read_text())
    del data["submitter_pid"]
    manifest.write_text(json.dumps(data))
    store.db_path.write_bytes(b"damaged" * 100)
    rebuilt = RunStore(lab_home)
    assert [(run.id, run.status, run.submitter_pid) for run in rebuilt.list()] == [(run_id, "completed", None)]


def test_two_threads_writing_one_runs_manifest_never_fail(lab_home):
    store = RunStore(lab_home)
    run_id = new_run(store)
    errors = []

    def write():
        try:
            for _ in range(200):
                store.write_manifest(run_id)
        except Exception as err:  # the assertion below reports it
            errors.append(err)

    writers = [threading.Thread(target=write) for _ in range(2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not errors and json.loads((store.run_dir(run_id) / "run.json").read_text())["id"] == run_id
    assert [path.name for path in store.run_dir(run_id).iterdir()] == ["run.json"]


def test_unwritable_location_is_refused_before_anything_starts(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot create the run store"):
        RunStore(blocker / "lab")


PREVIOUS_RUNS_TABLE = """
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, started_at REAL, finished_at REAL, spec_json TEXT NOT NULL, recipe_json TEXT NOT NULL,
    total_params INTEGER NOT NULL, trainable_params INTEGER NOT NULL, test_accuracy REAL, test_loss REAL,
    duration REAL, error TEXT, versions_json TEXT, stop_requested INTEGER NOT NULL DEFAULT 0, worker_pid INTEGER,
    submitter_pid INTEGER)"""


def test_a_database_from_before_studies_gains_the_columns_and_keeps_its_runs(lab_home):
    """ALTER TABLE adds study_id and variant in place: rows, ids and the id sequence survive."""
    lab_home.mkdir()
    with closing(sqlite3.connect(lab_home / "runs.sqlite")) as conn, conn:
        conn.execute(PREVIOUS_RUNS_TABLE)
        conn.execute("INSERT INTO runs (id, name, status, created_at, spec_json, recipe_json, total_params, "
                     "trainable_params, test_accuracy, submitter_pid) VALUES (5, 'old', 'completed', 1.0, ?, "
                     "'{\"epochs\": 1}', 14960, 14800, 0.97, 7)", (json.dumps(FINAL.to_dict()),))
    store = RunStore(lab_home)
    (old,) = store.list()
    assert (old.id, old.name, old.test_accuracy, old.submitter_pid, old.study_id, old.variant) == \
        (5, "old", 0.97, 7, None, None)
    study_id = store.create_study("s", FINAL, {"epochs": 1}, [0])
    run_id = store.create_run("new", FINAL, {"epochs": 1}, 14_960, 14_800, study_id=study_id, variant="baseline")
    assert run_id == 6 and [run.variant for run in store.study_runs(study_id)] == ["baseline"]
    with closing(sqlite3.connect(store.db_path)) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    assert columns[-4:] == ["submitter_pid", "study_id", "variant", "owner"]  # added in place, not copied
    assert [run.id for run in RunStore(lab_home).list()] == [6, 5]  # reopening changes nothing


def test_a_rebuilt_database_keeps_its_studies_and_their_runs(lab_home):
    """studies/<id>.json and each run's manifest (study_id, variant) restore a study whole."""
    from mnist_core.study import summarize_study

    store = RunStore(lab_home)
    study_id = store.create_study("ablation", FINAL, {"epochs": 1, "seed": 0}, [0, 1])
    for variant, accuracy in (("baseline", 0.98), ("bn-off:conv1", 0.97)):
        run_id = store.create_run(variant, FINAL, {"epochs": 1}, 14_960, 14_800, study_id=study_id, variant=variant)
        store.claim_next(1)
        store.finish(run_id, "completed", test_accuracy=accuracy)
    queued = store.create_run("queued", FINAL, {"epochs": 1, "seed": 1}, 14_960, 14_800, study_id=study_id,
                              variant="baseline")
    lone = new_run(store)
    before = summarize_study(store, study_id)
    store.db_path.write_bytes(b"damaged" * 100)

    rebuilt = RunStore(lab_home)
    assert "rebuilt from 4 run folders and 0 sample files, with 1 study file." in rebuilt.notice
    assert rebuilt.get_study(study_id) == before.study
    assert [(run.id, run.variant) for run in rebuilt.study_runs(study_id)] == \
        [(1, "baseline"), (2, "bn-off:conv1"), (queued, "baseline")]
    assert rebuilt.get(queued).status == "interrupted" and rebuilt.get(lone).study_id is None
    after = summarize_study(rebuilt, study_id)
    results = [[(row.key, row.accuracies, row.delta_accuracy, row.verdict) for row in summary.rows]
               for summary in (before, after)]
    assert results[0] == results[1] and after.rows[0].statuses == {0: "completed", 1: "interrupted"}
    assert rebuilt.create_study("next", FINAL, {}, [0]) == study_id + 1 == len(rebuilt.list_studies())


def test_a_manifest_from_before_studies_still_imports(lab_home):
    """Run folders written before study_id and variant rebuild the index as runs of no study."""
    store = RunStore(lab_home)
    run_id = new_run(store)
    manifest = store.run_dir(run_id) / "run.json"
    data = json.loads(manifest.read_text())
    del data["study_id"], data["variant"]
    manifest.write_text(json.dumps(data))
    store.db_path.write_bytes(b"damaged" * 100)
    (run,) = RunStore(lab_home).list()
    assert (run.id, run.status, run.study_id, run.variant) == (run_id, "interrupted", None, None)


def test_a_single_run_is_claimed_before_a_queued_studys_runs(lab_home):
    """A student's run is not kept waiting behind a teacher's 17-variant study."""
    from mnist_core.jobs import ahead_of

    store = RunStore(lab_home)
    summary = summarize(FINAL)
    study = store.create_study("Ablation", FINAL, {"epochs": 1}, [0])
    studied = [store.create_run("variant", FINAL, {"epochs": 1}, summary.total, summary.trainable, study_id=study,
                                variant="baseline") for _ in range(3)]
    single = new_run(store)
    queued = sorted(store.list(("queued",)), key=lambda run: run.id)
    assert [run.id for run in ahead_of(store.get(single), queued)] == []
    assert [run.id for run in ahead_of(store.get(studied[1]), queued)] == [single, studied[0]]  # in queue order
    assert [store.claim_next(1).id for _ in range(4)] == [single, *studied]


def test_a_run_name_is_kept_as_one_printable_line(lab_home):
    """A CLI --name with newlines, a right-to-left override or a NUL is stored as one plain line."""
    store = RunStore(lab_home)
    arch = PRESETS["seed-final"]
    run_id = store.create_run("a\nb **c**\u202e\x00d", arch, {"epochs": 1}, 1, 1)
    assert store.get(run_id).name == "a b **c** d"
    assert store.get(store.create_run("\n\t", arch, {"epochs": 1}, 1, 1)).name == "seed-final"


def test_a_locked_history_is_said_without_naming_a_server_path(lab_home):
    """Students on a class server read this sentence: it says what to do, not where the file lives."""
    store = RunStore(lab_home)
    with closing(sqlite3.connect(store.db_path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreError) as refused:
            with store.connect(wait=0.1) as conn:
                conn.execute("BEGIN IMMEDIATE")  # a write, as a Start or an import makes
        holder.execute("ROLLBACK")
    assert str(refused.value) == "The run history is locked by another program; try again in a moment."
    assert str(lab_home) not in str(refused.value)


def test_the_trainer_and_the_run_report_never_load_the_database():
    """Event and Run are plain records (events.py, history.py): training and the Runs table's rows need no SQLite."""
    probe = ("import sys, mnist_core.train, mnist_core.report; "
             "print(sorted(name for name in sys.modules if name in ('sqlite3', 'mnist_core.db')))")
    loaded = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
