"""Where the data and the run history live: environment variables with sensible defaults."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "MNIST_DATA_DIR"  # a folder with the four IDX files (gzip or raw) or mnist.npz
HOME_ENV = "MNIST_LAB_HOME"  # run store: runs.sqlite and one folder per run
MAX_WORKERS_ENV = "MNIST_LAB_MAX_WORKERS"  # trainings at once; 1 suits a 2-core machine


def data_dir() -> Path | None:
    """The configured MNIST folder, or None to use Keras' download."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def lab_home() -> Path:
    """The run store's folder (default `~/.mnist-budget-lab`)."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".mnist-budget-lab"


def max_workers() -> int:
    """How many trainings may run at once (default 1)."""
    try:
        return max(1, int(os.environ.get(MAX_WORKERS_ENV, "1")))
    except ValueError:
        return 1
