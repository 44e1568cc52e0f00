"""Shared fixtures: MNIST as the product finds it, a fresh run store per test, a small trained run."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser import browser, page, watched_context  # noqa: F401  (one Chromium for every suite)

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def mnist_dir() -> Path | None:
    """$MNIST_DATA_DIR when set (offline machines), else None: Keras downloads MNIST once and caches it."""
    from mnist_core import config

    return config.data_dir()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    from mnist_core.data import load_mnist

    return load_mnist(mnist_dir)


@pytest.fixture
def lab_home(tmp_path, monkeypatch) -> Path:
    """An empty run store folder, also set as $MNIST_LAB_HOME for code that reads it."""
    home = tmp_path / "lab"
    monkeypatch.setenv("MNIST_LAB_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory) -> Path:
    """The run store of the browser tests' server (tests/e2e/conftest.py), where `trained_run` trains."""
    return tmp_path_factory.mktemp("e2e") / "lab"


@pytest.fixture(scope="session")
def trained_run(e2e_home, mnist_dir):
    """A seed-final run trained through the real worker on 10,000 images (~96%): the Predict default."""
    from mnist_core.jobs import Lab
    from mnist_core.recipe import Recipe
    from mnist_core.spec import PRESETS

    lab = Lab(home=e2e_home, data_dir=mnist_dir)
    try:
        run = lab.wait(lab.submit(PRESETS["seed-final"], Recipe(epochs=2, train_subset=10_000, bn_momentum=0.9,
                                                                seed=3)).run_id, timeout=600)
    finally:
        lab.shutdown()
    assert run.status == "completed" and run.test_accuracy > 0.9, run
    return run


@pytest.fixture(scope="session")
def small_model(tmp_path_factory, e2e_home, trained_run):
    """`trained_run`'s model as the worker saved it, copied out of its store: (.keras path, test accuracy)."""
    from mnist_core.runs import RunStore
    from tests.models import copy_model

    path = tmp_path_factory.mktemp("model") / "model.keras"
    copy_model(RunStore(e2e_home).model_path(trained_run.id), path)
    return path, trained_run.test_accuracy


def wait_for(condition, timeout=120.0, every=0.1):
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory) -> dict[str, str]:
    """A real one-node Ray cluster (2 CPUs, token authentication as Ray 2.60 defaults to), started with
    `ray start --head` as an admin would; the environment a Lab needs to train on it."""
    from tests.browser import free_port

    port = free_port()
    env = {"MNIST_LAB_EXECUTOR": "ray", "RAY_ADDRESS": f"127.0.0.1:{port}", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    ray = str(Path(sys.executable).with_name("ray"))
    subprocess.run([ray, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                    "--disable-usage-stats"], env=dict(os.environ, **env), check=True, capture_output=True)
    yield env
    subprocess.run([ray, "stop", "--force"], env=dict(os.environ, **env), capture_output=True)


@pytest.fixture
def on_ray(ray_cluster, monkeypatch) -> dict[str, str]:
    """This test's Labs (and the processes they start) train on the test's Ray cluster."""
    for name, value in ray_cluster.items():
        monkeypatch.setenv(name, value)
    return ray_cluster


@pytest.fixture
def idle_executor(monkeypatch):
    """This test's Labs start no worker and train nothing (tests/fakes.py): for pages built from store rows,
    where a warm worker would only cost a TensorFlow import."""
    from tests.fakes import IdleExecutor

    executor = IdleExecutor()
    monkeypatch.setattr("mnist_core.jobs.make_executor", lambda *args, **kwargs: executor)
    return executor


# The fixtures a test asks for decide its lane: `-m "not slow and not e2e"` never starts Chromium or Ray.
BROWSER_FIXTURES = {"browser", "page", "watched_context", "server"}
RAY_FIXTURES = {"ray_cluster", "on_ray"}
TRAINED_RUN_FIXTURES = {"trained_run", "small_model"}  # trained once per test process: keep them together


@pytest.hookimpl(tryfirst=True)  # before xdist reads the xdist_group marks
def pytest_collection_modifyitems(items):
    for item in items:
        used = set(item.fixturenames)
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.e2e)
        on_ray = getattr(item, "callspec", None) is not None and item.callspec.params.get("executor") == "ray"
        if used & RAY_FIXTURES or on_ray:
            item.add_marker(pytest.mark.slow)
        # With xdist (`-n`, pytest.ini): `ray stop --force` ends every Ray process on the machine, so all Ray
        # tests share one worker; the browser tests share another's e2e server, trained run and Chromium.
        if used & RAY_FIXTURES or on_ray or "ray" in item.module.__name__.rsplit(".", 1)[-1].split("_"):
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif used & (BROWSER_FIXTURES | TRAINED_RUN_FIXTURES):
            item.add_marker(pytest.mark.xdist_group("browser"))


@pytest.fixture(params=["local", "ray"])
def executor(request, monkeypatch) -> str:
    """A fault test that applies to both executors runs twice through the same Lab: on local worker processes,
    and on the test's Ray cluster (skipped where Ray is not installed: it is in requirements-ray.txt)."""
    if request.param == "ray":
        pytest.importorskip("ray")
        for name, value in request.getfixturevalue("ray_cluster").items():
            monkeypatch.setenv(name, value)
    else:
        monkeypatch.setenv("MNIST_LAB_EXECUTOR", "local")
    return request.param
