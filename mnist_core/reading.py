"""A canvas drawing or a photo's ink -> a 28x28 digit made the way MNIST's were, and what was done to it.

MNIST digits were size-normalised to fit a 20x20 box (keeping the aspect ratio, anti-aliased)
and centred in 28x28 by their centre of mass. A bare resize of a canvas to 28x28 skips both
steps and fails on digits drawn small or off-centre. `mnist_core.photo` turns a photo into an
ink map first, then reads it here exactly as a drawing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .strokes import StrokeChange, normalise_width

BOX = 20  # MNIST's size-normalisation box
SIZE = 28
CANVAS_BRUSH = 20  # the Predict canvas' brush, px of 280: MNIST strokes are about 2 px of 28
INK_LEVEL = 0.1  # a pixel this bright (0-1) or more counts as ink
MIN_INK_PIXELS = 4  # fewer is an empty canvas (or a speck of anti-aliasing), not a digit
MAX_SIDE = 4096  # canvases are a few hundred pixels; refuse anything absurd


class ImageError(ValueError):
    """The image is not something a digit can be read from."""


@dataclass(frozen=True)
class Reading:
    """What an image was turned into: the 28x28 the model reads, and the steps on the way."""

    ink: np.ndarray  # H x W float32 0-1, light ink on black, as drawn on the canvas
    digit28: np.ndarray | None  # the 28x28 float32 the model sees; None when there is no ink
    strokes: StrokeChange | None = None  # how the strokes were brought toward MNIST's width
    steps: tuple[tuple[str, np.ndarray], ...] = ()  # (step name, uint8 picture) for display; a photo's only


def read_canvas(image: np.ndarray) -> Reading:
    """Read a canvas image (H, W), (H, W, 3) or (H, W, 4); raises ImageError for unusable arrays."""
    return read_ink(ink(image))


def to_mnist(image: np.ndarray) -> np.ndarray | None:
    """The float32 28x28 in [0, 1] of a canvas image, ink light on a dark or transparent background as on
    MNIST; None for a blank canvas."""
    return read_canvas(image).digit28


def read_ink(ink_map: np.ndarray, normalise_strokes: bool = True) -> Reading:
    """The MNIST-style 28x28 of an ink map (H, W, 0-1, as `ink` gives), strokes brought near MNIST's width.

    Its digit28 is None when the map holds no ink; `normalise_strokes=False` keeps the strokes as drawn.
    """
    crop = _ink_box(ink_map)
    if crop is None:
        return Reading(ink_map, None)
    if not normalise_strokes:
        return Reading(ink_map, _centre_by_mass(_fit_box(crop)))
    crop, strokes = normalise_width(crop, BOX / max(crop.shape))
    crop = _ink_box(crop) if strokes is not None and strokes.changed else crop
    return Reading(ink_map, None if crop is None else _centre_by_mass(_fit_box(crop)), strokes)


def _ink_box(ink_map: np.ndarray) -> np.ndarray | None:
    """The smallest rectangle holding all the ink, or None for too little ink."""
    rows, cols = np.nonzero(ink_map >= INK_LEVEL)
    if rows.size < MIN_INK_PIXELS:
        return None
    return ink_map[rows.min():rows.max() + 1, cols.min():cols.max() + 1]


def ink(image: np.ndarray) -> np.ndarray:
    """How much ink each pixel holds, 0-1, from a canvas image; raises ImageError for unusable arrays."""
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.size == 0:
        raise ImageError("Expected an image array of shape (H, W) or (H, W, channels).")
    if image.shape[0] > MAX_SIDE or image.shape[1] > MAX_SIDE:
        raise ImageError(f"Image is {image.shape[1]}x{image.shape[0]}; at most {MAX_SIDE} pixels a side.")
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ImageError(f"Expected 1, 3 or 4 channels, got {image.shape[2]}.")
    if image.dtype.kind not in "uif":
        raise ImageError(f"Expected numeric pixels, got {image.dtype}.")
    scale = 255.0 if image.dtype.kind in "ui" else 1.0
    # Reduce to one channel before converting to float: the canvas sends 4 bytes a pixel.
    if image.ndim == 2:
        grey = image
    else:
        channels = [image[..., c] for c in range(min(3, image.shape[2]))]
        grey = np.maximum.reduce(channels)  # 25x faster than .max(axis=2) on interleaved bytes
    ink = grey.astype(np.float32) / scale
    if image.ndim == 3 and image.shape[2] == 4:
        ink *= image[..., 3].astype(np.float32) / scale  # a transparent pixel is background
    if scale == 1.0:
        ink = np.nan_to_num(ink)
    return np.clip(ink, 0.0, 1.0, out=ink)


def fit(shape: tuple[int, ...], side: int) -> tuple[int, int]:
    """(width, height) for an image of `shape` (rows, columns) with the longer side `side`, aspect kept."""
    scale = side / max(shape[:2])
    return max(1, round(shape[1] * scale)), max(1, round(shape[0] * scale))


def _fit_box(crop: np.ndarray) -> np.ndarray:
    """Scale so the longer side is BOX pixels, keeping the aspect ratio, with anti-aliasing."""
    from PIL import Image

    resized = Image.fromarray(crop.astype(np.float32), mode="F").resize(fit(crop.shape, BOX), Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def _centre_by_mass(box: np.ndarray) -> np.ndarray:
    """Place `box` in a 28x28 frame so that its centre of mass lands on the centre pixel."""
    from scipy import ndimage

    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    cy, cx = ndimage.center_of_mass(box)
    top, left = int(round(SIZE / 2 - cy)), int(round(SIZE / 2 - cx))
    top = min(max(top, 0), SIZE - box.shape[0])  # a lopsided digit still fits the frame
    left = min(max(left, 0), SIZE - box.shape[1])
    out[top:top + box.shape[0], left:left + box.shape[1]] = box
    return out


def enlarge(digit28: np.ndarray, factor: int = 5) -> np.ndarray:
    """The 28x28 input as uint8, scaled up with hard pixel edges for display."""
    return np.kron((digit28 * 255).astype(np.uint8), np.ones((factor, factor), dtype=np.uint8))
