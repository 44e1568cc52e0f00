"""Reliability fixtures: AppTest from the app suite (the browser comes from tests/conftest.py)."""

from tests.app.conftest import app  # noqa: F401  (fixture)
