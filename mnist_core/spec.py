"""The architecture as data: immutable layer dataclasses, validation, JSON and URL codes, presets.

Nothing here imports TensorFlow: the Architecture page counts parameters from these
objects alone, and `mnist_core.model.build_model` turns them into Keras layers.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Union

INPUT_SIZE = 28  # MNIST images are 28x28 ...
INPUT_CHANNELS = 1  # ... and grey.
NUM_CLASSES = 10
KERNEL_SIZES = (1, 3, 5)
MAX_FILTERS = 256  # far beyond any 15K-parameter network, small enough to keep a typo harmless
MAX_LAYERS = 32
MAX_SPEC_BYTES = 20_000  # a spec JSON is a few hundred bytes; anything larger is not a spec


class SpecError(ValueError):
    """An architecture that cannot be built; the message names the layer at fault."""


@dataclass(frozen=True)
class Conv:
    """A Conv2D without bias, optionally followed by BatchNorm and Dropout."""

    filters: int
    kernel: int = 3  # the notebook uses 3x3 for features and 1x1 to mix channels
    batchnorm: bool = False
    dropout: bool = False
    dropout_rate: float = 0.1  # the notebook's rate; kept when dropout is toggled off
    relu: bool = True  # off only for the conv that produces the class scores

    kind = "conv"

    @property
    def label(self) -> str:
        return f"Conv {self.kernel}x{self.kernel}"


@dataclass(frozen=True)
class MaxPool:
    """MaxPooling2D with a square window and the same stride."""

    size: int = 2

    kind = "maxpool"

    @property
    def label(self) -> str:
        return f"MaxPool {self.size}x{self.size}"


@dataclass(frozen=True)
class GlobalAvgPool:
    """GlobalAveragePooling2D: one number per channel, no parameters."""

    kind = "gap"
    label = "GlobalAvgPool"


@dataclass(frozen=True)
class Softmax:
    """The softmax over the ten class scores."""

    kind = "softmax"
    label = "Softmax"


Layer = Union[Conv, MaxPool, GlobalAvgPool, Softmax]
_KINDS: dict[str, type] = {cls.kind: cls for cls in (Conv, MaxPool, GlobalAvgPool, Softmax)}
_FIELDS: dict[str, dict[str, type]] = {
    "conv": {"filters": int, "kernel": int, "batchnorm": bool, "dropout": bool,
             "dropout_rate": float, "relu": bool},
    "maxpool": {"size": int},
    "gap": {},
    "softmax": {},
}


@dataclass(frozen=True)
class Architecture:
    """An ordered list of layers on a 28x28x1 input, validated on construction."""

    layers: tuple[Layer, ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _validate(self)

    @property
    def convs(self) -> list[int]:
        """Indexes (into `layers`) of the conv layers, in order."""
        return [i for i, layer in enumerate(self.layers) if isinstance(layer, Conv)]

    def conv_number(self, index: int) -> int:
        """1-based conv number of layer `index`, as the notebook counts ("conv 6")."""
        return self.convs.index(index) + 1

    def with_layer(self, index: int, **changes: Any) -> Architecture:
        """A copy with layer `index` changed; raises SpecError if the result is invalid."""
        layers = list(self.layers)
        layers[index] = replace(layers[index], **changes)
        return Architecture(tuple(layers), name="custom")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: {"name": ..., "layers": [{"kind": ..., ...}, ...]}."""
        return {"name": self.name, "layers": [_layer_to_dict(layer) for layer in self.layers]}

    def to_json(self) -> str:
        """Pretty JSON of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any) -> Architecture:
        """Parse and validate the `to_dict` form; raises SpecError naming what is wrong."""
        if not isinstance(data, dict):
            raise SpecError("A spec must be a JSON object with a 'layers' list.")
        unknown = set(data) - {"name", "layers"}
        if unknown:
            raise SpecError(f"Unknown spec field(s): {', '.join(sorted(unknown))}.")
        layers = data.get("layers")
        if not isinstance(layers, list) or not layers:
            raise SpecError("A spec needs a non-empty 'layers' list.")
        if len(layers) > MAX_LAYERS:
            raise SpecError(f"A spec may have at most {MAX_LAYERS} layers, this one has {len(layers)}.")
        name = data.get("name", "custom")
        if not isinstance(name, str) or len(name) > 80:
            raise SpecError("The spec's 'name' must be a string of at most 80 characters.")
        return cls(tuple(_layer_from_dict(i, item) for i, item in enumerate(layers, 1)), name=name)

    @classmethod
    def from_json(cls, text: str | bytes) -> Architecture:
        """Parse a spec from JSON text; malformed JSON gets a SpecError with the position."""
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"A spec file is at most {MAX_SPEC_BYTES:,} bytes; this one is {len(text):,}.")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpecError(f"The spec is not valid JSON: {err}.") from None
        return cls.from_dict(data)

    def to_code(self) -> str:
        """Short URL-safe code, e.g. 'c3x16bd0.1_p2_c1x10l_gap_sm', for query parameters."""
        return "_".join(_layer_code(layer) for layer in self.layers)

    @classmethod
    def from_code(cls, code: str) -> Architecture:
        """Parse `to_code` output; raises SpecError naming the token at fault."""
        if not code or len(code) > 2_000:
            raise SpecError("The architecture code in the link is empty or too long.")
        tokens = code.split("_")
        if len(tokens) > MAX_LAYERS:
            raise SpecError(f"A spec may have at most {MAX_LAYERS} layers, the link has {len(tokens)}.")
        return cls(tuple(_layer_from_code(i, token) for i, token in enumerate(tokens, 1)))


def _describe(index: int, layer: Layer) -> str:
    return f"Layer {index} ({layer.label})"


def _validate(arch: Architecture) -> None:
    """Walk the layers, tracking the spatial size, and reject anything Keras would refuse."""
    size = INPUT_SIZE
    layers = arch.layers
    if not layers:
        raise SpecError("An architecture needs at least one layer.")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"An architecture may have at most {MAX_LAYERS} layers.")
    for index, layer in enumerate(layers, 1):
        where = _describe(index, layer)
        if isinstance(layer, Conv):
            if isinstance(layer.filters, bool) or not isinstance(layer.filters, int):
                raise SpecError(f"{where}: filters must be a whole number.")
            if not 1 <= layer.filters <= MAX_FILTERS:
                raise SpecError(f"{where}: filters must be between 1 and {MAX_FILTERS}, got {layer.filters}.")
            if layer.kernel not in KERNEL_SIZES:
                raise SpecError(f"{where}: kernel must be one of {KERNEL_SIZES}, got {layer.kernel}.")
            rate = layer.dropout_rate
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) \
                    or not 0 <= rate < 1:
                raise SpecError(f"{where}: dropout rate must be in [0, 1), got {rate}.")
            size = size - layer.kernel + 1
        elif isinstance(layer, MaxPool):
            if isinstance(layer.size, bool) or not isinstance(layer.size, int) or not 2 <= layer.size <= 4:
                raise SpecError(f"{where}: pool size must be 2, 3 or 4, got {layer.size}.")
            size = size // layer.size
        elif isinstance(layer, GlobalAvgPool):
            if index != len(layers) - 1 or not isinstance(layers[-1], Softmax):
                raise SpecError(f"{where}: global average pooling must come just before the final softmax.")
        elif isinstance(layer, Softmax):
            if index != len(layers):
                raise SpecError(f"{where}: softmax must be the last layer.")
        else:
            raise SpecError(f"Layer {index}: unknown layer type {type(layer).__name__}.")
        if size < 1:
            raise SpecError(f"{where}: the spatial size collapses to 0 here; remove a layer before it "
                            f"or use a smaller kernel.")
    if len(layers) < 3 or not isinstance(layers[-1], Softmax) or not isinstance(layers[-2], GlobalAvgPool):
        raise SpecError("The spec must end with global average pooling and softmax, "
                        "so that it outputs 10 class probabilities.")
    head_index = len(layers) - 2
    head = layers[head_index - 1]
    if not isinstance(head, Conv) or head.filters != NUM_CLASSES:
        raise SpecError(f"{_describe(head_index, head)} feeds the classifier: it must be a conv with "
                        f"{NUM_CLASSES} filters, one per digit, so the spec ends in 10 classes.")


def _layer_to_dict(layer: Layer) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": layer.kind}
    for field in _FIELDS[layer.kind]:
        data[field] = getattr(layer, field)
    return data


def _layer_from_dict(index: int, item: Any) -> Layer:
    if not isinstance(item, dict):
        raise SpecError(f"Layer {index}: expected an object like {{\"kind\": \"conv\", ...}}, got {item!r:.40}.")
    kind = item.get("kind")
    if kind not in _KINDS:
        raise SpecError(f"Layer {index}: unknown layer kind {kind!r}; use one of {', '.join(_KINDS)}.")
    fields = _FIELDS[kind]
    unknown = set(item) - set(fields) - {"kind"}
    if unknown:
        raise SpecError(f"Layer {index} ({kind}): unknown field(s) {', '.join(sorted(unknown))}.")
    values = {}
    for field, expected in fields.items():
        if field not in item:
            continue
        value = item[field]
        # JSON has one number type: accept 1 for 1.0, but never true for 1.
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise SpecError(f"Layer {index} ({kind}): '{field}' must be {expected.__name__}, got {value!r:.40}.")
        values[field] = value
    if kind == "conv" and "filters" not in values:
        raise SpecError(f"Layer {index} (conv): 'filters' is required.")
    return _KINDS[kind](**values)


_CONV_CODE = re.compile(r"c(?P<kernel>\d)x(?P<filters>\d{1,4})(?P<bn>b)?(?:d(?P<rate>0?\.\d{1,4}))?(?P<linear>l)?")


def _layer_code(layer: Layer) -> str:
    if isinstance(layer, Conv):
        rate = f"d{layer.dropout_rate:g}" if layer.dropout else ""
        return f"c{layer.kernel}x{layer.filters}{'b' if layer.batchnorm else ''}{rate}{'' if layer.relu else 'l'}"
    if isinstance(layer, MaxPool):
        return f"p{layer.size}"
    return {"gap": "gap", "softmax": "sm"}[layer.kind]


def _layer_from_code(index: int, token: str) -> Layer:
    if token == "gap":
        return GlobalAvgPool()
    if token == "sm":
        return Softmax()
    if re.fullmatch(r"p\d", token):
        return MaxPool(int(token[1:]))
    match = _CONV_CODE.fullmatch(token)
    if not match:
        raise SpecError(f"Layer {index}: '{token[:20]}' in the link is not a layer code "
                        f"(expected e.g. c3x16bd0.1, p2, gap, sm).")
    rate = match["rate"]
    return Conv(filters=int(match["filters"]), kernel=int(match["kernel"]), batchnorm=bool(match["bn"]),
                dropout=rate is not None, dropout_rate=float(rate) if rate else 0.1,
                relu=not match["linear"])


def _notebook(name: str, batchnorm_convs: set[int]) -> Architecture:
    """The notebook's network with BatchNorm after the given (1-based) convs."""
    plan = [(16, 3, True), (32, 3, True), (16, 1, False), None,
            (16, 3, True), (16, 3, True), (16, 3, True), (16, 3, True), (10, 1, False)]
    layers: list[Layer] = []
    for item in plan:
        if item is None:
            layers.append(MaxPool(2))
            continue
        filters, kernel, dropout = item
        number = sum(isinstance(layer, Conv) for layer in layers) + 1
        layers.append(Conv(filters, kernel, batchnorm=number in batchnorm_convs, dropout=dropout,
                           relu=filters != NUM_CLASSES))
    return Architecture(tuple(layers) + (GlobalAvgPool(), Softmax()), name=name)


PRESETS: dict[str, Architecture] = {
    # The notebook's first version: 15,088 total params, just over the 15K budget.
    "seed-first": _notebook("seed-first", {1, 2, 4, 5, 6, 7}),
    # The notebook's final version: BatchNorm dropped after convs 6 and 7, 14,960 total.
    "seed-final": _notebook("seed-final", {1, 2, 4, 5}),
}
DEFAULT_PRESET = "seed-final"
