"""MNIST loading and verification: the four canonical IDX files (gzip or raw) or Keras' mnist.npz."""

from __future__ import annotations

import functools
import gzip
import hashlib
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import config

# name -> (magic, shape, SHA-256 of the decompressed file), from the canonical MNIST release
CANONICAL = {
    "train-images-idx3-ubyte": (2051, (60000, 28, 28),
                                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    "train-labels-idx1-ubyte": (2049, (60000,),
                                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    "t10k-images-idx3-ubyte": (2051, (10000, 28, 28),
                               "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    "t10k-labels-idx1-ubyte": (2049, (10000,),
                               "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
}
HOW_TO_FIX = (f"Point {config.DATA_DIR_ENV} at a folder holding the four MNIST IDX files "
              f"(train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
              f"t10k-labels-idx1-ubyte[.gz]) or Keras' mnist.npz, or unset it to download MNIST with Keras.")


class MnistDataError(RuntimeError):
    """MNIST could not be loaded or failed verification; the message says what and how to fix it."""


@dataclass(frozen=True)
class Mnist:
    """Verified MNIST as uint8 arrays: images (N, 28, 28) and labels (N,)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def load_mnist(data_dir: str | Path | None = None) -> Mnist:
    """Load and verify MNIST from `data_dir`, else $MNIST_DATA_DIR, else Keras' download.

    Cached per process and folder. Raises MnistDataError with one clear message.
    """
    folder = data_dir if data_dir is not None else config.data_dir()
    return _load_cached(str(Path(folder).resolve()) if folder is not None else None)


@functools.lru_cache(maxsize=2)
def _load_cached(folder: str | None) -> Mnist:
    if folder is None:
        return _from_keras_download()
    path = Path(folder)
    if not path.is_dir():
        raise MnistDataError(f"MNIST folder {path} does not exist. {HOW_TO_FIX}")
    if all(_find(path, name) for name in CANONICAL):
        arrays = {name: _read_idx(_find(path, name), name) for name in CANONICAL}
        return Mnist(arrays["train-images-idx3-ubyte"], arrays["train-labels-idx1-ubyte"],
                     arrays["t10k-images-idx3-ubyte"], arrays["t10k-labels-idx1-ubyte"], source=str(path))
    if (path / "mnist.npz").is_file():
        return _from_npz(path / "mnist.npz")
    missing = [name for name in CANONICAL if not _find(path, name)]
    raise MnistDataError(f"MNIST folder {path} is missing {', '.join(missing)} (and has no mnist.npz). "
                         f"{HOW_TO_FIX}")


def _find(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def _read_idx(path: Path, name: str) -> np.ndarray:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise MnistDataError(f"{path} cannot be read or decompressed ({err}); the file is truncated or "
                             f"corrupted. Replace it with the canonical MNIST file. {HOW_TO_FIX}") from None
    magic, shape, digest = CANONICAL[name]
    expected_bytes = 4 + 4 * len(shape) + int(np.prod(shape))
    if len(raw) != expected_bytes:
        raise MnistDataError(f"{path} holds {len(raw):,} bytes once decompressed, expected {expected_bytes:,}: "
                             f"the file is truncated or not {name}. {HOW_TO_FIX}")
    header = struct.unpack(f">{1 + len(shape)}I", raw[:4 + 4 * len(shape)])
    if header != (magic, *shape):
        raise MnistDataError(f"{path} has IDX header {header}, expected {(magic, *shape)}. {HOW_TO_FIX}")
    _check_digest(raw, digest, str(path))
    return np.frombuffer(raw, dtype=np.uint8, offset=len(raw) - int(np.prod(shape))).reshape(shape)


def _check_digest(raw: bytes, digest: str, where: str) -> None:
    actual = hashlib.sha256(raw).hexdigest()
    if actual != digest:
        raise MnistDataError(f"{where} is corrupted: SHA-256 {actual[:16]}... differs from the canonical "
                             f"{digest[:16]}.... {HOW_TO_FIX}")


def _verify_arrays(arrays: tuple[np.ndarray, ...], where: str) -> Mnist:
    """Check shapes, dtypes, label range and the canonical digests of in-memory arrays."""
    for array, name in zip(arrays, CANONICAL):
        magic, shape, digest = CANONICAL[name]
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.shape != shape:
            got = (getattr(array, "dtype", type(array)), getattr(array, "shape", None))
            raise MnistDataError(f"{where}: {name} should be uint8 {shape}, got {got}. {HOW_TO_FIX}")
        if array.ndim == 1 and array.max() > 9:
            raise MnistDataError(f"{where}: {name} has labels outside 0-9. {HOW_TO_FIX}")
        # The canonical file is its IDX header followed by the raw bytes, so the same digest applies.
        header = struct.pack(f">{1 + len(shape)}I", magic, *shape)
        _check_digest(header + np.ascontiguousarray(array).tobytes(), digest, f"{where} ({name})")
    return Mnist(*arrays, source=where)


def _from_npz(path: Path) -> Mnist:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = tuple(npz[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    except (OSError, ValueError, KeyError, EOFError, zlib.error) as err:
        raise MnistDataError(f"{path} cannot be read as Keras' mnist.npz ({err}). {HOW_TO_FIX}") from None
    return _verify_arrays(arrays, str(path))


def _from_keras_download() -> Mnist:
    import keras

    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except Exception as err:  # keras raises several kinds for an offline machine
        raise MnistDataError(f"Downloading MNIST with Keras failed ({type(err).__name__}: {err}). "
                             f"{HOW_TO_FIX}") from None
    return _verify_arrays((x_train, y_train, x_test, y_test), "keras.datasets.mnist")


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], what every model here expects."""
    return (images.astype(np.float32) / 255.0)[..., None]
