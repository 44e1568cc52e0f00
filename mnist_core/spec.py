"""The architecture as data: an ordered tuple of layers, validation, JSON and URL codes, presets.

Each layer kind lives in `mnist_core.layers`; this module only walks them. Nothing here imports
TensorFlow: the Architecture page counts parameters from these objects alone, and
`mnist_core.model.build_model` turns them into Keras layers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

# The kinds and limits are re-exported: the rest of the app imports them from here.
from .layers import (DROPOUT_RATE, INPUT_CHANNELS, INPUT_SIZE, KERNEL_SIZES, KINDS, MAX_FILTERS, NUM_CLASSES,
                     Conv, GlobalAvgPool, Layer, MaxPool, Signal, Softmax, SpecError, json_keys)

MAX_LAYERS = 32
MAX_SPEC_BYTES = 20_000  # a spec JSON is a few hundred bytes; anything larger is not a spec
CUSTOM = "custom"  # the name of an architecture that is no preset


@dataclass(frozen=True)
class Architecture:
    """An ordered list of layers on a 28x28x1 input, validated on construction."""

    layers: tuple[Layer, ...]
    name: str = field(default=CUSTOM, compare=False)  # a label: the layers alone say what the network is

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        _validate(self)

    @property
    def convs(self) -> list[int]:
        """Indexes (into `layers`) of the conv layers, in order."""
        return [i for i, layer in enumerate(self.layers) if layer.is_conv]

    def conv_number(self, index: int) -> int:
        """1-based number of the conv at `index` as the notebook counts ("conv 6"), or of the last conv before it."""
        return sum(layer.is_conv for layer in self.layers[:index + 1])

    def layer_name(self, index: int) -> str:
        """How messages name layer `index`, in the page's numbering: 'conv 6 (3x3)', 'the max-pool after conv 3'."""
        return self.layers[index].name(self.conv_number(index))

    def with_layer(self, index: int, **changes: Any) -> Architecture:
        """A copy with layer `index` changed (`separable` turns a conv into a separable one or back); raises
        SpecError if the result is invalid."""
        layers, layer = list(self.layers), self.layers[index]
        if "separable" in changes:
            if not isinstance(layer, Conv):
                raise SpecError(f"{self.layer_name(index)} is not a conv: only a conv can be separable.")
            layer = layer.with_separable(changes.pop("separable"))
        layers[index] = replace(layer, **changes)
        return _named(tuple(layers))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form: {"name": ..., "layers": [{"kind": ..., ...}, ...]}."""
        return {"name": self.name, "layers": [layer.to_dict() for layer in self.layers]}

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
            raise SpecError(f"Unknown spec field(s): {json_keys(unknown)}.")
        layers = data.get("layers")
        if not isinstance(layers, list) or not layers:
            raise SpecError("A spec needs a non-empty 'layers' list.")
        if len(layers) > MAX_LAYERS:
            raise SpecError(f"A spec may have at most {MAX_LAYERS} layers, this one has {len(layers)}.")
        name = data.get("name", CUSTOM)
        if not isinstance(name, str) or len(name) > 80 or not name.isprintable():
            raise SpecError("The spec's 'name' must be one line of at most 80 printable characters.")
        parsed = tuple(_layer_from_dict(number, item) for number, item in enumerate(layers, 1))
        # A preset's name always means that preset: on other layers it gives way to the name the layers earn.
        return _named(parsed) if name == CUSTOM or name in PRESETS else cls(parsed, name=name)

    @classmethod
    def from_json(cls, text: str | bytes) -> Architecture:
        """Parse a spec from JSON text; malformed JSON gets a SpecError with the position."""
        if len(text) > MAX_SPEC_BYTES:
            raise SpecError(f"A spec file is at most {MAX_SPEC_BYTES:,} bytes; this one is {len(text):,}.")
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpecError(f"The spec is not valid JSON: {err}.") from None
        except RecursionError:
            raise SpecError("The spec is nested too deeply: a spec is an object with a 'layers' list "
                            "of flat objects.") from None
        except ValueError:  # Python refuses to convert an integer of more than 4,300 digits
            raise SpecError("The spec has a number with too many digits to be a layer's field.") from None
        return cls.from_dict(data)

    def to_code(self) -> str:
        """Short URL-safe code, e.g. 'c3x16bd0.1_p2_c1x10l_gap_sm', for query parameters."""
        return "_".join(layer.code() for layer in self.layers)

    @classmethod
    def from_code(cls, code: str) -> Architecture:
        """Parse `to_code` output; raises SpecError naming the token at fault."""
        if not code or len(code) > 2_000:
            raise SpecError("The architecture code in the link is empty or too long.")
        tokens = code.split("_")
        if len(tokens) > MAX_LAYERS:
            raise SpecError(f"A spec may have at most {MAX_LAYERS} layers, the link has {len(tokens)}.")
        return _named(tuple(_layer_from_code(number, token) for number, token in enumerate(tokens, 1)))


def _named(layers: tuple[Layer, ...]) -> Architecture:
    """An architecture named after the preset with these layers, else 'custom'."""
    return Architecture(layers, name=next((name for name, arch in PRESETS.items() if arch.layers == layers), CUSTOM))


def _validate(arch: Architecture) -> None:
    """Walk the layers, tracking the spatial size, and reject anything Keras would refuse."""
    layers = arch.layers
    if not layers:
        raise SpecError("An architecture needs at least one layer.")
    if len(layers) > MAX_LAYERS:
        raise SpecError(f"An architecture may have at most {MAX_LAYERS} layers.")
    signal = Signal()
    for index, layer in enumerate(layers):
        if type(layer) not in KINDS.values():
            raise SpecError(f"Layer {index + 1}: unknown layer type {type(layer).__name__}.")
        where = arch.layer_name(index)
        layer.check(where, after=len(layers) - index - 1)
        signal = layer.output(signal)
        if signal.size < 1:
            raise SpecError(f"{where}: the spatial size collapses to 0 here; remove a layer before it "
                            f"or use a smaller kernel.")
    if len(layers) < 3 or not isinstance(layers[-1], Softmax) or not isinstance(layers[-2], GlobalAvgPool):
        raise SpecError("The spec must end with global average pooling and softmax, "
                        "so that it outputs 10 class probabilities.")
    head = layers[-3]
    if not isinstance(head, Conv) or head.filters != NUM_CLASSES:
        raise SpecError(f"{arch.layer_name(len(layers) - 3)} feeds the classifier: it must be a conv with "
                        f"{NUM_CLASSES} filters, one per digit, so the spec ends in 10 classes.")


def _layer_from_dict(number: int, item: Any) -> Layer:
    where = f"item {number} of 'layers'"
    if not isinstance(item, dict):
        raise SpecError(f"{where}: expected an object like {{\"kind\": \"conv\", ...}}, got {item!r:.40}.")
    kind = item.get("kind")
    if not isinstance(kind, str) or kind not in KINDS:  # a list or an object is no kind, and cannot be looked up
        raise SpecError(f"{where}: unknown layer kind {kind!r:.40}; use one of {', '.join(KINDS)}.")
    return KINDS[kind].from_dict(item, f"{where} ({kind})")


def _layer_from_code(number: int, token: str) -> Layer:
    for kind in KINDS.values():
        layer = kind.parse_code(token)
        if layer is not None:
            return layer
    # Only a token of link-safe characters is quoted: a newline or markdown from a hand-made link is not shown.
    shown = f"'{token[:20]}'" if re.fullmatch(r"[A-Za-z0-9.-]+", token) else "A token"
    raise SpecError(f"{shown} in the link is not a layer code (item {number}; expected e.g. c3x16bd0.1, p2, gap, sm).")


NOTEBOOK_PLAN = [(16, 3, True), (32, 3, True), (16, 1, False), None,
                 (16, 3, True), (16, 3, True), (16, 3, True), (16, 3, True), (10, 1, False)]
# Narrower full-resolution convs (10 and 20 filters, not 16 and 32) pay for 24 filters in the first two convs
# after the pool and BatchNorm after every 3x3 conv; the last two 3x3 convs taper (16, 10) to stay under 15,000.
BEST_PLAN = [(10, 3, True), (20, 3, True), (10, 1, False), None,
             (24, 3, True), (24, 3, True), (16, 3, True), (10, 3, True), (10, 1, False)]


def _all_conv(name: str, plan: list, batchnorm_convs: set[int]) -> Architecture:
    """An all-convolutional net from (filters, kernel, dropout) per conv and None for a 2x2 max-pool, with
    BatchNorm after the given (1-based) convs, then global average pooling and softmax. Every conv but the last,
    which gives the class scores, has a ReLU."""
    layers: list[Layer] = []
    last = max(i for i, item in enumerate(plan) if item is not None)
    for i, item in enumerate(plan):
        if item is None:
            layers.append(MaxPool(2))
            continue
        filters, kernel, dropout = item
        number = sum(layer.is_conv for layer in layers) + 1
        layers.append(Conv(filters, kernel, batchnorm=number in batchnorm_convs, dropout=dropout,
                           relu=i != last))
    return Architecture(tuple(layers) + (GlobalAvgPool(), Softmax()), name=name)


def _coded(name: str, code: str) -> Architecture:
    """A preset written as its link code (separable convs and two pools do not fit `_all_conv`'s plan)."""
    return Architecture(tuple(_layer_from_code(number, token) for number, token in enumerate(code.split("_"), 1)),
                        name=name)


PRESETS: dict[str, Architecture] = {
    # The notebook's first version: 15,088 total params, just over the 15K budget.
    "seed-first": _all_conv("seed-first", NOTEBOOK_PLAN, {1, 2, 4, 5, 6, 7}),
    # The notebook's final version: BatchNorm dropped after convs 6 and 7, 14,960 total.
    "seed-final": _all_conv("seed-final", NOTEBOOK_PLAN, {1, 2, 4, 5}),
    # The strongest measured under the budget with the `best` recipe (bench/results/recipes.json): 14,846 total.
    "best-under-15k": _all_conv("best-under-15k", BEST_PLAN, {1, 2, 4, 5, 6, 7}),
    # The budget frontier (docs/frontier.md): each the best found on a validation split, never on the test set.
    "best-under-8k": _coded("best-under-8k",
                            "c3x8bd0.1_c3x16bd0.1_c1x8_p2_c3x16bd0.1_c3x16bd0.1_c3x16bd0.1_c1x10l_gap_sm"),
    "best-under-5k": _coded("best-under-5k",
                            "c3x8bd0.1_c3x12bd0.1_c1x8_p2_c3x12bd0.1_c3x12bd0.1_c3x12bd0.1_c1x10l_gap_sm"),
    "best-under-2k": _coded("best-under-2k", "c3x8b_s3x16b_p2_s3x16b_s3x16b_p2_s3x16b_c1x10l_gap_sm"),
    "best-under-1k": _coded("best-under-1k", "c3x6b_s3x12b_p2_s3x12b_p2_s3x12b_c1x10l_gap_sm"),
}
DEFAULT_PRESET = "seed-final"
