"""E2E fixtures: one server with a model trained in setup, shared by the browser tests."""

import pytest

from tests.browser import Server


@pytest.fixture(scope="session")
def server(e2e_home, trained_run):
    server = Server(e2e_home).start()
    yield server
    server.stop()
