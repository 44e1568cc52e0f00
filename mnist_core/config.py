"""Where the data and the run history live: environment variables with sensible defaults."""

from __future__ import annotations

import math
import os
from pathlib import Path

DATA_DIR_ENV = "MNIST_DATA_DIR"  # a folder with the four IDX files (gzip or raw) or mnist.npz
HOME_ENV = "MNIST_LAB_HOME"  # run store: runs.sqlite and one folder per run
MAX_WORKERS_ENV = "MNIST_LAB_MAX_WORKERS"  # trainings at once (docs/benchmarks.md: 1 or 2 on a 2-core machine)
EXECUTOR_ENV = "MNIST_LAB_EXECUTOR"  # where runs train: "local" worker processes or a "ray" cluster
RAY_CPUS_ENV = "MNIST_LAB_RAY_CPUS"  # CPUs one run asks the Ray cluster for
RAY_GPUS_ENV = "MNIST_LAB_RAY_GPUS"  # GPUs one run asks for; default 1 where the cluster has GPUs, else 0
MAX_RUN_MINUTES_ENV = "MNIST_LAB_MAX_RUN_MINUTES"  # the longest a run may be estimated to take, in minutes
MAX_RUN_MEMORY_ENV = "MNIST_LAB_MAX_RUN_MEMORY_GB"  # the most training memory a run may be estimated to need
TEACHER_PASSCODE_ENV = "MNIST_LAB_TEACHER_PASSCODE"  # set: a class (students, owners, caps) with this teacher passcode
EXECUTORS = ("local", "ray")


class ConfigError(ValueError):
    """A setting has a value the app cannot use; the message names the variable and what it accepts."""


def data_dir() -> Path | None:
    """The configured MNIST folder, or None to use Keras' download."""
    value = os.environ.get(DATA_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else None


def lab_home() -> Path:
    """The run store's folder (default `~/.mnist-budget-lab`)."""
    value = os.environ.get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else Path.home() / ".mnist-budget-lab"


def max_workers() -> int:
    """How many trainings may run at once: MNIST_LAB_MAX_WORKERS, else 2 for a class on a machine of two cores
    or more, 1 otherwise (one run alone is soonest on every core; a class's queue on two one-core workers:
    30 Quick runs done 1.4x sooner, docs/benchmarks.md)."""
    default = 2 if teacher_passcode() is not None and (os.cpu_count() or 1) >= 2 else 1
    try:
        return max(1, int(os.environ.get(MAX_WORKERS_ENV, "") or default))
    except ValueError:
        return default


def executor() -> str:
    """Where queued runs train: "local" (worker processes on this machine, the default) or "ray"."""
    value = os.environ.get(EXECUTOR_ENV, "").strip().lower() or "local"
    if value not in EXECUTORS:
        raise ConfigError(f"{EXECUTOR_ENV} must be one of {', '.join(EXECUTORS)}, not {value!r}.")
    return value


def ray_resources() -> tuple[float, float | None]:
    """(CPUs, GPUs) one run asks the Ray cluster for; GPUs None means 1 where the cluster has any."""
    return _positive(RAY_CPUS_ENV, "1"), (_positive(RAY_GPUS_ENV, "0", allow_zero=True)
                                          if os.environ.get(RAY_GPUS_ENV, "").strip() else None)


def teacher_passcode() -> str | None:
    """The passcode that makes a visitor the teacher; None (unset or blank) when no class is configured."""
    return os.environ.get(TEACHER_PASSCODE_ENV, "").strip() or None


def run_caps() -> tuple[float, float]:
    """(minutes, GB): the most one run may be estimated to take and to need (`mnist_core.cost`), and the
    minutes after which a run still training is stopped ("time limit"); default 60 minutes and 4 GB, which
    every preset passes with every named recipe even at half the measured rate."""
    return _positive(MAX_RUN_MINUTES_ENV, "60"), _positive(MAX_RUN_MEMORY_ENV, "4")


def _positive(name: str, default: str, allow_zero: bool = False) -> float:
    text = os.environ.get(name, "").strip() or default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, not {text!r}.")
    return value
