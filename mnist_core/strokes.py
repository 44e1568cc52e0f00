"""Stroke width: estimate it, and thin or thicken a drawing toward MNIST's.

A canvas brush has one width whatever the size of the digit, so a digit drawn small comes out, once
scaled up to MNIST's 20-pixel box, several times bolder than MNIST's strokes, and one drawn huge comes
out hairline thin. Both are read worse. The width is estimated from the distance transform: a ridge
pixel of a stroke w pixels wide lies about w / 2 from the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MNIST_WIDTH = 2.4  # median width of MNIST training strokes, 28x28 pixels (by `stroke_width` at 8x zoom: 2.38)
TOLERANCE = 1.4  # widths within this factor of MNIST's are left alone: 80% of MNIST lies in 1.7-3.6 px
SOLID = 0.5  # ink at or above this is stroke, for measuring


@dataclass(frozen=True)
class StrokeChange:
    """How a drawing's strokes were changed: widths in pixels of the 28x28 image the model reads."""

    before: float
    after: float

    @property
    def changed(self) -> bool:
        return abs(self.after - self.before) > 1e-6

    def text(self) -> str:
        """One sentence for the page, in pixels of the 28x28 image."""
        low, high = MNIST_WIDTH / TOLERANCE, MNIST_WIDTH * TOLERANCE
        if not self.changed:
            return (f"Strokes {self.before:.1f} px wide (of 28), within MNIST's {low:.1f}-{high:.1f} px: "
                    f"kept as drawn.")
        verb = "thinned" if self.after < self.before else "thickened"
        side = "above" if self.after < self.before else "below"
        # Two decimals here: at one, a width just outside the range would read as its bound ("1.7, below 1.7").
        return (f"Strokes {verb} from {self.before:.2f} to {self.after:.2f} px (of 28): {side} MNIST's "
                f"{low:.2f}-{high:.2f} px, so brought toward its typical {MNIST_WIDTH} px.")


def stroke_width(ink_map: np.ndarray) -> float | None:
    """The typical stroke width of an ink map, in its own pixels; None without solid ink. The app's one width
    estimate: stroke normalisation, a photo's thickening and the doubts all use it."""
    from scipy import ndimage

    solid = ink_map >= SOLID
    if not solid.any():
        return None
    depth = ndimage.distance_transform_edt(np.pad(solid, 1))[1:-1, 1:-1]
    ridge = solid & (depth >= ndimage.maximum_filter(depth, size=3))
    return float(2 * np.median(depth[ridge]) - 1)


def normalise_width(crop: np.ndarray, scale: float) -> tuple[np.ndarray, StrokeChange | None]:
    """`crop` (an ink map that will be scaled by `scale` into the 28x28) with strokes near MNIST's width.

    Widths within TOLERANCE of MNIST's are kept; others are eroded or dilated, in the crop's own pixels
    and with a one-pixel soft edge, so that after scaling they are MNIST_WIDTH wide.
    """
    from scipy import ndimage

    width = stroke_width(crop)
    if width is None:
        return crop, None
    seen = width * scale
    if 1 / TOLERANCE <= seen / MNIST_WIDTH <= TOLERANCE:
        return crop, StrokeChange(seen, seen)
    change = (width - MNIST_WIDTH / scale) / 2  # pixels to take off (or add to) each side of a stroke
    margin = int(np.ceil(max(0.0, -change))) + 1  # room for strokes to grow into
    solid = np.pad(crop >= SOLID, margin)
    if change > 0:
        depth = ndimage.distance_transform_edt(solid)
        reshaped = np.clip(depth - change, 0.0, 1.0)
    else:
        distance = ndimage.distance_transform_edt(~solid)
        reshaped = np.clip(1.0 - (distance + change), 0.0, 1.0)
    reshaped = reshaped.astype(np.float32)
    after = stroke_width(reshaped)
    return reshaped, StrokeChange(seen, (after if after is not None else 0.0) * scale)
