"""Why a model answered: occlusion saliency, runners-up and feature maps from the numpy forward pass."""

import numpy as np
import pytest

from mnist_core.explain import occlusion_saliency, tile_maps, top_classes
from mnist_core.model import build_model
from mnist_core.catalogue import bundled_model, load_predictor


@pytest.fixture(scope="module")
def model():
    return load_predictor(bundled_model())


def test_saliency_lies_on_the_ink_the_answer_needs(model, mnist):
    """Blanking background changes nothing; the strongest drops sit on or next to the digit's strokes."""
    digit28 = mnist.x_test[0].astype(np.float32) / 255  # a 7
    saliency = occlusion_saliency(model, digit28, 7)
    assert saliency.shape == (28, 28) and saliency.min() >= 0 and saliency.max() > 0.05
    near_ink = np.zeros((28, 28), dtype=bool)
    rows, cols = np.nonzero(digit28 > 0.1)
    for r, c in zip(rows, cols):
        near_ink[max(0, r - 5):r + 6, max(0, c - 5):c + 6] = True
    assert saliency[~near_ink].max() < 1e-4  # float rounding between batched and single passes, no more
    top = np.unravel_index(saliency.argmax(), saliency.shape)
    assert near_ink[top]


def test_top_classes_are_the_most_probable_in_order():
    probabilities = np.array([0.05, 0.6, 0.0, 0.25, 0.1, 0, 0, 0, 0, 0])
    assert top_classes(probabilities) == [(1, 0.6), (3, 0.25), (4, 0.1)]


def test_feature_maps_equal_the_keras_layer_outputs(model, mnist):
    """The oracle: each conv's map from the numpy pass equals Keras' output of that conv (with its BatchNorm)."""
    import keras

    keras_model = build_model(bundled_model().spec)
    keras_model.load_weights(bundled_model().path)
    image = mnist.x_test[1].astype(np.float32) / 255
    maps = model.feature_maps(image)
    assert [name for name, _ in maps] == [f"conv {n}" for n in range(1, 9)]
    ends = [layer for layer in keras_model.layers if layer.name.startswith(("conv", "bn"))]
    last_of_each_conv = {}
    for layer in ends:
        last_of_each_conv[int(layer.name.lstrip("convbn"))] = layer
    probe = keras.Model(keras_model.inputs, [last_of_each_conv[i].output for i in sorted(last_of_each_conv)])
    expected = probe(image[None, ..., None], training=False)
    for (name, ours), theirs in zip(maps, expected):
        assert ours.shape == tuple(theirs.shape[1:]) and np.abs(ours - theirs.numpy()[0]).max() < 1e-4, name


def test_tiled_maps_keep_every_channel_in_its_own_range():
    maps = np.stack([np.full((4, 4), value, dtype=np.float32) for value in range(10)], axis=-1)
    maps[0, 0, 3] = 100.0
    grid = tile_maps(maps, columns=4)
    assert grid.shape == (3 * 5 - 1, 4 * 5 - 1) and grid.dtype == np.uint8
    assert grid[0, 15] == 255 and grid[1, 16] == 0  # channel 3: its peak white, the rest black


@pytest.mark.parametrize("side", [3, 4, 6, 10, 24, 26])
def test_every_feature_map_is_shown_at_least_48_pixels_a_side(side):
    """A later conv's 4x4 maps were 12 px strips beside the first conv's 78 px maps: now each map is enlarged
    by a whole factor to 48 px or more, and 8 of them still fit the 564 px column of a 1024 px screen."""
    maps = np.random.default_rng(0).random((side, side, 10), dtype=np.float32)
    grid = tile_maps(maps, columns=8, min_side=48, gap=3)
    cell = (grid.shape[1] - 7 * 3) // 8
    assert cell >= 48 and cell % side == 0 and grid.shape == (2 * cell + 3, 8 * cell + 7 * 3)
    assert grid.shape[1] <= 564
    zoom = cell // side
    assert np.array_equal(grid[:cell, :cell], np.kron(grid[:cell:zoom, :cell:zoom], np.ones((zoom, zoom))))
    assert (grid[cell:cell + 3] == 255).all()  # a white gap between the rows
