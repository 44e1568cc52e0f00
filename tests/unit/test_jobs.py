"""Runs trained by real worker processes: queueing, stop, warm start, shutdown, other processes' runs."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import psutil
import pytest

from mnist_core.analysis import analysis_path
from mnist_core.jobs import Lab
from mnist_core.recipe import Recipe
from mnist_core.spec import PRESETS
from mnist_core.train import TRAINING_NICENESS
from tests.conftest import ROOT, wait_for

QUICK = Recipe(epochs=1, train_subset=512, progress_every=1)
MEDIUM = Recipe(epochs=3, train_subset=2048, progress_every=1)  # long enough to act while it trains
LONG = Recipe(epochs=50, train_subset=2048, progress_every=1)
BROKEN_IMPORT = "ImportError: this keras is broken on purpose (test)"

# Another process with its own Lab on the same home: starts a worker, reports its pid, then on a line
# from stdin shuts its Lab down and exits ("shutdown"), or just waits to be killed ("wait").
OTHER_PROCESS = """
import sys, time
from mnist_core.analysis import analysis_path
from mnist_core.jobs import Lab
from mnist_core.recipe import Recipe
from mnist_core.spec import PRESETS
home, data_dir, mode = sys.argv[1:]
lab = Lab(home=home, data_dir=data_dir or None)
if mode == "submit":
    lab.submit(PRESETS["seed-final"], Recipe(epochs=50, train_subset=2048, progress_every=1))
lab.status()
while not lab.executor.live_workers():
    time.sleep(0.05)
print(lab.executor.live_workers()[0], flush=True)
sys.stdin.readline()
if mode == "shutdown":
    lab.shutdown()
