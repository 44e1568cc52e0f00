"""The layer kinds. Each class is the one home of its kind, like a Keras layer class.

A kind knows its fields (its JSON fields too) and their validation, its output shape and receptive
field, its parameter counts and MACs, its Keras layers, its link code, its short text and its numpy
inference step. Adding a kind (average pooling, a depthwise-separable conv) is one class here,
listed in KINDS. Keras is imported inside `keras_layers` only.
"""

from __future__ import annotations

import functools
import re
import typing
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

INPUT_SIZE = 28  # MNIST images are 28x28 ...
INPUT_CHANNELS = 1  # ... and grey.
NUM_CLASSES = 10
KERNEL_SIZES = (1, 3, 5)
MAX_FILTERS = 256  # far beyond any 15K-parameter network, small enough to keep a typo harmless
DROPOUT_RATE = 0.1  # the notebook's rate; a link spells a conv's rate only when it differs
BN_EPSILON = 1e-3  # Keras' default, passed explicitly so that Keras and the numpy pass agree


class SpecError(ValueError):
    """An architecture that cannot be built; the message names the layer at fault."""


@dataclass(frozen=True)
class Signal:
    """What one layer hands the next: the feature map's shape, and how much of the image it sees."""

    size: int = INPUT_SIZE  # height and width of the feature map
    channels: int = INPUT_CHANNELS
    flat: bool = False  # after global pooling: one number per channel
    receptive: int = 1  # input pixels one output value sees, per side
    jump: int = 1  # input pixels between two neighbouring output positions

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.channels,) if self.flat else (self.size, self.size, self.channels)


@dataclass(frozen=True)
class Cost:
    """What one layer adds: the parameters Keras counts, and multiply-accumulates for one image."""

    trainable: int = 0
    non_trainable: int = 0  # BatchNorm's moving mean and variance
    macs: int = 0


Step = Callable[[np.ndarray], np.ndarray]
# fetch(layer name, Keras class name, shapes of its arrays) -> the arrays the model file holds for it
Fetch = Callable[[str, str, Sequence[tuple[int, ...]]], list]


