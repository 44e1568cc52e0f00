"""Why a model answered: which input pixels its answer depends on (occlusion sensitivity) and its runners-up.

Everything runs on the numpy forward pass of `mnist_core.predict.Predictor`; no TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .predict import Predictor
from .reading import SIZE

PATCH = 6  # an occluding square about a stroke's width and a half: covers one part of a digit at a time
STRIDE = 2  # 12 x 12 patch positions, ~150 forward passes (~0.2 s)


def occlusion_saliency(predictor: Predictor, digit28: np.ndarray, digit: int) -> np.ndarray:
    """28x28 map of how much the probability of `digit` drops when each region is blanked out.

    Higher means the answer relies more on that region; 0 means blanking it did not lower the answer.
    """
    image = np.asarray(digit28, dtype=np.float32)
    base = predictor.probabilities(image)[digit]
    drop = np.zeros((SIZE, SIZE), dtype=np.float32)
    hits = np.zeros((SIZE, SIZE), dtype=np.float32)
    for top in range(0, SIZE - PATCH + 1, STRIDE):
        for left in range(0, SIZE - PATCH + 1, STRIDE):
            window = (slice(top, top + PATCH), slice(left, left + PATCH))
            if not image[window].any():
                hits[window] += 1  # blanking background changes nothing: no forward pass needed
                continue
            occluded = image.copy()
            occluded[window] = 0.0
            drop[window] += max(0.0, base - predictor.probabilities(occluded)[digit])
            hits[window] += 1
    return drop / np.maximum(hits, 1)


def top_classes(probabilities: np.ndarray, count: int = 3) -> list[tuple[int, float]]:
    """The `count` most probable digits with their probabilities, most probable first."""
    order = np.argsort(probabilities)[::-1][:count]
    return [(int(digit), float(probabilities[digit])) for digit in order]


def tile_maps(maps: np.ndarray, columns: int = 8, min_side: int = 0, gap: int = 1) -> np.ndarray:
    """An H x W x C stack of feature maps as one grid image (uint8), each map scaled to its own range.

    Each map is enlarged by a whole factor, with hard pixel edges, until its longer side is at least
    `min_side` pixels, so a later conv's 3x3 map reads as well as the first conv's 26x26 one. Maps are
    `gap` white pixels apart: a dark map's edge would vanish into a black gap.
    """
    height, width, channels = maps.shape
    zoom = max(1, -(-min_side // max(height, width)))
    cell_height, cell_width = height * zoom, width * zoom
    rows = -(-channels // columns)
    grid = np.full((rows * (cell_height + gap) - gap, columns * (cell_width + gap) - gap), 255, dtype=np.uint8)
    for channel in range(channels):
        plane = maps[..., channel]
        span = plane.max() - plane.min()
        scaled = (plane - plane.min()) / span if span > 0 else np.zeros_like(plane)
        row, column = divmod(channel, columns)
        top, left = row * (cell_height + gap), column * (cell_width + gap)
        grid[top:top + cell_height, left:left + cell_width] = np.kron((scaled * 255).astype(np.uint8),
                                                                      np.ones((zoom, zoom), dtype=np.uint8))
    return grid
