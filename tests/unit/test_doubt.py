"""Doubts: several digits, too little ink, no digit at all, an unsure model; drawings rendered from stroke
paths with a round 20 px brush, as the Predict page's canvas draws them."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from bench.handdrawn import CONDITIONS, draw
from bench.scribbles import scribble
from mnist_core.doubt import doubts
from mnist_core.catalogue import bundled_model, load_predictor
from mnist_core.reading import ink

SURE = np.array([0.01] * 9 + [0.91])


def drawing(*strokes, brush: int = 20) -> np.ndarray:
    """A 280x280 RGBA canvas with white round-brush strokes through the given points."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    pen = ImageDraw.Draw(image)
    for stroke in strokes:
        pen.line(stroke, fill=(255, 255, 255, 255), width=brush, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            pen.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill=(255, 255, 255, 255))
    return np.asarray(image)


ONE = [(150, 40), (146, 120), (142, 240)]
SEVEN = [(70, 50), (210, 50), (170, 130), (125, 240)]
FIVE = [[(100, 60), (100, 130), (170, 140), (180, 200), (120, 240), (80, 220)], [(110, 50), (190, 50)]]


@pytest.fixture(scope="module")
def model():
    return load_predictor(bundled_model())


@pytest.mark.parametrize("strokes", [[ONE], [SEVEN], FIVE, [[(100 + 25 * np.cos(t), 100 + 32 * np.sin(t))
                                                              for t in np.linspace(0, 6.4, 30)]]],
                         ids=["one", "seven", "five with a detached bar", "small zero"])
def test_a_plain_digit_raises_no_doubt(model, strokes):
    canvas = drawing(*strokes)
    prediction = model.predict(canvas)
    assert doubts(ink(canvas), prediction.probabilities) == []


def test_two_digits_side_by_side_are_called_out(model):
    """'1 7' read alone gives a confident 7; the page must say it looks like more than one digit."""
    canvas = drawing([(60, 40), (60, 240)], [(120, 50), (240, 50), (200, 130), (160, 240)])
    reasons = doubts(ink(canvas), model.predict(canvas).probabilities)
    assert any("more than one digit" in reason for reason in reasons)


def test_a_dot_is_too_little_ink(model):
    canvas = drawing([(140, 140), (141, 141)])
    assert any("too little ink" in reason for reason in doubts(ink(canvas), model.predict(canvas).probabilities))


def test_a_low_top_probability_is_reported_as_unsure():
    canvas = drawing(ONE)
    unsure = np.array([0.05] * 8 + [0.25, 0.35])
    assert doubts(ink(canvas), unsure) == ["The model is unsure: 9 (35%) or 8 (25%)."]
    assert doubts(ink(canvas), SURE) == []


NO_DIGIT = "does not look like a digit"


@pytest.mark.parametrize("kind, index", [("tangle", 2), ("spiral", 3), ("crossed-out blob", 4),
                                         ("text-like squiggle", 6), ("scratched fill", 8), ("zig-zag", 9),
                                         ("hatched circle", 10), ("crossings (X, *, #)", 16)])
def test_a_scribble_is_said_to_look_like_no_digit(model, kind, index):
    """bench.scribbles' seed-0 scribbles, each read by the model as some digit, most with 80-100% confidence."""
    canvas = scribble(kind, np.random.default_rng([0, index]))
    reasons = doubts(ink(canvas), model.predict(canvas).probabilities)
    assert any(NO_DIGIT in reason for reason in reasons), reasons


def test_a_filled_in_patch_says_why():
    canvas = drawing(*[[(60, y), (220, y)] for y in range(60, 221, 12)])
    reasons = doubts(ink(canvas), SURE)
    assert len(reasons) == 1 and reasons[0].startswith("This does not look like a digit: ink covers")


def test_real_digits_rarely_look_like_no_digit(model, mnist):
    """500 MNIST test digits painted 3-5x on the canvas: 1 false alarm measured (0.2%), 5 allowed (1%)."""
    rng = np.random.default_rng(0)
    alarms = 0
    for digit in mnist.x_test[:500]:
        canvas = draw(digit, CONDITIONS["resized, small, off-centre"], rng)
        alarms += any(NO_DIGIT in reason for reason in doubts(ink(canvas), model.predict(canvas).probabilities))
    assert alarms <= 5
