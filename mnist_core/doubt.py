"""Reasons to doubt an answer: ink that looks like several digits, too little ink, an unsure model.

A classifier always names one of ten digits, even for a dot or for "1 7" written side by side;
these checks say when its answer should not be taken at face value.
"""

from __future__ import annotations

import numpy as np

INK_LEVEL = 0.1  # as in preprocessing: a pixel this bright (0-1) counts as ink
CELL = 4  # components are found on a 4x coarser grid: fast, and hairline gaps close
GAP_CELLS = 3  # parts closer than ~2 x 3 cells (24 canvas px) count as one digit (a 5's detached bar)
MIN_PART_SHARE = 0.15  # a part with less of the ink is a stray mark, not a second digit
MIN_EXTENT_IN_STROKES = 2.5  # a drawing shorter than this many stroke widths is a dot or a dash
UNSURE_BELOW = 0.7  # a top probability under this is reported as unsure


def doubts(ink: np.ndarray, probabilities: np.ndarray) -> list[str]:
    """Plain-language reasons to doubt the prediction for `ink` (H x W, 0-1); empty when it looks fine."""
    from scipy import ndimage

    mask = ink >= INK_LEVEL
    reasons = []
    rows, cols = np.nonzero(mask)
    extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
    # A stroke of width w and length L has area ~ L*w and outline ~ 2L, so w ~ 2 * area / outline.
    outline = np.count_nonzero(mask & ~ndimage.binary_erosion(mask))
    stroke = 2 * rows.size / max(outline, 1)
    if extent < MIN_EXTENT_IN_STROKES * stroke:
        reasons.append("There is too little ink to read a digit: draw the whole digit, larger.")
    elif _separate_parts(mask) > 1:
        reasons.append("The ink looks like more than one digit: draw a single digit to get a reliable answer.")
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
