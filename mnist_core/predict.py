"""Canvas image -> a 28x28 digit made the way MNIST's were -> class probabilities.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, anti-aliased)
and centred in 28x28 by their centre of mass. A bare resize of a canvas to 28x28 skips both
steps and fails on digits drawn small or off-centre.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import Architecture
from .store import RunStore

BOX = 20  # MNIST's size-normalisation box
SIZE = 28
INK_LEVEL = 0.1  # a pixel this bright (0-1) or more counts as ink
MIN_INK_PIXELS = 4  # fewer is an empty canvas (or a speck of anti-aliasing), not a digit
MAX_SIDE = 4096  # canvases are a few hundred pixels; refuse anything absurd


class ImageError(ValueError):
    """The image is not something a digit can be read from."""


class ModelFileError(RuntimeError):
    """A stored model cannot be loaded; the message says which file and why."""


def to_mnist(image: np.ndarray) -> np.ndarray | None:
    """Turn a canvas image (H, W), (H, W, 3) or (H, W, 4) into float32 28x28 in [0, 1].

    Ink is light on a dark or transparent background, as on MNIST. Returns None for a blank canvas.
    """
    ink = _ink(image)
    rows, cols = np.nonzero(ink >= INK_LEVEL)
    if rows.size < MIN_INK_PIXELS:
        return None
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    box = _fit_box(crop)
    return _centre_by_mass(box)


def _ink(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ImageError("Expected an image array of shape (H, W) or (H, W, channels).")
    if image.shape[0] > MAX_SIDE or image.shape[1] > MAX_SIDE:
        raise ImageError(f"Image is {image.shape[1]}x{image.shape[0]}; at most {MAX_SIDE} pixels a side.")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ImageError(f"Expected 1, 3 or 4 channels, got {image.shape[2]}.")
    if image.dtype.kind not in "uif":
        raise ImageError(f"Expected numeric pixels, got {image.dtype}.")
    scale = 255.0 if image.dtype.kind in "ui" else 1.0
    # Reduce to one channel before converting to float: the canvas sends 4 bytes a pixel.
    if image.ndim == 2:
        grey = image
    else:
        channels = [image[..., c] for c in range(min(3, image.shape[2]))]
        grey = np.maximum.reduce(channels)  # 25x faster than .max(axis=2) on interleaved bytes
    ink = grey.astype(np.float32) / scale
    if image.ndim == 3 and image.shape[2] == 4:
        ink *= image[..., 3].astype(np.float32) / scale  # a transparent pixel is background
    if scale == 1.0:
        ink = np.nan_to_num(ink)
    return np.clip(ink, 0.0, 1.0, out=ink)


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is BOX pixels, keeping the aspect ratio, with anti-aliasing."""
    from PIL import Image

    height, width = crop.shape
    scale = BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place `box` in a 28x28 frame so that its centre of mass lands on the centre pixel."""
    from scipy import ndimage

    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    cy, cx = ndimage.center_of_mass(box)
    top, left = int(round(SIZE / 2 - cy)), int(round(SIZE / 2 - cx))
    top = min(max(top, 0), SIZE - box.shape[0])  # a lopsided digit still fits the frame
    left = min(max(left, 0), SIZE - box.shape[1])
    out[top:top + box.shape[0], left:left + box.shape[1]] = box
    return out


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    digit: int
    confidence: float
    probabilities: np.ndarray  # ten floats summing to 1
    image: np.ndarray  # the 28x28 the model saw


BN_EPSILON = 1e-3  # Keras' BatchNormalization default, used by every model built here


class Predictor:
    """A trained model for inference: the architecture from a validated spec, weights from a `.keras` file.

    Only the file's weights are read (with h5py); its config is never deserialised. The forward
    pass is plain numpy, so the app's server never imports TensorFlow: Streamlit calls
    `keras.backend.clear_session()` after every rerun of any page once Keras is imported, which
    measured ~170 ms per rerun here.
    """

    def __init__(self, arch: Architecture, weights: str | Path):
        path = Path(weights)
        check_model_file(path)
        kernels, norms = _read_weights(path)
        self._steps = _plan(arch, kernels, norms, path)

    def probabilities(self, digit28: np.ndarray) -> np.ndarray:
        """Ten class probabilities for one 28x28 float image."""
        x = np.asarray(digit28, dtype=np.float32).reshape(SIZE, SIZE, 1)
        for step in self._steps:
            x = step(x)
        x = x - x.max()
        e = np.exp(x)
        return e / e.sum()

    def predict(self, image: np.ndarray) -> Prediction | None:
        """Preprocess a canvas image and classify it; None for a blank canvas."""
        digit28 = to_mnist(image)
        if digit28 is None:
            return None
        probs = self.probabilities(digit28)
        return Prediction(int(probs.argmax()), float(probs.max()), probs, digit28)


def _read_weights(path: Path) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    """Conv kernels and BatchNorm (gamma, beta, mean, variance), in layer order, from model.weights.h5."""
    import h5py

    def order(name: str) -> int:
        return int(name.rsplit("_", 1)[1]) if name[-1].isdigit() and "_" in name else 0

    try:
        with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as raw, \
                h5py.File(io.BytesIO(raw.read()), "r") as weights:
            layers = weights["layers"]
            convs = sorted((n for n in layers if n.startswith("conv2d")), key=order)
            norms = sorted((n for n in layers if n.startswith("batch_normalization")), key=order)
            kernels = [np.asarray(layers[n]["vars"]["0"], dtype=np.float32) for n in convs]
            stats = [[np.asarray(layers[n]["vars"][str(i)], dtype=np.float32) for i in range(4)] for n in norms]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"The model file {path} cannot be read ({err}).") from None
    return kernels, stats


def _plan(arch: Architecture, kernels: list, norms: list, path: Path) -> list:
    """The forward pass as a list of numpy steps, checking every weight's shape against the spec."""
    from .spec import Conv, MaxPool

    wrong = f"{path} does not hold weights for this architecture"
    convs = [layer for layer in arch.layers if isinstance(layer, Conv)]
    if len(kernels) != len(convs) or len(norms) != sum(layer.batchnorm for layer in convs):
        raise ModelFileError(f"{wrong} ({len(kernels)} convs and {len(norms)} BatchNorms in the file).")
    steps, channels, kernels, norms = [], 1, iter(kernels), iter(norms)
    for layer in arch.layers:
        if isinstance(layer, Conv):
            kernel = next(kernels)
            if kernel.shape != (layer.kernel, layer.kernel, channels, layer.filters):
                raise ModelFileError(f"{wrong} (a kernel of shape {kernel.shape}).")
            steps.append(_conv(kernel, layer.relu))
            channels = layer.filters
            if layer.batchnorm:
                gamma, beta, mean, variance = next(norms)
                if gamma.shape != (channels,):
                    raise ModelFileError(f"{wrong} (BatchNorm of {gamma.shape[0]} channels).")
                scale = gamma / np.sqrt(variance + BN_EPSILON)
                steps.append(lambda x, scale=scale, shift=beta - mean * scale: x * scale + shift)
        elif isinstance(layer, MaxPool):
            steps.append(_max_pool(layer.size))
        elif layer.kind == "gap":
            steps.append(lambda x: x.mean(axis=(0, 1)))
    return steps