class Layer:
    """The base of every kind: subclasses are frozen dataclasses whose fields are the spec's fields."""

    kind: ClassVar[str]  # the JSON "kind"
    noun: ClassVar[str]  # how messages call it: "the max-pool after conv 3"
    is_conv: ClassVar[bool] = False  # convs are numbered ("conv 6"), as in the notebook

    @property
    def label(self) -> str:
        raise NotImplementedError

    def name(self, conv_number: int) -> str:
        """How messages name this layer, given the number of the last conv up to it (0: none)."""
        return f"the {self.noun} after conv {conv_number}" if conv_number else f"the {self.noun} before any conv"

    def check(self, where: str, after: int) -> None:
        """Raise SpecError unless the fields are valid here; `after` is how many layers follow."""
        for field, expected in field_types(type(self)).items():
            value = getattr(self, field)
            if not _is(value, expected):
                raise SpecError(f"{where}: '{field}' must be {expected.__name__}, got {value!r:.40}.")

    def output(self, x: Signal) -> Signal:
        """The signal after this layer, given the one before."""
        return x

    def cost(self, x: Signal) -> Cost:
        """Parameters and MACs of this layer on input `x`."""
        return Cost()

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        """The Keras layers this spec layer (1-based position `index`) builds, named after `index`."""
        raise NotImplementedError

    def code(self) -> str:
        """This layer's token in a link."""
        raise NotImplementedError

    @classmethod
    def parse_code(cls, token: str) -> Layer | None:
        """The layer a link token stands for, or None if the token is not of this kind."""
        raise NotImplementedError

    def text(self) -> str:
        """The layer in the one-line architecture text; empty to leave it out."""
        return ""

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        """Inference steps on an (H, W, C) float32 array, with weights fetched by Keras layer name."""
        raise NotImplementedError

    def describe_change(self, new: Layer, conv_number: int) -> str:
        """The edit from this layer to `new` (same kind), for the counter's 'Last change'."""
        return f"Changed {self.name(conv_number)}"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the kind and every field."""
        return {"kind": self.kind, **{field: getattr(self, field) for field in field_types(type(self))}}

    @classmethod
    def from_dict(cls, item: dict[str, Any], where: str) -> Layer:
        """A layer from its JSON form, which has already been matched to this kind."""
        unknown = set(item) - set(field_types(cls)) - {"kind"}
        if unknown:
            raise SpecError(f"{where}: unknown field(s) {json_keys(unknown)}.")
        missing = [f.name for f in fields(cls) if f.default is MISSING and f.name not in item]
        if missing:
            raise SpecError(f"{where}: '{missing[0]}' is required.")
        return cls(**{field: value for field, value in item.items() if field != "kind"})


def json_keys(keys: set[str]) -> str:
    """JSON keys for a message, quoted and escaped, so that a key with a newline cannot break the line."""
    return ", ".join(f"{key!r:.40}" for key in sorted(keys))


@functools.cache
def field_types(kind: type) -> dict[str, type]:
    """Each field of a layer kind and its type, read from the dataclass."""
    hints = typing.get_type_hints(kind)
    return {field.name: hints[field.name] for field in fields(kind)}


def _is(value: Any, expected: type) -> bool:
    """A JSON-minded type check: a bool is never a number, and an int is a fine float."""
    if isinstance(value, bool) or expected is bool:
        return isinstance(value, bool) and expected is bool
    return isinstance(value, (int, float) if expected is float else expected)


_CONV_CODE = re.compile(r"(?P<prefix>[cs])(?P<kernel>\d)x(?P<filters>\d{1,4})(?P<bn>b)?"
                        r"(?:(?P<dropout>[dr])(?P<rate>(?:\d+\.?\d*|\.\d+)(?:e-\d+)?))?(?P<linear>l)?")


def _number(rate: float) -> str:
    """The shortest text that reads back as exactly `rate`: '0.1', '0', '1e-05'."""
    return repr(abs(float(rate))).removesuffix(".0")  # abs: -0.0 is a valid rate, '-' is no use in a link


@dataclass(frozen=True)
class Conv(Layer):
    """A Conv2D without bias, optionally followed by BatchNorm and Dropout."""

    filters: int
    kernel: int = 3  # the notebook uses 3x3 for features and 1x1 to mix channels
    batchnorm: bool = False
    dropout: bool = False
    dropout_rate: float = DROPOUT_RATE  # kept when dropout is toggled off
    relu: bool = True  # off only for the conv that produces the class scores

    kind = "conv"
    noun = "conv"
    is_conv = True

    @property
    def label(self) -> str:
        return f"Conv {self.kernel}x{self.kernel}"

    @property
    def kernel_text(self) -> str:
        """The kernel as the layer table shows it: '3x3'."""
        return f"{self.kernel}x{self.kernel}"

    def name(self, conv_number: int) -> str:
        return f"conv {conv_number} ({self.kernel_text})"

    def check(self, where: str, after: int) -> None:
        super().check(where, after)
        if not 1 <= self.filters <= MAX_FILTERS:
            raise SpecError(f"{where}: filters must be between 1 and {MAX_FILTERS}, got {self.filters}.")
        if self.kernel not in KERNEL_SIZES:
            raise SpecError(f"{where}: kernel must be one of {KERNEL_SIZES}, got {self.kernel}.")
        if not 0 <= self.dropout_rate < 1:  # also refuses NaN and infinities
            raise SpecError(f"{where}: dropout rate must be in [0, 1), got {self.dropout_rate}.")

    def output(self, x: Signal) -> Signal:
        return replace(x, size=x.size - self.kernel + 1, channels=self.filters,
                       receptive=x.receptive + (self.kernel - 1) * x.jump)

    def cost(self, x: Signal) -> Cost:
        weights = self.kernel * self.kernel * x.channels * self.filters
        size = x.size - self.kernel + 1
        norm = 2 * self.filters if self.batchnorm else 0  # gamma and beta; moving mean and variance
        return Cost(trainable=weights + norm, non_trainable=norm, macs=size * size * weights)

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        return [layers.Conv2D(self.filters, self.kernel, use_bias=False, activation="relu" if self.relu else None,
                              name=f"conv{index}"), *self._keras_after_conv(index, bn_momentum)]

    def _keras_after_conv(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        stack = []
        if self.batchnorm:
            stack.append(layers.BatchNormalization(momentum=bn_momentum, epsilon=BN_EPSILON, name=f"bn{index}"))
        if self.dropout:
            stack.append(layers.Dropout(self.dropout_rate, name=f"dropout{index}"))
        return stack

    code_prefix: ClassVar[str] = "c"

    def code(self) -> str:
        # 'd' + rate: Dropout on; 'r' + rate: off, keeping a rate other than the default.
        rate = ""
        if self.dropout or self.dropout_rate != DROPOUT_RATE:
            rate = ("d" if self.dropout else "r") + _number(self.dropout_rate)
        return (f"{self.code_prefix}{self.kernel}x{self.filters}{'b' if self.batchnorm else ''}{rate}"
                f"{'' if self.relu else 'l'}")

    @classmethod
    def parse_code(cls, token: str) -> Conv | None:
        match = _CONV_CODE.fullmatch(token)
        if not match or match["prefix"] != cls.code_prefix:
            return None
        rate = match["rate"]
        return cls(filters=int(match["filters"]), kernel=int(match["kernel"]), batchnorm=bool(match["bn"]),
                   dropout=match["dropout"] == "d", dropout_rate=float(rate) if rate else DROPOUT_RATE,
                   relu=not match["linear"])

    def text(self) -> str:
        return (f"{self.kernel}x{self.kernel}:{self.filters}" + (" bn" if self.batchnorm else "")
                + (f" do{self.dropout_rate:g}" if self.dropout else ""))

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        (kernel,) = fetch(f"conv{index}", "Conv2D", [(self.kernel, self.kernel, x.channels, self.filters)])
        return [_conv(kernel, self.relu), *self._after_conv(index, fetch)]

    def _after_conv(self, index: int, fetch: Fetch) -> list[Step]:
        """BatchNorm's inference step, when on; Dropout does nothing at inference."""
        steps = []
        if self.batchnorm:
            gamma, beta, mean, variance = fetch(f"bn{index}", "BatchNormalization", [(self.filters,)] * 4)
            scale = gamma / np.sqrt(variance + BN_EPSILON)
            steps.append(lambda x, scale=scale, shift=beta - mean * scale: x * scale + shift)
        if self.dropout:
            fetch(f"dropout{index}", "Dropout", [])  # nothing to do at inference
        return steps

    def with_separable(self, on: bool) -> Conv:
        """This conv as a depthwise-separable conv (on) or a full one (off), every other field kept."""
        return (SeparableConv if on else Conv)(**{field: getattr(self, field) for field in field_types(Conv)})

    def describe_change(self, new: Layer, conv_number: int) -> str:
        where = f"conv {conv_number}"  # as the page's rows say it
        if self.batchnorm != new.batchnorm:
            return f"BatchNorm after {where}" if new.batchnorm else f"No BatchNorm after {where}"
        if self.dropout != new.dropout:
            return f"Dropout after {where}" if new.dropout else f"No Dropout after {where}"
        if self.filters != new.filters:
            return f"Filters of {where}: {self.filters} → {new.filters}"
        if self.dropout_rate != new.dropout_rate:
            return f"Dropout rate of {where}: {self.dropout_rate:g} → {new.dropout_rate:g}"
        return f"Changed {where}"


