"""E2E fixtures: one server with a model trained in setup, shared by the browser tests."""

from pathlib import Path

import pytest

from tests.browser import Server


@pytest.fixture(scope="session")
def e2e_home(tmp_path_factory) -> Path:
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
def server(e2e_home, trained_run):
    server = Server(e2e_home).start()
    yield server
    server.stop()
