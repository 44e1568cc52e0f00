"""Reliability fixtures: browsers from the shared helpers, AppTest from the app suite."""

from tests.app.conftest import app  # noqa: F401  (fixture)
from tests.browser import browser, page  # noqa: F401  (fixtures)