@dataclass(frozen=True)
class SeparableConv(Conv):
    """A depthwise-separable conv without bias: one k x k filter per input channel, then a 1x1 conv mixing
    the channels into `filters`; BatchNorm, Dropout and ReLU as a conv's. Keras' SeparableConv2D. At small
    budgets it buys a 3x3 view for a fraction of a conv's weights: 9 + `filters` per input channel, not
    9 x `filters`."""

    kind = "sepconv"
    code_prefix = "s"

    @property
    def label(self) -> str:
        return f"SepConv {self.kernel}x{self.kernel}"

    @property
    def kernel_text(self) -> str:
        return f"separable {self.kernel}x{self.kernel}"

    def check(self, where: str, after: int) -> None:
        if self.kernel in KERNEL_SIZES and self.kernel != 1:
            super().check(where, after)
            return
        Layer.check(self, where, after)  # the field types first: a kernel of "3" is named as a type error
        raise SpecError(f"{where}: a separable conv's kernel must be 3 or 5, got {self.kernel}; for 1x1 use a conv.")

    def cost(self, x: Signal) -> Cost:
        weights = self.kernel * self.kernel * x.channels + x.channels * self.filters
        size = x.size - self.kernel + 1
        norm = 2 * self.filters if self.batchnorm else 0
        return Cost(trainable=weights + norm, non_trainable=norm, macs=size * size * weights)

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        return [layers.SeparableConv2D(self.filters, self.kernel, use_bias=False,
                                       activation="relu" if self.relu else None, name=f"conv{index}"),
                *self._keras_after_conv(index, bn_momentum)]

    def text(self) -> str:
        return "sep " + super().text()

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        depthwise, pointwise = fetch(f"conv{index}", "SeparableConv2D", [(self.kernel, self.kernel, x.channels, 1),
                                                                         (1, 1, x.channels, self.filters)])
        return [_separable_conv(depthwise[..., 0], pointwise[0, 0], self.relu), *self._after_conv(index, fetch)]


