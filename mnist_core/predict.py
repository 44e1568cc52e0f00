"""Canvas image -> a 28x28 digit made the way MNIST's were -> class probabilities.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, anti-aliased)
and centred in 28x28 by their centre of mass. A bare resize of a canvas to 28x28 skips both
steps and fails on digits drawn small or off-centre.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evidence import accuracy_text, learned
from .recipe import Recipe, recipe_name
from .report import recipe_text
from .runs import RunStore
from .spec import NUM_CLASSES, Architecture, Signal
from .strokes import StrokeChange, normalise_width
from .words import plural

BOX = 20  # MNIST's size-normalisation box
SIZE = 28
CANVAS_BRUSH = 20  # the Predict canvas' brush, px of 280: MNIST strokes are about 2 px of 28
INK_LEVEL = 0.1  # a pixel this bright (0-1) or more counts as ink
MIN_INK_PIXELS = 4  # fewer is an empty canvas (or a speck of anti-aliasing), not a digit
MAX_SIDE = 4096  # canvases are a few hundred pixels; refuse anything absurd
BATCH = 16  # images per strip: 16x fewer BLAS calls, and a chunk's patches (~6 MB) stay in cache


class ImageError(ValueError):
    """The image is not something a digit can be read from."""


class ModelFileError(RuntimeError):
    """A stored model cannot be loaded; the message says which file and why."""


def to_mnist(image: np.ndarray) -> np.ndarray | None:
    """Turn a canvas image (H, W), (H, W, 3) or (H, W, 4) into float32 28x28 in [0, 1].

    Ink is light on a dark or transparent background, as on MNIST. Returns None for a blank canvas.
    """
    return read_ink(ink(image))[0]


def read_ink(ink_map: np.ndarray, normalise_strokes: bool = True) -> tuple[np.ndarray | None, StrokeChange | None]:
    """The MNIST-style 28x28 of an ink map (H, W, 0-1, as `ink` gives), strokes brought near MNIST's
    width, and how they changed.

    (None, None) when the map holds no ink; `normalise_strokes=False` keeps the strokes as drawn.
    """
    crop = _ink_box(ink_map)
    if crop is None:
        return None, None
    if not normalise_strokes:
        return _centre_by_mass(_fit_box(crop)), None
    crop, strokes = normalise_width(crop, BOX / max(crop.shape))
    crop = _ink_box(crop) if strokes is not None and strokes.changed else crop
    if crop is None:
        return None, strokes
    return _centre_by_mass(_fit_box(crop)), strokes


def _ink_box(ink_map: np.ndarray) -> np.ndarray | None:
    """The smallest rectangle holding all the ink, or None for too little ink."""
    rows, cols = np.nonzero(ink_map >= INK_LEVEL)
    if rows.size < MIN_INK_PIXELS:
        return None
    return ink_map[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def ink(image: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0-1, from a canvas image; raises ImageError for unusable arrays."""
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


