"""The run store misbehaving under a training: a long write lock, a full disk, its folder deleted.

Each fault is real: a lock held by another process, a disk filled on a small tmpfs, the folder removed
with the worker alive. None of them may fail a training or leave a page broken.
"""

import shutil
import subprocess
import sys
import time

from mnist_core.jobs import Lab
from mnist_core.recipe import Recipe
from mnist_core.spec import PRESETS
from tests.app.conftest import texts
from tests.conftest import wait_for

MEDIUM = Recipe(epochs=3, train_subset=2048, progress_every=1)  # ~48 events over 10-20 s here
HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


def assert_whole_history(lab, run_id, epochs):
    """Every progress event arrived, in order, with each epoch's end: nothing was dropped while the store was out."""
    events = lab.store.events(run_id)
    steps = [event.step for event in events]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert [round(event.epoch) for event in events if event.kind == "epoch"] == list(range(1, epochs + 1))
    assert steps[-1] == epochs * MEDIUM.steps_per_epoch


def test_a_write_lock_held_for_8_seconds_mid_training_never_fails_the_run(executor, lab_home, mnist_dir):
    """Another program holds runs.sqlite's write lock longer than SQLite waits (5 s): the events wait,
    training goes on, and the run completes with its whole history and its model."""
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    try:
        run_id = lab.submit(PRESETS["seed-final"], MEDIUM).run_id
        wait_for(lambda: lab.store.events(run_id))
        holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lab.store.db_path), "8"],
                                  stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "locked"
        assert holder.wait(timeout=30) == 0
        run = lab.wait(run_id, timeout=300)
    finally:
        lab.shutdown()
    assert run.status == "completed", run.error
    assert lab.store.model_path(run_id).exists()
    assert_whole_history(lab, run_id, MEDIUM.epochs)
    assert "held back" in (lab_home / "worker.log").read_text()


def fill(disk) -> None:
    """Write zeros until the filesystem has no byte left."""
    with open(disk / "filler", "wb") as filler:
        try:
            while True:
                filler.write(b"\0" * 2**20)
                filler.flush()
        except OSError:
            pass


def test_a_disk_that_fills_mid_training_loses_nothing_once_space_is_back(executor, tiny_disk, mnist_dir):
    """Another program fills the disk while a run trains: the events wait in the worker, training goes on, and
    once space is free again the history, the model and the ending are all stored."""
    lab = Lab(home=tiny_disk / "lab", data_dir=mnist_dir)
    try:
        run_id = lab.submit(PRESETS["seed-final"], MEDIUM).run_id
        wait_for(lambda: lab.store.events(run_id))
        fill(tiny_disk)
        time.sleep(8)  # the fault's length: events, and maybe the model, meet the full disk meanwhile
        (tiny_disk / "filler").unlink()
        run = lab.wait(run_id, timeout=300)
    finally:
        lab.shutdown()
    assert run.status == "completed", run.error
    assert lab.store.model_path(run_id).exists()
    assert_whole_history(lab, run_id, MEDIUM.epochs)


def test_the_store_folder_deleted_while_the_app_runs_is_made_again_and_trains(executor, app, lab_home, mnist_dir):
    """Someone deletes the whole run-store folder under a running app and its idle worker: the pages say the
    history was made again, empty, instead of 'no such table', and the next run trains without a restart."""
    at = app("runs")
    from ui import common

    lab = common._lab(str(lab_home))  # the app's own Lab
    first = lab.wait(lab.submit(PRESETS["seed-final"], Recipe(epochs=1, train_subset=256)).run_id, timeout=180)
    assert first.status == "completed"
    (old_worker,) = lab.executor.live_workers().values()

    shutil.rmtree(lab_home)
    at.run()
    assert any("deleted while the app ran" in text and "empty" in text for text in texts(at.warning))
    assert not any("no such table" in text for text in texts(at.error))

    run = lab.wait(lab.submit(PRESETS["seed-final"], Recipe(epochs=1, train_subset=256)).run_id, timeout=180)
    assert run.status == "completed", run.error
    assert lab.store.model_path(run.id).exists()
    assert run.worker_pid != old_worker  # the worker whose lock file was deleted leaves the slot to a new one
    wait_for(lambda: not _alive(old_worker), timeout=30)


def _alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


def test_the_deletion_notice_is_news_for_ten_minutes_not_forever(lab_home, monkeypatch):
    """A student arriving long after the store was made again is not told that 'earlier runs are gone'."""
    from mnist_core import db
    from mnist_core.runs import RunStore

    store = RunStore(lab_home)
    shutil.rmtree(lab_home)
    assert store.list() == []
    assert "deleted while the app ran" in store.recent_notice
    later = time.time() + db.NOTICE_SECONDS + 1
    monkeypatch.setattr(db.time, "time", lambda: later)
    assert store.recent_notice is None
