"""A trained model as a file other programs run: ONNX (onnxruntime and most runtimes) or TFLite (LiteRT,
for phones and microcontrollers), written by Keras 3's own `model.export`.

Both take float32 images shaped (N, 28, 28, 1), white digit on black, pixels scaled to 0-1 as MNIST is, and
give 10 probabilities per image. Keras (and TensorFlow) are imported only in the child process that writes
the file, so the app's server never holds them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .files import replaced_at_once
from .weights import ModelFileError, check_model_file

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}  # format -> file ending
KERAS_FORMAT = {"onnx": "onnx", "tflite": "litert"}  # Keras calls TFLite by its new name, LiteRT
NAMES = {"onnx": "ONNX", "tflite": "TFLite"}
EXPORT_TIMEOUT = 300  # seconds: a TensorFlow import and one conversion, on a busy 2-core machine
QUEUE_TIMEOUT = 60  # seconds an export waits for the one before it
# One export at a time per process (the app's server is one): each child holds TensorFlow (~1 GB), and a
# class may press at once.
_ONE_AT_A_TIME = threading.Lock()
FAILED = "export failed: "  # the child's one line for the page, told apart from whatever else it prints
# The child is niced and single-threaded: a conversion waits on the trainings it shares the cores with.
CHILD_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
CHILD_NICENESS = 10


class ExportError(RuntimeError):
    """A model that cannot be exported, with why in one sentence."""


class _Unreadable(Exception):
    """In the child: Keras could not load the model file."""


def check_format(name: str) -> str:
    """`name` if it is an export format (`FORMATS`), else ExportError naming the ones there are."""
    if name not in FORMATS:
        raise ExportError(f"Unknown export format {name!r}: use {' or '.join(FORMATS)}.")
    return name


def exported_path(model_path: Path, fmt: str, folder: Path | None = None) -> Path:
    """Where `model_path`'s export in `fmt` lies: beside the model (a run's folder), or in `folder`."""
    return (folder or Path(model_path).parent) / (Path(model_path).stem + FORMATS[check_format(fmt)])


def ready_export(model_path: Path, fmt: str, folder: Path | None = None) -> Path | None:
    """The export made earlier from this very model file, or None (never made, or older than the model)."""
    path = exported_path(model_path, fmt, folder)
    return path if _made_from(path, Path(model_path)) else None


def export_model(model_path: Path, fmt: str, target: Path) -> Path:
    """Export the `.keras` model at `model_path` as `fmt` to `target` (returned, replaced whole), in a child
    process, one at a time per process.

    Raises ExportError with one sentence that names no folder when the model file is unusable, the
    conversion fails, or the exports before it take too long.
    """
    model_path, target = _checked(model_path, fmt), Path(target).resolve()  # the child runs elsewhere
    with _one_at_a_time():
        return _export_in_child(model_path, fmt, target)


def ensure_export(model_path: Path, fmt: str, folder: Path | None = None) -> Path:
    """The app's kept export of `model_path` (`exported_path`), made now unless made before from this very
    model file: a class pressing Make at once converts it once. Raises ExportError as `export_model` does."""
    model_path = _checked(model_path, fmt)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)  # never a run's folder: one deleted meanwhile stays gone
    with _one_at_a_time():
        return ready_export(model_path, fmt, folder) or _export_in_child(
            model_path, fmt, exported_path(model_path, fmt, folder).resolve())


def _checked(model_path: Path, fmt: str) -> Path:
    check_format(fmt)
    try:
        check_model_file(Path(model_path))
    except ModelFileError as err:
        raise ExportError(str(err)) from None
    return Path(model_path).resolve()


@contextmanager
def _one_at_a_time() -> Iterator[None]:
    if not _ONE_AT_A_TIME.acquire(timeout=QUEUE_TIMEOUT):
        raise ExportError("Other exports are being made on this server; try again in a minute.")
    try:
        yield
    finally:
        _ONE_AT_A_TIME.release()


def _made_from(export: Path, model_path: Path) -> bool:
    """Whether `export` exists and is no older than the model file it would be made from."""
    try:
        return export.stat().st_mtime >= model_path.stat().st_mtime
    except OSError:
        return False


def _export_in_child(model_path: Path, fmt: str, target: Path) -> Path:
    try:
        done = subprocess.run([sys.executable, "-m", "mnist_core.export", str(model_path), fmt, str(target)],
                              capture_output=True, text=True, errors="replace", timeout=EXPORT_TIMEOUT,
                              cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **CHILD_ENV})
    except (OSError, subprocess.TimeoutExpired) as err:
        for temp in target.parent.glob(f".{target.name}.*"):  # a killed child leaves its staged file
            temp.unlink(missing_ok=True)
        raise ExportError(f"The {NAMES[fmt]} export of {model_path.name} did not finish ({type(err).__name__}).")
    if done.returncode != 0 or not target.is_file():
        said = [line[len(FAILED):] for line in done.stdout.splitlines() if line.startswith(FAILED)]
        reason = said[-1] if said else f"exit status {done.returncode}"
        print(f"export of {model_path} to {fmt} failed: {reason}", file=sys.stderr)  # the server log: details
        # The line's first part only: what failed, and how; Keras' own words may name folders.
        what, _, how = reason.partition(": ")
        raise ExportError(f"The {NAMES[fmt]} export failed: {what}" + (f" ({how.split(':')[0]})." if how else "."))
    return target


def _export(model_path: Path, fmt: str, target: Path) -> None:
    """Load the `.keras` file with Keras' public API and write its `fmt` file at `target`, whole or not at all."""
    import keras
    import numpy as np

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as err:
        raise _Unreadable(f"{type(err).__name__}: {err}") from None
    model(np.zeros((1, *model.input_shape[1:]), np.float32))  # export needs a model that has been called
    with replaced_at_once(target, suffix=FORMATS[fmt]) as temp:
        model.export(str(temp), format=KERAS_FORMAT[fmt], verbose=False)
        temp.chmod(0o644)  # a file to share, not a private temp file


if __name__ == "__main__":  # the child process of `export_model`: python -m mnist_core.export MODEL FORMAT TARGET
    os.nice(CHILD_NICENESS)
    try:
        _export(Path(sys.argv[1]), check_format(sys.argv[2]), Path(sys.argv[3]))
    except Exception as err:  # each failure becomes one line for the page, never a traceback
        said = (f"Keras cannot read the model file, which is damaged: {err}" if isinstance(err, _Unreadable)
                else f"the conversion failed: {type(err).__name__}: {err}")
        print(FAILED + said.replace("\n", " ")[:300])
        sys.exit(1)
