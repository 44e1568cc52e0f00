"""Saved models for tests: a model is its .keras file and the weights file beside it (`mnist_core.weights`)."""

import shutil
from pathlib import Path

from mnist_core.weights import weights_path


def copy_model(source: Path, target: Path) -> None:
    """Copy the model saved at `source` (a .keras file) and its weights file to `target` (a .keras path)."""
    shutil.copy(source, target)
    shutil.copy(weights_path(source), weights_path(target))
