"""The oracle: every count and shape from the spec's arithmetic equals what Keras builds."""

import itertools
import random
import re

import numpy as np
import pytest
from hypothesis import given, settings

from mnist_core.budget import summarize
from mnist_core.model import build_model
from mnist_core.spec import PRESETS, Architecture, Conv
from tests.unit.test_spec import architectures


def keras_counts(arch: Architecture) -> tuple[int, int]:
    model = build_model(arch)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return model.count_params(), trainable


def assert_matches_keras(arch: Architecture) -> None:
    summary = summarize(arch)
    total, trainable = keras_counts(arch)
    assert (summary.total, summary.trainable) == (total, trainable), arch.to_code()
    # Each spec layer's output shape is that of the last Keras layer built for it (conv5, bn5, dropout5).
    shapes = {}
    for layer in build_model(arch).layers:
        index = re.search(r"(\d+)$", layer.name)
        if index:
            shapes[int(index.group(1))] = tuple(layer.output.shape[1:])
    assert shapes == {row.index: row.output_shape for row in summary.layers if row.index in shapes}
    assert len(shapes) == len(summary.layers) - 1  # all but the softmax, which keeps the (10,) shape


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_keras_count_params(name):
    """seed-first and seed-final: 15,088/14,864 and 14,960/14,800, as Keras counts them."""
    assert_matches_keras(PRESETS[name])


def test_every_batchnorm_combination_matches_keras():
    """All 2^8 BatchNorm on/off combinations over the eight convs, Dropout toggled in a rotating pattern.

    The presets differ only in their BatchNorm toggles, so these combinations cover both.
    """
    base = PRESETS["seed-final"]
    convs = base.convs
    for number, bits in enumerate(itertools.product((False, True), repeat=len(convs))):
        arch = base
        for position, (index, on) in enumerate(zip(convs, bits)):
            arch = arch.with_layer(index, batchnorm=on, dropout=bool((number >> position) & 1) ^ on)
        total, trainable = keras_counts(arch)
        summary = summarize(arch)
        assert (summary.total, summary.trainable) == (total, trainable), arch.to_code()


def test_sampled_filter_counts_and_kernels_match_keras():
    """Thirty seeded random variants of seed-final's filters, kernels and toggles agree with Keras."""
    rng = random.Random(7)
    base = PRESETS["seed-final"]
    for _ in range(30):
        arch = base
        for index in base.convs[:-1]:
            arch = arch.with_layer(index, filters=rng.randint(1, 48), batchnorm=rng.random() < 0.5,
                                   dropout=rng.random() < 0.5)
        arch = arch.with_layer(base.convs[2], kernel=rng.choice((1, 3)))
        assert_matches_keras(arch)


@settings(max_examples=25, deadline=None, database=None)
@given(architectures())
def test_random_specs_of_every_kind_match_keras(arch):
    """Random specs (kernels 1/3/5, pools of 2-4 anywhere, any toggles) count and shape as Keras builds them."""
    assert_matches_keras(arch)


def test_builder_reads_like_the_notebook():
    """Conv2D layers have no bias, ReLU except the class-score conv, and the model ends in softmax."""
    model = build_model(PRESETS["seed-final"])
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert len(convs) == 8 and not any(conv.use_bias for conv in convs)
    assert [conv.activation.__name__ for conv in convs] == ["relu"] * 7 + ["linear"]
    assert model.layers[-1].__class__.__name__ == "Activation"
    assert isinstance(PRESETS["seed-final"].layers[0], Conv)


# TensorFlow's pattern for a root name scope, which training opens under the model's name.
ROOT_SCOPE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


@pytest.mark.parametrize("name", ["Сеть Ивана", "über net", "Δίκτυο", "网络", "🙂 net", "_x", "-x", "", "  ",
                                  "seed-final", "a/b"])
def test_any_spec_name_gives_a_valid_keras_model_name(name):
    """A spec's name is a label in any script; the Keras model built from it always has a name TensorFlow takes."""
    model = build_model(Architecture(PRESETS["seed-final"].layers, name=name))
    assert ROOT_SCOPE.fullmatch(model.name), model.name


def test_a_spec_named_in_cyrillic_trains():
    """'Сеть Ивана' once failed at its first batch ('__________' is not a valid root scope name)."""
    import keras

    model = build_model(Architecture(PRESETS["seed-final"].layers, name="Сеть Ивана"))
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    images = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    model.fit(images, keras.utils.to_categorical(np.arange(8), 10), epochs=1, verbose=0)
