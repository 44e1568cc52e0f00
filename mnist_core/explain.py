"""Why a model answered: which input pixels its answer depends on (occlusion sensitivity) and its runners-up.

Everything runs on the numpy forward pass of `mnist_core.predict.Predictor`; no TensorFlow.
"""

from __future__ import annotations

import numpy as np

from .predict import SIZE, Predictor

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


def tile_maps(maps: np.ndarray, columns: int = 8) -> np.ndarray:
    """An H x W x C stack of feature maps as one grid image (uint8), each map scaled to its own range."""
    height, width, channels = maps.shape
    rows = -(-channels // columns)
    grid = np.zeros((rows * (height + 1) - 1, columns * (width + 1) - 1), dtype=np.uint8)
    for channel in range(channels):
        plane = maps[..., channel]
        span = plane.max() - plane.min()
        scaled = (plane - plane.min()) / span if span > 0 else np.zeros_like(plane)
        row, column = divmod(channel, columns)
        grid[row * (height + 1):row * (height + 1) + height,
             column * (width + 1):column * (width + 1) + width] = (scaled * 255).astype(np.uint8)
    return grid
