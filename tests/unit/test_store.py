"""The SQLite run store: lifecycle, manifests, concurrent reads, and the errors it reports."""

import json
import sqlite3
import threading

import pytest

from mnist_core.budget import summarize
from mnist_core.spec import PRESETS
from mnist_core.store import Event, RunStore, StoreError

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
    new_run(store)
    real_connect = sqlite3.connect
    blocker = sqlite3.connect(store.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        # The real 5 s wait for the lock would only slow the test down.
        monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "timeout": 0.2}))
        with pytest.raises(StoreError, match="locked by another program"):
            new_run(store)
    finally:
        monkeypatch.undo()
        blocker.execute("ROLLBACK")
        blocker.close()
    assert len(store.list()) == 1


def test_unwritable_location_is_refused_before_anything_starts(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="Cannot create the run store"):
        RunStore(blocker / "lab")
