"""Runs trained by real worker processes: queueing, stop, warm start, clean shutdown."""

import json
import time

import psutil
import pytest

from mnist_core.jobs import Lab
from mnist_core.spec import PRESETS
from mnist_core.train import Recipe
from tests.conftest import wait_for

QUICK = Recipe(epochs=1, train_subset=512, progress_every=1)
LONG = Recipe(epochs=50, train_subset=2048, progress_every=1)


@pytest.fixture
def lab(lab_home, mnist_dir):
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    yield lab
    lab.shutdown()




def test_worker_trains_queues_and_stops(lab):
    """One run trains, a second queues behind it, Stop ends the first, the second then completes."""
    first = lab.submit(PRESETS["seed-final"], LONG)
    second = lab.submit(PRESETS["seed-first"], QUICK)
    assert (first.ahead, second.ahead) == (0, 1)
    wait_for(lambda: lab.store.events(first.run_id))
    assert lab.store.get(second.run_id).status == "queued"
    assert len(lab.live_workers()) == 1  # one training at a time on this machine

    asked = time.monotonic()
    lab.stop(first.run_id)
    stopped = lab.wait(first.run_id, timeout=60)
    assert stopped.status == "stopped" and time.monotonic() - asked < 10
    assert lab.store.model_path(first.run_id).exists()

    done = lab.wait(second.run_id, timeout=120)
    assert done.status == "completed" and 0 <= done.test_accuracy <= 1
    assert done.total_params == 15_088 and lab.store.model_path(done.id).exists()
    assert set(json.loads(done.versions_json)) == {"python", "keras", "tensorflow"}


def test_warm_worker_starts_the_next_run_quickly(lab):
    """After warm-up the TensorFlow import is already paid: the first event comes much sooner."""
    lab.ensure_worker()
    wait_for(lambda: lab.live_workers())
    time.sleep(1)
    started = time.monotonic()
    run = lab.submit(PRESETS["seed-final"], QUICK)
    wait_for(lambda: lab.store.get(run.run_id).status != "queued", timeout=30)
    assert time.monotonic() - started < 5  # a cold worker needs the TF import (2-10 s) first
    assert lab.wait(run.run_id, timeout=120).status == "completed"


def test_shutdown_leaves_no_worker_process(lab):
    lab.ensure_worker()
    pid = wait_for(lambda: next(iter(lab.live_workers().values()), None))
    lab.shutdown()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert lab.live_workers() == {}


def test_data_problem_fails_the_run_with_the_message(lab_home, tmp_path):
    """A broken MNIST folder gives a 'failed' run that says what is wrong, never 'completed'."""
    lab = Lab(home=lab_home, data_dir=tmp_path / "no-mnist-here")
    try:
        run = lab.wait(lab.submit(PRESETS["seed-final"], QUICK).run_id, timeout=120)
    finally:
        lab.shutdown()
    assert run.status == "failed" and "does not exist" in run.error and run.test_accuracy is None
