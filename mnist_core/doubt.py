"""Reasons to doubt an answer: ink that looks like several digits, too little ink, no digit at all, an unsure model.

A classifier always names one of ten digits, even for a dot, for "1 7" written side by side or for a
scribble; these checks say when its answer should not be taken at face value.
"""

from __future__ import annotations

import numpy as np

from .reading import INK_LEVEL
from .strokes import SOLID, stroke_width

CELL = 4  # components are found on a 4x coarser grid: fast, and hairline gaps close
GAP_CELLS = 3  # parts closer than ~2 x 3 cells (24 canvas px) count as one digit (a 5's detached bar)
MIN_PART_SHARE = 0.15  # a part with less of the ink is a stray mark, not a second digit
MIN_EXTENT_IN_STROKES = 2.5  # a drawing shorter than this many stroke widths is a dot or a dash ...
DOT_AT_MOST = 0.25  # ... if it also spans at most this share of the image; a larger blob is a filled-in patch
UNSURE_BELOW = 0.7  # a top probability under this is reported as unsure
# "No digit" thresholds come from `python -m bench.scribbles` (docs/doubts.md): few digits pass any of them.
MAX_OUTLINE = 3.0  # half the ink's outline over the drawing's size: digits at most 2.9, spirals and zig-zags 3-5
MAX_LENGTH = 3.4  # ink area / stroke width over the drawing's size: also counts strokes drawn over each other ...
MIN_WIDTH_FOR_LENGTH = 10  # ... for strokes this wide (px) or more: thinner ones' whole-pixel widths are too coarse
STROKE_PX = 4  # ink share and crossings are measured on the drawing rescaled to strokes this wide
MAX_INK_SHARE = 0.55  # of the square around the drawing: more is a filled-in patch
MAX_CROSSINGS = 3  # strokes a straight line meets: 3 for a 3 or an 8; a line that meets more ...
DOUBTFUL_BELOW = 0.95  # ... marks no digit when the model is also below this


def doubts(ink: np.ndarray, probabilities: np.ndarray) -> list[str]:
    """Plain-language reasons to doubt the prediction for `ink` (H x W, 0-1); empty when it looks fine."""
    mask = ink >= INK_LEVEL
    reasons = []
    rows, cols = np.nonzero(mask)
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    width = stroke_width(ink)
    if extent < MIN_EXTENT_IN_STROKES * (width or 0.0) and extent <= DOT_AT_MOST * max(mask.shape):
        reasons.append("There is too little ink to read a digit: draw the whole digit, larger.")
    elif _separate_parts(mask) > 1:
        reasons.append("The ink looks like more than one digit: draw a single digit to get a reliable answer.")
    else:
        reasons += no_digit(ink, probabilities, width)
    order = np.argsort(probabilities)[::-1]
    if probabilities[order[0]] < UNSURE_BELOW:
        reasons.append(f"The model is unsure: {order[0]} ({probabilities[order[0]]:.0%}) or "
                       f"{order[1]} ({probabilities[order[1]]:.0%}).")
    return reasons


def _separate_parts(mask: np.ndarray) -> int:
    """How many sizeable groups of ink lie apart from each other."""
    from scipy import ndimage

    height, width = (-(-mask.shape[0] // CELL)) * CELL, (-(-mask.shape[1] // CELL)) * CELL
    padded = np.zeros((height, width), dtype=bool)
    padded[:mask.shape[0], :mask.shape[1]] = mask
    coarse = padded.reshape(height // CELL, CELL, width // CELL, CELL).any(axis=(1, 3))
    labels, count = ndimage.label(ndimage.binary_dilation(coarse, iterations=GAP_CELLS))
    if count < 2:
        return count
    shares = ndimage.sum_labels(coarse, labels, index=range(1, count + 1)) / coarse.sum()
    return int((shares >= MIN_PART_SHARE).sum())


def no_digit(ink: np.ndarray, probabilities: np.ndarray, width: float | None) -> list[str]:
    """One reason when `ink` looks like no digit at all (a scribble, a filled patch, a spiral); else none.

    `width` is the ink's `stroke_width`.
    """
    from scipy import ndimage

    if width is None:
        return []
    mask = ink >= SOLID
    rows, cols = np.nonzero(mask)
    size = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    outline = np.count_nonzero(mask & ~ndimage.binary_erosion(mask)) / 2 / size  # a stroke's outline is ~2x its length
    length = np.count_nonzero(mask) / width / size if width >= MIN_WIDTH_FOR_LENGTH else 0.0
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    solid = ndimage.zoom(crop, STROKE_PX / width, order=1) >= SOLID
    share = solid.sum() / max(solid.shape) ** 2
    start, end = "This does not look like a digit: ", " Take the answer as a guess; draw one digit with a few strokes."
    if share > MAX_INK_SHARE:
        return [f"{start}ink covers {share:.0%} of its area, a filled-in patch rather than strokes.{end}"]
    if outline > MAX_OUTLINE or length > MAX_LENGTH:
        return [f"{start}it has far more stroke than one digit needs.{end}"]
    crossings = _crossings(solid)
    if crossings > MAX_CROSSINGS and probabilities.max() < DOUBTFUL_BELOW:
        return [f"{start}a straight line across it meets {crossings} strokes, a digit's at most {MAX_CROSSINGS}.{end}"]
    return []


def _crossings(solid: np.ndarray) -> int:
    """The most strokes a straight line meets (rows, columns and both diagonals), seen on three lines at
    least, so a ragged edge does not count."""
    from scipy import ndimage

    most = 0
    for angle in (0, 45, 90, 135):
        turned = ndimage.rotate(np.pad(solid, 2).astype(np.uint8), angle, order=0) > 0 if angle else solid
        starts = (np.diff(turned.astype(np.int8), axis=1, prepend=0) == 1).sum(axis=1)
        most = max(most, int(np.sort(starts)[-3]) if starts.size >= 3 else 0)
    return most
