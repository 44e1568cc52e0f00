"""A hand-drawn test set made from MNIST's test digits, and how well each model reads it.

    python -m bench.handdrawn                                  # the bundled model, with and without
    python -m bench.handdrawn --models run.keras other.keras  # stroke-width normalisation

Each condition draws the same 200 test digits (not used in training) the way a person draws on the
Predict page's 280 x 280 canvas. "resized" paints the MNIST image itself, scaled 3-5x, anywhere (the
project's first hand-drawn test). The others trace each digit's skeleton (its strokes' centre lines) and
paint those paths with a round brush, as the canvas does: at several heights, with thin and bold
brushes, rotated and slanted. Every canvas goes through the app's own preprocessing.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_core.data import load_mnist
from mnist_core.catalogue import BUNDLED_DIR
from mnist_core.predict import Predictor
from mnist_core.reading import CANVAS_BRUSH, ink, read_ink
from mnist_core.weights import ensure_weights
from mnist_core.spec import Architecture

CANVAS = 280
SAMPLES = 200


@dataclass(frozen=True)
class Condition:
    """How a digit is drawn: its height on the canvas (px), the brush (px), rotation (deg) and slant."""

    heights: tuple[int, int]
    brush: int = CANVAS_BRUSH
    rotate: float = 0.0
    slant: float = 0.0
    resized: bool = False


CONDITIONS = {
    "resized, small, off-centre": Condition((84, 140), resized=True),
    "traced, small (54-103 px)": Condition((54, 103)),
    "traced, medium (104-180 px)": Condition((104, 180)),
    "traced, large (181-250 px)": Condition((181, 250)),
    "traced, thin brush (8 px)": Condition((104, 180), brush=8),
    "traced, bold brush (32 px)": Condition((104, 180), brush=32),
    "traced, rotated ±20°": Condition((104, 180), rotate=20),
    "traced, slanted ±0.3": Condition((104, 180), slant=0.3),
}


def stroke_centres(digit28: np.ndarray) -> np.ndarray:
    """(N, 2) row/column points of a digit's skeleton (its strokes' centre lines), in 28x28 pixel units."""
    from scipy import ndimage
    from skimage.morphology import skeletonize

    fine = ndimage.zoom(digit28.astype(np.float32) / 255.0, 4, order=1)  # 4x: a smoother centre line
    return np.argwhere(skeletonize(fine >= 0.5)) / 4.0


def _joins(points: np.ndarray) -> np.ndarray:
    """Index pairs of skeleton points that touch (8-neighbours at 4x: 0.35 px of 28): the stroke paths."""
    from scipy.spatial import cKDTree

    return cKDTree(points).query_pairs(0.4, output_type="ndarray")


def draw(digit28: np.ndarray, condition: Condition, rng: np.random.Generator) -> np.ndarray:
    """An RGBA canvas with the digit drawn as `condition` says, at a random place."""
    height = int(rng.integers(condition.heights[0], condition.heights[1] + 1))
    if condition.resized:
        return _paint_image(digit28, height, rng)
    points = stroke_centres(digit28)
    angle = np.radians(rng.uniform(-condition.rotate, condition.rotate))
    slant = rng.uniform(-condition.slant, condition.slant)
    rows, cols = points[:, 0] - 14, points[:, 1] - 14
    cols = cols - slant * rows  # a slant leans the tops of strokes right (positive) or left
    rows, cols = rows * np.cos(angle) - cols * np.sin(angle), rows * np.sin(angle) + cols * np.cos(angle)
    scale = height / max(np.ptp(rows), 1.0)
    rows, cols = (rows - rows.min()) * scale, (cols - cols.min()) * scale
    margin = condition.brush / 2 + 1
    top = rng.uniform(margin, max(margin, CANVAS - margin - rows.max()))
    left = rng.uniform(margin, max(margin, CANVAS - margin - cols.max()))
    return _paint_strokes(rows + top, cols + left, condition.brush, _joins(points))


def _paint_strokes(rows: np.ndarray, cols: np.ndarray, brush: int, joins: np.ndarray) -> np.ndarray:
    """A round brush along every pair of neighbouring stroke points, white on black, drawn at 2x and
    scaled down for smooth edges, as the canvas anti-aliases its paths."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (2 * CANVAS, 2 * CANVAS), 0)
    pen = ImageDraw.Draw(image)
    radius = brush  # at 2x the brush's radius is its width
    points = np.column_stack([2 * cols, 2 * rows])
    for first, second in joins:
        pen.line([tuple(points[first]), tuple(points[second])], fill=255, width=2 * brush)
    for col, row in points:
        pen.ellipse((col - radius, row - radius, col + radius, row + radius), fill=255)
    return _rgba(np.asarray(image.resize((CANVAS, CANVAS), Image.Resampling.LANCZOS)))


def _paint_image(digit28: np.ndarray, height: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    glyph = np.asarray(Image.fromarray(digit28).resize((height, height), Image.Resampling.BILINEAR))
    grey = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    top, left = rng.integers(0, CANVAS - height + 1, size=2)
    grey[top:top + height, left:left + height] = glyph
    return _rgba(grey)


def _rgba(grey: np.ndarray) -> np.ndarray:
    canvas = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    canvas[..., :3] = grey[..., None]
    canvas[..., 3] = 255
    return canvas


def handdrawn_set(images: np.ndarray, labels: np.ndarray, seed: int = 0):
    """Yield (condition name, canvas, label) for every condition and digit; the same set for every seed."""
    for index, (name, condition) in enumerate(CONDITIONS.items()):
        rng = np.random.default_rng([seed, index])
        for digit, label in zip(images, labels):
            yield name, draw(digit, condition, rng), int(label)


def accuracy_by_condition(predictor: Predictor, drawings, normalise_strokes: bool = True) -> dict[str, float]:
    """Share of drawings read right, per condition and 'all'."""
    right: dict[str, list[bool]] = {}
    for name, canvas, label in drawings:
        digit28 = read_ink(ink(canvas), normalise_strokes).digit28
        ok = digit28 is not None and int(predictor.probabilities(digit28).argmax()) == label
        right.setdefault(name, []).append(ok)
    scores = {name: float(np.mean(oks)) for name, oks in right.items()}
    scores["all"] = float(np.mean([ok for oks in right.values() for ok in oks]))
    return scores


def _predictor(path: Path) -> Predictor:
    """A model file and its architecture (bundled metadata beside it, or the seed-final preset)."""
    from mnist_core.spec import PRESETS

    meta = path.with_suffix(".json")
    arch = Architecture.from_dict(json.loads(meta.read_text())["spec"]) if meta.exists() else PRESETS["seed-final"]
    return Predictor(arch, ensure_weights(path, arch.to_json()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, nargs="+", default=sorted(BUNDLED_DIR.glob("*.keras")))
    parser.add_argument("--samples", type=int, default=SAMPLES)
    args = parser.parse_args()
    data = load_mnist()
    drawings = list(handdrawn_set(data.x_test[:args.samples], data.y_test[:args.samples]))
    columns = [(path, normalise) for path in args.models for normalise in (False, True)]
    names = [f"{path.parent.name}/{path.stem}"[-24:] + (" +norm" if normalise else "") for path, normalise in columns]
    print(f"{'condition':<30}" + "".join(f"{name:>32}" for name in names))
    results = [accuracy_by_condition(_predictor(path), drawings, normalise) for path, normalise in columns]
    for name in [*CONDITIONS, "all"]:
        print(f"{name:<30}" + "".join(f"{result[name] * 100:>31.1f}%" for result in results))


if __name__ == "__main__":
    main()