@dataclass(frozen=True)
class MaxPool(Layer):
    """MaxPooling2D with a square window and the same stride."""

    size: int = 2

    kind = "maxpool"
    noun = "max-pool"

    @property
    def label(self) -> str:
        return f"MaxPool {self.size}x{self.size}"

    def check(self, where: str, after: int) -> None:
        super().check(where, after)
        if not 2 <= self.size <= 4:
            raise SpecError(f"{where}: pool size must be 2, 3 or 4, got {self.size}.")

    def output(self, x: Signal) -> Signal:
        return replace(x, size=x.size // self.size, receptive=x.receptive + (self.size - 1) * x.jump,
                       jump=x.jump * self.size)

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        return [layers.MaxPooling2D(self.size, name=f"pool{index}")]

    def code(self) -> str:
        return f"p{self.size}"

    @classmethod
    def parse_code(cls, token: str) -> MaxPool | None:
        return cls(int(token[1:])) if re.fullmatch(r"p\d", token) else None

    def text(self) -> str:
        return "pool"

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        fetch(f"pool{index}", "MaxPooling2D", [])
        size = self.size

        def step(x: np.ndarray) -> np.ndarray:
            height, width = x.shape[0] // size, x.shape[1] // size
            return x[:height * size, :width * size].reshape(height, size, width, size, -1).max(axis=(1, 3))

        return [step]


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """GlobalAveragePooling2D: one number per channel, no parameters."""

    kind = "gap"
    noun = "global average pooling"
    label = "GlobalAvgPool"

    def check(self, where: str, after: int) -> None:
        if after != 1:
            raise SpecError(f"{where} must come just before the final softmax.")

    def output(self, x: Signal) -> Signal:
        return replace(x, flat=True, receptive=x.receptive + (x.size - 1) * x.jump)  # it sees every position

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        return [layers.GlobalAveragePooling2D(name=f"gap{index}")]

    def code(self) -> str:
        return "gap"

    @classmethod
    def parse_code(cls, token: str) -> GlobalAvgPool | None:
        return cls() if token == "gap" else None

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        fetch(f"gap{index}", "GlobalAveragePooling2D", [])
        return [lambda x: x.mean(axis=(0, 1))]


@dataclass(frozen=True)
class Softmax(Layer):
    """The softmax over the ten class scores."""

    kind = "softmax"
    noun = "softmax"
    label = "Softmax"

    def check(self, where: str, after: int) -> None:
        if after:
            raise SpecError(f"{where} must be the last layer.")

    def keras_layers(self, index: int, bn_momentum: float) -> list:
        from keras import layers

        return [layers.Activation("softmax", name="softmax")]

    def code(self) -> str:
        return "sm"

    @classmethod
    def parse_code(cls, token: str) -> Softmax | None:
        return cls() if token == "sm" else None

    def numpy_steps(self, index: int, x: Signal, fetch: Fetch) -> list[Step]:
        fetch("softmax", "Activation", [])

        def step(x: np.ndarray) -> np.ndarray:
            e = np.exp(x - x.max())
            return e / e.sum()

        return [step]


def _conv(kernel: np.ndarray, relu: bool) -> Step:
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


def _separable_conv(depthwise: np.ndarray, pointwise: np.ndarray, relu: bool) -> Step:
    """A 'valid' depthwise conv (one (kh, kw) filter per channel), then a 1x1 conv: (C, filters)."""
    size = depthwise.shape[0]

    def step(x: np.ndarray) -> np.ndarray:
        patches = np.lib.stride_tricks.sliding_window_view(x, (size, size), axis=(0, 1))  # (H', W', C, kh, kw)
        out = np.einsum("hwckl,klc->hwc", patches, depthwise) @ pointwise
        return np.maximum(out, 0.0) if relu else out

    return step


KINDS: dict[str, type[Layer]] = {kind.kind: kind
                                 for kind in (Conv, SeparableConv, MaxPool, GlobalAvgPool, Softmax)}
