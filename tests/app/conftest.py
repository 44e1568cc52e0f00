"""AppTest helpers: the app with a fresh run store, and a way to reach the Lab it uses."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 60  # the Predict page imports TensorFlow (2-10 s here) on its first run


@pytest.fixture
def app(lab_home):
    """A function that opens a page of the app in AppTest, against an empty run store."""
    st.cache_resource.clear()

    def open_page(page: str | None = None, query: dict | None = None) -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        if page:
            at.switch_page(f"pages/{page}.py").run()
        return at

    yield open_page
    from pages import common

    common._lab(str(lab_home)).shutdown()
    st.cache_resource.clear()


def metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def texts(elements) -> list[str]:
    return [element.value for element in elements]
