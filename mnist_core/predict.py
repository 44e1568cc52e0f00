"""The numpy inference engine: a model's weights file (`mnist_core.weights`) -> class probabilities.

The forward pass is plain numpy, so the app's server never imports TensorFlow: Streamlit calls
`keras.backend.clear_session()` after every rerun of any page once Keras is imported, which
measured ~170 ms per rerun here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .reading import SIZE, read_canvas
from .spec import NUM_CLASSES, Architecture, SpecError, Signal
from .weights import WEIGHT_NAMES, ModelFileError, read_weights

BATCH = 16  # images per strip: 16x fewer BLAS calls, and a chunk's patches (~6 MB) stay in cache


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
    """A trained model for inference: the architecture from a validated spec, weights from its weights file."""

    def __init__(self, arch: Architecture, weights: str | Path):
        path = Path(weights)
        self._layers = _plan(arch, path)
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
        digit28 = read_canvas(image).digit28
        if digit28 is None:
            return None
        probs = self.probabilities(digit28)
        return Prediction(int(probs.argmax()), float(probs.max()), probs, digit28)


def _plan(arch: Architecture, path: Path) -> list[tuple[str, list]]:
    """The forward pass as numpy steps grouped by spec layer, named as the Architecture page names them
    ('conv 3', 'pool', ...); each layer fetches its weights by name (`mnist_core.weights`) and checks them."""
    spec_json, weights = read_weights(path)
    wrong = f"{path.name} does not hold weights for this architecture"
    try:
        saved = Architecture.from_json(spec_json)
    except SpecError as err:
        raise ModelFileError(f"The weights file {path.name} holds a damaged spec ({err})") from None
    if saved.layers != arch.layers:
        raise ModelFileError(f"{wrong}: it was saved for {saved.to_code()}.")
    claimed = set()

    def fetch(name: str, class_name: str, shapes) -> list[np.ndarray]:
        names = [f"{name}/{weight}" for weight in WEIGHT_NAMES.get(class_name, ())]
        missing = [item for item in names if item not in weights]
        if missing:
            raise ModelFileError(f"{wrong}: it has no array {missing[0]}.")
        arrays = [weights[item] for item in names]
        if [a.shape for a in arrays] != [tuple(shape) for shape in shapes]:
            raise ModelFileError(f"{wrong}: its layer {name} holds arrays of shapes "
                                 f"{[a.shape for a in arrays]}, not {list(shapes)}.")
        claimed.update(names)
        return arrays

    x, steps = Signal(), []
    for index, layer in enumerate(arch.layers, 1):
        name = f"conv {arch.conv_number(index - 1)}" if layer.is_conv else layer.kind
        try:
            steps.append((name, layer.numpy_steps(index, x, fetch)))
        except NotImplementedError:
            raise ModelFileError(f"The numpy forward pass has no step for layer kind {layer.kind!r}.") from None
        x = layer.output(x)
    extra = sorted(set(weights) - claimed)
    if extra:
        raise ModelFileError(f"{wrong}: it also has arrays {', '.join(extra)}.")
    return steps