def limit_blas_threads() -> None:
    """Run numpy's matrix products on one thread in this process, for good.

    The forward pass multiplies small matrices (at most 676 x 288): threads only fight over the
    cores, worst of all beside a training worker. Measured on 2 cores: 1.3 ms a prediction on one
    thread against 8 ms with OpenBLAS' default threads (p95 1.7 against 15 ms).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    digit: int
    confidence: float
    probabilities: np.ndarray  # ten floats summing to 1
    image: np.ndarray  # the 28x28 the model saw


class Predictor:
    """A trained model for inference: the architecture from a validated spec, weights from a `.keras` file.

    The file's config is read as plain JSON, never deserialised, and its weights with h5py. The
    forward pass is plain numpy, so the app's server never imports TensorFlow: Streamlit calls
    `keras.backend.clear_session()` after every rerun of any page once Keras is imported, which
    measured ~170 ms per rerun here.
    """

    def __init__(self, arch: Architecture, weights: str | Path):
        path = Path(weights)
        check_model_file(path)
        self._layers = _plan(arch, _read_weights(path), path)
        self._arch = arch  # probabilities_batch reads the layers' geometry from it
        self._steps = [step for _, steps in self._layers for step in steps]

    def probabilities(self, digit28: np.ndarray) -> np.ndarray:
        """Ten class probabilities for one 28x28 float image."""
        x = np.asarray(digit28, dtype=np.float32).reshape(SIZE, SIZE, 1)
        for step in self._steps:
            x = step(x)
        return x

    def probabilities_batch(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 10) for N 28x28 float images: `probabilities` of each, in far fewer numpy calls.

        Convs and pools slide over space without padding, so one pass over images stacked into a tall
        strip gives each image its own feature map, provided each image starts on a multiple of the
        layers' stride (`Signal.jump`); the rows where two images meet are computed and dropped. Global
        pooling and softmax, which see a whole map, then run per image.
        """
        images = np.asarray(images, dtype=np.float32).reshape(-1, SIZE, SIZE)
        spatial, rest, signal = self._strip_plan()
        pitch = -(-SIZE // signal.jump) * signal.jump  # rows per image in the strip, a multiple of the stride
        out = []
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH]
            strip = np.zeros((len(chunk), pitch, SIZE), dtype=np.float32)
            strip[:, :SIZE] = chunk
            x = strip.reshape(-1, SIZE, 1)
            for step in spatial:
                x = step(x)
            rows = np.arange(len(chunk))[:, None] * (pitch // signal.jump) + np.arange(signal.size)
            for features in x[rows]:
                for step in rest:
                    features = step(features)
                out.append(features)
        return np.asarray(out, dtype=np.float32).reshape(len(images), NUM_CLASSES)

    def _strip_plan(self) -> tuple[list, list, Signal]:
        """The steps of the layers that keep a spatial map, the steps after them, and that map's Signal."""
        signal = spatial_signal = Signal()
        spatial, rest = [], []
        for layer, (_, steps) in zip(self._arch.layers, self._layers):
            signal = layer.output(signal)
            if signal.flat:
                rest += steps  # global pooling and all after it see whole maps
            else:
                spatial, spatial_signal = spatial + steps, signal
        return spatial, rest, spatial_signal

    def feature_maps(self, digit28: np.ndarray) -> list[tuple[str, np.ndarray]]:
        """What each conv layer outputs for one 28x28 image: (its name, e.g. 'conv 3', an H x W x C array)."""
        x, maps = np.asarray(digit28, dtype=np.float32).reshape(SIZE, SIZE, 1), []
        for name, steps in self._layers:
            for step in steps:
                x = step(x)
            if name.startswith("conv"):
                maps.append((name, x))
        return maps

    def predict(self, image: np.ndarray) -> Prediction | None:
        """Preprocess a canvas image and classify it; None for a blank canvas."""
        digit28 = to_mnist(image)
        if digit28 is None:
            return None
        probs = self.probabilities(digit28)
        return Prediction(int(probs.argmax()), float(probs.max()), probs, digit28)


def _read_weights(path: Path) -> dict[str, tuple[str, list[np.ndarray]]]:
    """Each Keras layer's class name and arrays, by the layer's name (conv1, bn1, ...), in model order.

    config.json lists the layers in order. Keras 3 saves a Sequential's weights under
    `layers/<class name in snake_case>`, then `_1`, `_2`, ... for later layers of the same class.
    """
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            raw = archive.read("model.weights.h5")
        if config.get("class_name") != "Sequential":
            raise ValueError(f"a {config.get('class_name')!r:.40} model, not a Sequential")
        listed = [(item["config"]["name"], item["class_name"]) for item in config["config"]["layers"]]
        layers, seen = {}, {}
        with h5py.File(io.BytesIO(raw), "r") as weights:
            for name, class_name in listed:
                group = _snake_case(class_name)
                seen[group] = seen.get(group, -1) + 1
                group += f"_{seen[group]}" if seen[group] else ""
                arrays = weights["layers"].get(f"{group}/vars", {})
                layers[name] = (class_name, [np.asarray(arrays[str(i)], dtype=np.float32) for i in range(len(arrays))])
    except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile) as err:
        raise ModelFileError(f"The model file {path} cannot be read ({err}).") from None
    return layers