"""


@pytest.fixture
def lab(lab_home, mnist_dir):
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    yield lab
    lab.shutdown()


@pytest.fixture
def other_process(lab_home, mnist_dir):
    """Start OTHER_PROCESS in a mode; returns (process, its worker's pid). Killed at the end if still there."""
    started = []

    def start(mode):
        lab_home.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen([sys.executable, "-c", OTHER_PROCESS, str(lab_home), str(mnist_dir or ""), mode],
                                   cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        started.append(process)
        return process, int(process.stdout.readline())

    yield start
    for process in started:
        process.kill()
        process.wait()


def worker_processes(home) -> list[psutil.Process]:
    """Live (not zombie) worker processes serving `home`, found by command line."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if "mnist_core.worker" in cmdline and str(home) in cmdline and process.info["status"] != psutil.STATUS_ZOMBIE:
            found.append(process)
    return found


def gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_worker_trains_queues_and_stops(lab):
    """One run trains, a second queues behind it, Stop ends the first, the second then completes."""
    first = lab.submit(PRESETS["seed-final"], LONG)
    second = lab.submit(PRESETS["seed-first"], QUICK)
    assert (first.ahead, second.ahead) == (0, 1)
    wait_for(lambda: any(event.kind == "epoch" for event in lab.store.events(first.run_id)))
    assert lab.store.get(second.run_id).status == "queued"

    lab.stop(first.run_id)
    stopped = lab.wait(first.run_id, timeout=120)
    assert stopped.status == "stopped" and lab.store.model_path(first.run_id).exists()
    assert 1 <= len([e for e in lab.store.events(first.run_id) if e.kind == "epoch"]) < LONG.epochs
    assert stopped.test_accuracy is not None  # the last whole epoch's

    done = lab.wait(second.run_id, timeout=120)
    assert done.status == "completed" and 0 <= done.test_accuracy <= 1
    assert done.total_params == 15_088 and lab.store.model_path(done.id).exists()
    assert set(json.loads(done.versions_json)) == {"python", "keras", "tensorflow"}
    assert done.worker_pid == stopped.worker_pid  # the same warm worker trained both


def test_a_stop_before_the_first_epoch_keeps_no_model_and_analyses_nothing(lab):
    """A run stopped in its first epoch was never tested: no model to draw with, no 10,000-digit analysis to
    wait for (that took minutes for a big network), and the run says stopped with no accuracy."""
    run_id = lab.submit(PRESETS["seed-final"], LONG).run_id
    wait_for(lambda: lab.store.events(run_id))
    lab.stop(run_id)
    stopped = lab.wait(run_id, timeout=120)
    assert not any(event.kind == "epoch" for event in lab.store.events(run_id))
    assert stopped.status == "stopped" and stopped.test_accuracy is None
    assert not lab.store.model_path(run_id).exists()
    assert not analysis_path(lab.store, run_id).exists()


def test_warm_worker_trains_the_next_run_without_a_new_process(lab, lab_home):
    """The status a page asks first warms a worker; a run submitted then is trained by that process: TensorFlow
    is imported only once."""
    lab.status()
    wait_for(lambda: "ready on slot 0" in (lab_home / "worker.log").read_text())
    (pid,) = lab.executor.live_workers().values()
    run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)
    assert run.status == "completed" and run.worker_pid == pid
    assert [process.pid for process in worker_processes(lab_home)] == [pid]
    assert (lab_home / "worker.log").read_text().count("ready on slot") == 1
    # Niced below the app's server, so that a page's rerun is served before its training.
    assert psutil.Process(pid).nice() == max(TRAINING_NICENESS, psutil.Process().nice())


def test_two_labs_on_one_home_share_one_worker(lab, lab_home, mnist_dir):
    """Two app processes (two Labs) asking for workers at once still get one worker process for one slot."""
    other = Lab(home=lab_home, data_dir=mnist_dir)
    try:
        lab.status()
        other.status()
        wait_for(lambda: "ready on slot 0" in (lab_home / "worker.log").read_text())
        wait_for(lambda: len(worker_processes(lab_home)) == 1)  # the second one lost the lock race and left
        (worker,) = worker_processes(lab_home)
        assert lab.executor.live_workers() == other.executor.live_workers() == {0: worker.pid}
        other.status()
        lab.status()
        time.sleep(2)
        assert [process.pid for process in worker_processes(lab_home)] == [worker.pid]
        assert lab.status().problem is None and other.status().problem is None  # losing the race is no failed start
    finally:
        other.shutdown()


def test_shutdown_leaves_no_worker_process(lab):
    lab.status()
    pid = wait_for(lambda: next(iter(lab.executor.live_workers().values()), None))
    lab.shutdown()
    assert gone(pid)
    assert lab.executor.live_workers() == {}


def test_shutdown_interrupts_a_run_this_process_submitted(lab):
    run_id = lab.submit(PRESETS["seed-final"], LONG).run_id
    wait_for(lambda: lab.store.events(run_id))
    pid = lab.store.get(run_id).worker_pid
    lab.shutdown()
    assert gone(pid) and lab.store.get(run_id).status == "interrupted"


def test_another_process_exiting_does_not_kill_our_training(lab, lab_home, other_process):
    """The CLI exits while its warm worker trains a run the app queued: the run still completes."""
    process, pid = other_process("shutdown")
    run_id = lab.submit(PRESETS["seed-final"], MEDIUM).run_id
    wait_for(lambda: lab.store.events(run_id))
    assert lab.store.get(run_id).worker_pid == pid
    process.stdin.write("\n")
    process.stdin.flush()
    assert process.wait(timeout=60) == 0 and lab.store.get(run_id).status == "running"
    run = lab.wait(run_id, timeout=180)
    assert run.status == "completed" and run.worker_pid == pid, run.error
    wait_for(lambda: gone(pid), timeout=60)  # it leaves once the run is done


def test_a_worker_whose_parent_dies_finishes_another_process_run_and_claims_no_more(lab, other_process):
    process, pid = other_process("wait")
    first = lab.submit(PRESETS["seed-final"], MEDIUM).run_id
    second = lab.submit(PRESETS["seed-final"], QUICK).run_id
    wait_for(lambda: lab.store.events(first))
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert lab.wait(first, timeout=180).status == "completed"
    wait_for(lambda: gone(pid), timeout=60)
    after = lab.wait(second, timeout=180)  # trained by a worker of this process's Lab
    assert after.status == "completed" and after.worker_pid != pid


def test_a_killed_parent_still_interrupts_its_own_run(executor, lab_home, other_process):
    """The server dies mid-training of its own run: the worker stops, marks it interrupted and exits."""
    process, pid = other_process("submit")
    lab = Lab(home=lab_home)
    (run,) = lab.store.list()
    wait_for(lambda: lab.store.events(run.id))
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: gone(pid), timeout=60)
    assert lab.store.get(run.id).status == "interrupted"


def test_a_database_locked_for_a_while_does_not_kill_the_worker(lab, lab_home):
    """Another program holds the write lock longer than SQLite waits: the worker logs, retries, and serves on."""
    lab.status()
    log = lab_home / "worker.log"
    wait_for(lambda: "ready on slot 0" in log.read_text())
    (pid,) = lab.executor.live_workers().values()
    blocker = sqlite3.connect(lab.store.db_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        wait_for(lambda: "cannot claim a run" in log.read_text(), timeout=60)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)
    assert run.status == "completed" and run.worker_pid == pid


def test_data_problem_fails_the_run_with_the_message(executor, lab_home, tmp_path):
    """A broken MNIST folder gives a 'failed' run that says what is wrong, never 'completed'."""
    lab = Lab(home=lab_home, data_dir=tmp_path / "no-mnist-here")
    try:
        run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)
    finally:
        lab.shutdown()
    assert run.status == "failed" and "does not exist" in run.error and run.test_accuracy is None


def broken_keras(folder, body: str):
    """A folder to put first on PYTHONPATH: its `keras` package runs `body` when imported."""
    (folder / "keras").mkdir(parents=True)
    (folder / "keras" / "__init__.py").write_text(body)
    return folder


@pytest.mark.parametrize("body, message", [
    (f"raise ImportError({BROKEN_IMPORT.split(': ', 1)[1]!r})", BROKEN_IMPORT),
    ("import os, signal\nos.kill(os.getpid(), signal.SIGILL)",
     "killed by SIGILL (Illegal instruction): this CPU may lack instructions TensorFlow needs"),
], ids=["import-error", "sigill"])
def test_a_worker_that_cannot_start_fails_the_run_instead_of_respawning(lab_home, mnist_dir, tmp_path,
                                                                        monkeypatch, body, message):
    """The worker dies at start-up every time: a few tries, then the run fails with the worker's own error."""
    monkeypatch.setenv("PYTHONPATH", str(broken_keras(tmp_path / "broken", body)))
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    try:
        run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)
        assert run.status == "failed" and message in run.error and "3 times in a row" in run.error
        assert lab.status().problem == f"The training worker cannot start: {run.error}"
        for _ in range(5):
            lab.status()
            lab.active()
            time.sleep(0.2)
        assert not worker_processes(lab_home)  # gave up: nothing respawned
        again = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)  # a new submit retries
        assert again.status == "failed" and message in again.error
    finally:
        lab.shutdown()
    if message == BROKEN_IMPORT:
        assert (lab_home / "worker.log").read_text().count(BROKEN_IMPORT) == 6  # 3 tries per submit


def test_asking_for_the_active_runs_starts_a_worker_when_runs_wait_and_none_serves(lab, lab_home):
    """The Train page's every-second question: with nothing queued no worker starts; a queued run with no
    worker gets one from the question alone, and is served."""
    assert lab.active() == [] and not worker_processes(lab_home)
    run_id = lab.store.create_run("queued elsewhere", PRESETS["seed-final"], QUICK.to_dict(), 14_960, 14_800)
    assert [run.id for run in lab.active()] == [run_id]
    wait_for(lambda: worker_processes(lab_home), timeout=30)
    assert lab.wait(run_id, timeout=120).status == "completed"
