"""Reliability fixtures: AppTest from the app suite (the browser comes from tests/conftest.py), a small real disk."""

import subprocess

import pytest

from tests.app.conftest import app  # noqa: F401  (fixture)


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 64 MB filesystem (tmpfs); needs root, as this project's CI runs."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # a worker may still be closing its files