def _conv(kernel: np.ndarray, relu: bool):
    """A 'valid' convolution without bias as one matrix product over the image's patches."""
    size = kernel.shape[0]
    matrix = kernel.reshape(-1, kernel.shape[3])

    def step(x: np.ndarray) -> np.ndarray:
        patches = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))
        height, width = patches.shape[:2]
        # (H', W', C, kh, kw) -> (H'W', kh * kw * C), the order of the kernel's (kh, kw, C) axes
        rows = patches.transpose(0, 1, 3, 4, 2).reshape(height * width, -1)
        out = (rows @ matrix).reshape(height, width, -1)
        return np.maximum(out, 0.0) if relu else out

    return step


def _max_pool(size: int):
    def step(x: np.ndarray) -> np.ndarray:
        height, width = x.shape[0] // size, x.shape[1] // size
        return x[:height * size, :width * size].reshape(height, size, width, size, -1).max(axis=(1, 3))

    return step


def check_model_file(path: Path) -> None:
    """Refuse anything but an existing, intact `.keras` archive (never `.h5` or a pickle)."""
    if path.suffix != ".keras":
        raise ModelFileError(f"{path.name}: only .keras model files are accepted.")
    if not path.is_file():
        raise ModelFileError(f"The model file {path} is missing (deleted or never saved).")
    try:
        with zipfile.ZipFile(path) as archive:
            if "model.weights.h5" not in archive.namelist() or archive.testzip() is not None:
                raise ModelFileError(f"The model file {path} is incomplete or damaged.")
    except zipfile.BadZipFile:
        raise ModelFileError(f"The model file {path} is corrupted (not a .keras archive).") from None


BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"


@dataclass(frozen=True)
class ModelChoice:
    """A trained model the Predict page can use: a run's, or the one shipped with the app."""

    label: str
    spec_json: str
    path: Path
    test_accuracy: float | None
    run_id: int | None = None


def bundled_model() -> ModelChoice:
    """The seed-final model shipped in `mnist_core/bundled`, so a first visitor can draw at once."""
    meta = json.loads((BUNDLED_DIR / "seed-final.json").read_text())
    return ModelChoice(f"Bundled seed-final ({meta['test_accuracy']:.2%})", json.dumps(meta["spec"]),
                       BUNDLED_DIR / "seed-final.keras", meta["test_accuracy"])


def available_models(store: RunStore) -> list[ModelChoice]:
    """Completed runs (newest first), then stopped ones that saved a model, then the bundled model."""
    stopped = [run for run in store.list(("stopped",)) if store.model_path(run.id).exists()]
    runs = store.list(("completed",)) + stopped
    choices = []
    for run in runs:
        accuracy = f"{run.test_accuracy:.2%}" if run.test_accuracy is not None else "n/a"
        choices.append(ModelChoice(f"Run {run.id}: {run.name}, {run.status}, {accuracy}", run.spec_json,
                                   store.model_path(run.id), run.test_accuracy, run.id))
    return choices + [bundled_model()]


def load_predictor(choice: ModelChoice) -> Predictor:
    """Rebuild the choice's architecture from its validated spec and load its weights."""
    return Predictor(Architecture.from_json(choice.spec_json), choice.path)


def enlarge(digit28: np.ndarray, factor: int = 5) -> np.ndarray:
    """The 28x28 input as uint8, scaled up with hard pixel edges for display."""
    return np.kron((digit28 * 255).astype(np.uint8), np.ones((factor, factor), dtype=np.uint8))
