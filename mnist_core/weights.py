"""The weights file: a trained model's weights in a stable, documented form, for inference without Keras.

Beside each `model.keras` lies `model.weights.npz` (`weights_path`), written whenever a model is saved
(`mnist_core.runner.save_model`). It is a NumPy `.npz` archive (a zip of `.npy` arrays, read with
`numpy.load(path, allow_pickle=False)`) holding:

- `format`: an int, FORMAT_VERSION (1).
- `spec`: a 0-d string array, the spec JSON (`Architecture.to_json`) the model was built from.
- one float32 array per layer weight, named `<Keras layer>/<weight>` after the layers `mnist_core.layers`
  builds, i being the spec layer's 1-based position: `conv<i>/kernel` (kernel, kernel, channels in,
  filters), or for a separable conv `conv<i>/depthwise_kernel` (kernel, kernel, channels in, 1) and
  `conv<i>/pointwise_kernel` (1, 1, channels in, filters); `bn<i>/gamma`, `bn<i>/beta`, `bn<i>/moving_mean`,
  `bn<i>/moving_variance` (filters,).
  Dropout, pooling and softmax layers have no weights, and no arrays.

Nothing here depends on how Keras lays out its own `.keras` archive, so a Keras upgrade cannot break
prediction. A run saved before this file existed has only `model.keras`: `ensure_weights` builds the
weights file from it once, through Keras' public `keras.saving.load_model`, in a child process, so that
the app's server never imports Keras (see `mnist_core.predict`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from .files import replaced_at_once

FORMAT_VERSION = 1
WEIGHT_NAMES = {"Conv2D": ("kernel",), "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel"),
                "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance")}
CONVERT_TIMEOUT = 300  # seconds: importing TensorFlow and loading one small model takes ~10 on a busy laptop


class ModelFileError(RuntimeError):
    """A stored model cannot be loaded; the message says which file and why."""


def weights_path(model_path: Path) -> Path:
    """The weights file beside a `.keras` model file: run.keras -> run.weights.npz."""
    return Path(model_path).with_suffix(".weights.npz")


def write_weights(model, path: Path, spec_json: str) -> None:
    """Write a Keras model's weights and its spec JSON to `path`, atomically: a reader never sees half a file."""
    arrays = {f"{layer.name}/{weight.name}": np.asarray(weight.numpy(), dtype=np.float32)
              for layer in model.layers for weight in layer.weights}
    with replaced_at_once(path, suffix=".npz") as temp:  # numpy adds '.npz' to a path without it
        np.savez(temp, format=np.int64(FORMAT_VERSION), spec=np.array(spec_json), **arrays)


def read_weights(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """The spec JSON and the weight arrays by name from a weights file; raises ModelFileError."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        version, spec = int(arrays.pop("format")), str(arrays.pop("spec"))
    except FileNotFoundError:
        raise ModelFileError(f"The weights file {path.name} is missing (deleted or never saved).") from None
    except (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"The weights file {path.name} cannot be read ({err}).") from None
    if version != FORMAT_VERSION:
        raise ModelFileError(f"The weights file {path.name} is in format {version}; "
                             f"this app reads format {FORMAT_VERSION}.")
    return spec, {name: array.astype(np.float32, copy=False) for name, array in arrays.items()}


def check_model_file(path: Path) -> None:
    """Refuse anything but an existing `.keras` archive with its weights listed (never `.h5` or a pickle), and
    a damaged weights file beside it. Reads only the archives' directories: cheap enough for every run listed."""
    if path.suffix != ".keras":
        raise ModelFileError(f"{path.name}: only .keras model files are accepted.")
    if not path.is_file():
        raise ModelFileError(f"The model file {path.name} is missing (deleted or never saved).")
    for archive_path, member in ((path, "model.weights.h5"), (weights_path(path), "spec.npy")):
        if archive_path != path and not archive_path.exists():
            continue  # built from the .keras file when first used
        try:
            with zipfile.ZipFile(archive_path) as archive:
                if member not in archive.namelist():
                    raise ModelFileError(f"The model file {archive_path.name} is incomplete or damaged.")
        except (zipfile.BadZipFile, OSError):
            raise ModelFileError(f"The model file {archive_path.name} is corrupted (not a {archive_path.suffix} "
                                 f"archive).") from None


def ensure_weights(model_path: Path, spec_json: str) -> Path:
    """The weights file of the model saved at `model_path`, built once from the `.keras` file if missing.

    Raises ModelFileError, with what went wrong in one sentence, when there is no model or Keras cannot load it.
    """
    model_path = Path(model_path)
    path = weights_path(model_path)
    if path.is_file():
        return path
    check_model_file(model_path)
    try:
        done = subprocess.run([sys.executable, "-m", "mnist_core.weights", str(model_path)], input=spec_json,
                              capture_output=True, text=True, timeout=CONVERT_TIMEOUT,
                              cwd=Path(__file__).resolve().parent.parent,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    except (OSError, subprocess.TimeoutExpired) as err:
        raise ModelFileError(f"The model file {model_path.name} could not be prepared for prediction "
                             f"({type(err).__name__}).") from None
    if done.returncode != 0 or not path.is_file():
        reason = (done.stdout.strip().splitlines() or [f"Keras exited with status {done.returncode}"])[-1]
        raise ModelFileError(f"Keras cannot load the model file {model_path.name} to prepare it for prediction "
                             f"({reason}).")
    return path


def _convert(model_path: Path, spec_json: str) -> None:
    """Load a `.keras` file with Keras' public API and write its weights file."""
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    write_weights(model, weights_path(model_path), spec_json)


if __name__ == "__main__":  # the child process of `ensure_weights`: python -m mnist_core.weights MODEL < SPEC
    try:
        _convert(Path(sys.argv[1]), sys.stdin.read())
    except Exception as err:  # any failure becomes one line for the page, never a traceback
        print(f"{type(err).__name__}: {err}".replace("\n", " ")[:300])
        sys.exit(1)