def _snake_case(name: str) -> str:
    """Keras' own `to_snake_case`: 'BatchNormalization' -> 'batch_normalization', 'Conv2D' -> 'conv2d'."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", re.sub(r"\W+", "", name))
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _plan(arch: Architecture, layers: dict[str, tuple[str, list[np.ndarray]]],
          path: Path) -> list[tuple[str, list]]:
    """The forward pass as numpy steps grouped by spec layer, named as the Architecture page names them
    ('conv 3', 'pool', ...); each layer fetches its Keras layers by name and checks them."""
    wrong = f"{path} does not hold weights for this architecture"
    claimed = set()

    def fetch(name: str, class_name: str, shapes) -> list[np.ndarray]:
        if name not in layers:
            raise ModelFileError(f"{wrong}: it has no layer named {name}.")
        found, arrays = layers[name]
        if found != class_name:
            raise ModelFileError(f"{wrong}: its layer {name} is a {found}, not a {class_name}.")
        if [a.shape for a in arrays] != [tuple(shape) for shape in shapes]:
            raise ModelFileError(f"{wrong}: its layer {name} holds arrays of shapes "
                                 f"{[a.shape for a in arrays]}, not {list(shapes)}.")
        claimed.add(name)
        return arrays

    x, steps = Signal(), []
    for index, layer in enumerate(arch.layers, 1):
        name = f"conv {arch.conv_number(index - 1)}" if layer.is_conv else layer.kind
        try:
            steps.append((name, layer.numpy_steps(index, x, fetch)))
        except NotImplementedError:
            raise ModelFileError(f"The numpy forward pass has no step for layer kind {layer.kind!r}.") from None
        x = layer.output(x)
    extra = [f"{name} ({class_name})" for name, (class_name, _) in layers.items()
             if name not in claimed and class_name != "InputLayer"]
    if extra:
        raise ModelFileError(f"{wrong}: it also has layers {', '.join(extra)}.")
    return steps


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

    title: str  # 'Run 3: seed-final, stopped' or 'Bundled seed-final'
    spec_json: str
    path: Path
    test_accuracy: float | None
    run_id: int | None = None
    description: str = ""  # how it was trained, in one line
    from_study: bool = False  # one of a study's many runs

    @property
    def spec(self) -> Architecture:
        """The validated architecture; raises SpecError if the spec is damaged."""
        return Architecture.from_json(self.spec_json)

    @property
    def learned(self) -> bool:
        """Whether its test accuracy is clearly above always answering one digit (`evidence.learned`)."""
        return learned(self.test_accuracy)

    @property
    def label(self) -> str:
        return f"{self.title} ({accuracy_text(self.test_accuracy)})"


def bundled_model() -> ModelChoice:
    """The model shipped in `mnist_core/bundled`, so a first visitor can draw at once."""
    meta = json.loads((BUNDLED_DIR / "model.json").read_text())
    recipe = Recipe.from_dict(meta["recipe"])
    return ModelChoice(f"Bundled {meta['spec']['name']}", json.dumps(meta["spec"]), BUNDLED_DIR / "model.keras",
                       meta["test_accuracy"],
                       # Two lines at 1024 px, so the canvas below still fits a 768 px projector.
                       description=f"Shipped with the app: {meta['spec']['name']}, {meta['test_accuracy']:.2%} on "
                                   f"MNIST's 10,000 test digits after the {recipe_name(recipe)} recipe "
                                   f"({plural(recipe.epochs, 'epoch')}{', augmented' if recipe.augments else ''}; the Train "
                                   f"page shows its settings).")


def available_models(store: RunStore) -> list[ModelChoice]:
    """Completed runs and stopped runs that finished an epoch and saved a model, and the bundled model, most
    accurate first (the newest first among equals). A run stopped before its first epoch ended has untrained
    weights: not worth drawing for. Models that did not learn come last (`ModelChoice.learned`)."""
    runs = [run for run in store.list(("completed", "stopped"))
            if run.has_model and (run.status == "completed" or store.model_path(run.id).exists())]
    choices = [ModelChoice(f"Run {run.id}: {run.name}, {run.status}", run.spec_json, store.model_path(run.id),
                           run.test_accuracy, run.id,
                           f"Run {run.id}, {run.status}: test accuracy {accuracy_text(run.test_accuracy)}. Trained in "
                           f"this lab, recipe: {recipe_text(run.recipe)}.", run.study_id is not None)
               for run in runs] + [bundled_model()]
    # sorted() keeps the store's newest-first order among equal accuracies
    return sorted(choices, key=lambda choice: -1.0 if choice.test_accuracy is None else -choice.test_accuracy)


def best_model(choices: list[ModelChoice]) -> ModelChoice:
    """The most accurate choice that learned (choices come most accurate first, as `available_models` gives them)."""
    return next((choice for choice in choices if choice.learned), choices[0])


def load_predictor(choice: ModelChoice) -> Predictor:
    """Rebuild the choice's architecture from its validated spec and load its weights."""
    return Predictor(choice.spec, choice.path)


def enlarge(digit28: np.ndarray, factor: int = 5) -> np.ndarray:
    """The 28x28 input as uint8, scaled up with hard pixel edges for display."""
    return np.kron((digit28 * 255).astype(np.uint8), np.ones((factor, factor), dtype=np.uint8))
