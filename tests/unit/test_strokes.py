"""Stroke width: measured like a ruler would, and brought toward MNIST's when a drawing is far off it."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from mnist_core.reading import ink, read_ink, to_mnist
from mnist_core.strokes import MNIST_WIDTH, StrokeChange, normalise_width, stroke_width


def drawn_seven(height: int, brush: int) -> np.ndarray:
    """A 7 drawn with a round brush on a black 280x280 RGBA canvas, `height` px tall."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    points = [(40, 40), (40 + 0.6 * height, 40), (40 + 0.2 * height, 40 + height)]
    ImageDraw.Draw(image).line(points, fill=(255, 255, 255, 255), width=brush, joint="curve")
    return np.asarray(image)


@pytest.mark.parametrize("width", [3, 8, 20, 31])
def test_width_of_a_bar_is_its_thickness(width):
    bar = np.zeros((200, 200), dtype=np.float32)
    bar[50:150, 100:100 + width] = 1.0
    assert stroke_width(bar) == pytest.approx(width, abs=1.0)


def test_mnist_like_strokes_are_left_as_drawn():
    canvas = drawn_seven(height=200, brush=20)  # 20 px of a 200 px digit: 2 px once scaled to MNIST's 20 px box
    crop_scale = 20 / 200
    crop = ink(canvas)
    kept, change = normalise_width(crop, crop_scale)
    assert kept is crop and not change.changed and change.text().endswith("within MNIST's 1.7-3.4 px: kept as drawn.")


@pytest.mark.parametrize("height, brush, verb", [(60, 20, "thinned"), (230, 6, "thickened")])
def test_a_small_bold_or_a_large_thin_digit_gets_mnist_width(height, brush, verb):
    """The fixed brush makes a small digit ~3x bolder than MNIST's once scaled up, a thin pen ~3x finer."""
    reading = read_ink(ink(drawn_seven(height, brush)))
    digit, change = reading.digit28, reading.strokes
    assert change.changed and verb in change.text()
    assert abs(change.before - MNIST_WIDTH) > 1.5
    assert change.after == pytest.approx(MNIST_WIDTH, abs=0.8)
    assert stroke_width(np.asarray(Image.fromarray(digit).resize((224, 224), Image.Resampling.BILINEAR))) / 8 \
        == pytest.approx(MNIST_WIDTH, abs=1.0)  # measured on the 28x28 the model reads


def test_a_width_just_outside_mnists_range_does_not_read_as_its_bound():
    """1.69 px is below MNIST's 1.71 px: at one decimal both would print 1.7 ("1.7, below 1.7")."""
    assert StrokeChange(before=1.69, after=2.31).text() == (
        "Strokes thickened from 1.69 to 2.31 px (of 28): below MNIST's 1.71-3.36 px, so brought toward its "
        "typical 2.4 px.")


def test_normalisation_can_be_turned_off_and_changes_only_the_strokes():
    canvas = drawn_seven(60, 20)
    plain, thinned = read_ink(ink(canvas), normalise_strokes=False), read_ink(ink(canvas))
    assert plain.strokes is None and thinned.strokes.changed
    plain, thinned = plain.digit28, thinned.digit28
    assert plain.sum() > 1.5 * thinned.sum()  # same digit, thinner strokes: much less ink
    assert np.array_equal(to_mnist(canvas), thinned)
