"""AppTest helpers: the app with a fresh run store, a way to reach the Lab it uses, and a check after every run."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.util import patch_config_options

from tests.conftest import ROOT

TIMEOUT = 60  # a page that trains or loads a model on a busy 2-core machine


@pytest.fixture
def app(lab_home, monkeypatch):
    """A function that opens a page of the app in AppTest, against an empty run store.

    Every script run (the first, and each one after a click or an edit) fails the test if the
    page shows an exception.
    """
    st.cache_resource.clear()
    run_script = AppTest._run

    def run_and_check(self, *args, **kwargs):
        with patch_config_options({"client.showErrorDetails": "full"}):  # the app redacts; a test names it
            at = run_script(self, *args, **kwargs)
        assert not at.exception, [exception.value for exception in at.exception]
        return at

    monkeypatch.setattr(AppTest, "_run", run_and_check)

    def open_page(page: str | None = None, query: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        if page:
            at.switch_page(f"pages/{page}.py").run()
        return at

    yield open_page
    from ui import common

    common._lab(str(lab_home)).shutdown()
    st.cache_resource.clear()


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def texts(elements) -> list[str]:
    return [element.value for element in elements]
