"""A photo of one digit written on paper -> the ink image and the 28x28 that drawing it would give.

A phone photo differs from the canvas in every way that matters to the model: dark ink on light
paper, uneven light, noise, specks, the paper's edge, EXIF rotation, any size and colour mode.
Each step below undoes one of these and keeps a picture of its result, so the page can show
how the 28x28 was made.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import replace

import numpy as np

from .reading import ImageError, Reading, fit, read_ink
from .strokes import stroke_width

MAX_BYTES = 10_000_000  # a 12-megapixel phone JPEG is 2-6 MB
MAX_PIXELS = 40_000_000  # read from the header, before any pixel is decoded; a JPEG decodes at 1/2-1/8 scale
FULL_SIDE = 3072  # images decoded at full size up to this squared (9.4 MP, a 4K screenshot fits): ~55 MB at peak
WEBP_SIDE = 2048  # Pillow decodes WEBP through a second full-size buffer, ~16 bytes a pixel: ~66 MB at peak
MIN_SIDE = 16  # a smaller image cannot hold a readable digit
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")  # never EPS and the like, whose decoders run programs
WORK_SIDE = 1024  # photos are read at most this large: ample for one digit, and fast
PREVIEW_SIDE = 256  # step pictures are kept this small: the page shows them as thumbnails
PAPER_GRID = 256  # the paper's level is found on a grid about this long: strokes stay visible, and it is fast
PAPER_WINDOW = 1 / 4  # of the photo's longer side: wider than a thick marker's strokes
MIN_CONTRAST = 0.1  # ink differs from the paper by at least this (0-1) ...
NOISE_TIMES = 6  # ... and by this many times the photo's noise
DARK_PHOTO = 0.25  # a photo whose median grey is below this, with nothing standing out, is dark all over
MIN_DIGIT_SHARE = 0.04  # a digit spans at least this share of the photo's longer side; smaller parts are specks
NEAR = 0.25  # a part within this share of the digit's size from its box belongs to it (a 5's detached bar) ...
MIN_PART_SHARE = 0.05  # ... when it holds at least this share of the digit's ink
CANVAS = 280  # the ink image is laid out like the drawing canvas ...
DIGIT_SIDE = 200  # ... with the digit's longer side this long, as a drawn digit typically is
STROKE = 20  # the canvas brush: thinner pen strokes are thickened to about this

NO_DIGIT = "No digit found: the photo looks like blank paper. Write one digit in dark ink, large, and photograph it."
ALL_DARK = ("No digit found: the photo is dark all over, as if it were all ink or the lens was covered. "
            "Photograph one digit on light paper.")


def read_photo(data: bytes) -> Reading:
    """Read one handwritten digit from PNG or JPEG bytes, with a picture of every step; raises ImageError with a
    reason for the user.

    Decode upright and grey; find the paper's level both ways (dark ink on light paper, light ink on a
    dark ground) and keep the way whose ink forms strokes; Otsu's threshold; the digit's parts; an
    ink image like a drawing (CANVAS square); then `reading.read_ink`, exactly as for the canvas.
    """
    grey = _decode(data)
    # Sensor noise from neighbouring pixels' differences, which the paper's shading and edges barely touch.
    noise = 1.4826 / np.sqrt(2) * float(np.median(np.abs(np.diff(grey, axis=1))))
    both = {light_ink: _separate(grey, light_ink, noise) for light_ink in (False, True)}
    parts = {light_ink: _parts(mask) for light_ink, (_, mask) in both.items()}
    # Ink forms thin strokes, while paper, a board or the table around the paper forms wide regions.
    light_ink = _thinness(parts[True]) < _thinness(parts[False])
    signal, mask = both[light_ink]
    if not mask.any():
        raise ImageError(ALL_DARK if np.median(grey) < DARK_PHOTO else NO_DIGIT)
    kept = _keep_digit(parts[light_ink])
    ink = _ink_image(signal, kept)
    reading = read_ink(ink)
    steps = [("Photo", grey), ("Ink light on dark", grey if light_ink else 1 - grey),
             ("Shading flattened", signal / max(float(signal.max()), MIN_CONTRAST)), ("Otsu threshold", mask),
             ("Digit kept", kept), ("Ink image", ink), ("28x28", reading.digit28)]
    return replace(reading, steps=tuple((name, _picture(image)) for name, image in steps))


def _decode(data: bytes) -> np.ndarray:
    """Upright grey pixels, 0-1 float32, at most WORK_SIDE a side, from untrusted bytes.

    Full-size pixels never become floats: Pillow decodes them (a JPEG at reduced scale) and turns them
    grey and small in 8 bits, so a photo costs at most a few times its decoded size (see `_open`'s caps).
    """
    from PIL import ExifTags, Image

    bombs = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # such images are refused, never just logged
        image = _open(data)
        try:
            if image.format in ("JPEG", "MPO"):
                # Decoding a JPEG at 1/2, 1/4 or 1/8 scale skips most of its work; RGB straight to grey too.
                scale = WORK_SIDE / max(image.size)
                image.draft("L" if image.mode == "RGB" else None,
                            (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
            image.load()
            orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError, *bombs):
            raise ImageError("The image file is truncated or damaged: upload it again.") from None
    try:
        grey = _grey(image)
    except ValueError:  # a mode Pillow cannot turn grey, such as a TIFF's LAB
        raise ImageError(f"Images in {image.mode} colour cannot be read: save it as an RGB or grey "
                         "PNG or JPEG.") from None
    return _upright(grey, orientation)


def _open(data: bytes):
    """Open the image lazily (header only) and refuse what cannot be one still photo of sane size."""
    from PIL import Image

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ImageError("Expected the bytes of an uploaded file.")
    if len(data) == 0:
        raise ImageError("The file is empty: upload a PNG or JPEG photo.")
    if len(data) > MAX_BYTES:
        raise ImageError(f"The file is {len(data) / 1e6:.1f} MB; photos up to {MAX_BYTES / 1e6:.0f} MB are accepted.")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        frames = getattr(image, "n_frames", 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"The image is too large; at most {MAX_PIXELS / 1e6:.0f} megapixels are accepted.") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, KeyError, TypeError):
        raise ImageError("This file is not a PNG or JPEG image.") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageError(f"The image is {width}x{height} pixels; at most {MAX_PIXELS / 1e6:.0f} megapixels "
                         "are accepted.")
    side = _full_size_side(image)
    if side and width * height > side * side:
        kind = "progressive JPEG" if image.format in ("JPEG", "MPO") else image.format
        raise ImageError(f"The image is {width}x{height} pixels; a {kind} is read up to {side}x{side} "
                         f"({side * side / 1e6:.1f} megapixels): save it smaller, or as a standard JPEG "
                         f"(up to {MAX_PIXELS / 1e6:.0f} megapixels).")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"The image is {width}x{height} pixels; a digit needs at least {MIN_SIDE} a side.")
    # Some phones save an MPO, a JPEG with extra frames (depth, previews): its first frame is the photo.
    if frames > 1 and image.format != "MPO":
        raise ImageError("The image is animated or has several frames: upload one still photo.")
    return image


def _full_size_side(image) -> int | None:
    """The side whose square caps this image's pixels, as it decodes at full size; None for a baseline JPEG.

    A baseline JPEG decodes at 1/2-1/8 scale a scan at a time (`draft`). A progressive one keeps every
    scan's coefficients for the whole image whatever the scale (117 MB for 40 MP), so it is capped too.
    """
    if image.format in ("JPEG", "MPO") and not image.info.get("progressive"):
        return None
    return WEBP_SIDE if image.format == "WEBP" else FULL_SIDE


def _grey(image) -> np.ndarray:
    """Any colour mode as grey 0-1 float32 at most WORK_SIDE a side: 16-bit and float scaled (not clipped),
    transparency on a contrasting ground. Channels are split and shrunk in Pillow, floats made only once small."""
    from PIL import ImageChops

    size = fit((image.height, image.width), WORK_SIDE) if max(image.size) > WORK_SIDE else image.size
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.nan_to_num(_shrink(image, size))
        top = float(values.max(initial=0.0))
        # 'I' and 'F' do not say their range: take the smallest usual one that holds every value.
        full = 65535.0 if image.mode.startswith("I;16") or top > 255 else 255.0 if top > 1 else 1.0
        return np.clip(values / full, 0.0, 1.0)
    if image.has_transparency_data:
        grey, alpha = _grey_and_alpha(image)
        # Shrinking grey * alpha, not grey, gives each small pixel the mean of the full-size composites.
        weighted, grey, alpha = (_shrink(channel, size) / 255 for channel in
                                 (ImageChops.multiply(grey, alpha), grey, alpha))
        if alpha.mean() > 0.5:
            # Mostly opaque: a photo with a transparent border cut around it. The border takes the
            # photo's own background level, so its edge is not mistaken for a stroke.
            ground = float(np.median(grey[alpha > 0.5]))
        else:
            # Mostly transparent: only the strokes are drawn. The ground contrasts with them: white ink -> black.
            opaque_level = float(weighted.sum() / max(alpha.sum(), 1e-6))
            ground = 0.0 if opaque_level > 0.5 else 1.0
        return weighted + ground * (1 - alpha)
    # Straight to grey: a detour through RGB would copy the full-size image at 4 bytes a pixel.
    return _shrink(image if image.mode == "L" else image.convert("L"), size) / 255


def _grey_and_alpha(image):
    """The grey and the alpha channel of an image with transparency, 8-bit each; closes `image`.

    Colour with alpha takes 4 bytes a pixel, so each full-size image is closed (its pixels freed)
    as soon as the next one is made from it.
    """
    if image.mode not in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        image.close()
        image = rgba
    grey, alpha = image.convert("L"), image.getchannel("A")
    image.close()
    return grey, alpha


def _shrink(image, size: tuple[int, int]) -> np.ndarray:
    """A Pillow image area-averaged to (width, height), in its own mode, as float32."""
    from PIL import Image

    small = image.resize(size, Image.Resampling.BOX) if image.size != size else image
    return np.asarray(small, dtype=np.float32)


def _upright(grey: np.ndarray, orientation: int) -> np.ndarray:
    """The picture as it should be shown, by its EXIF orientation (1-8), turned once it is small."""
    turns = {2: np.fliplr, 3: lambda a: np.rot90(a, 2), 4: np.flipud, 5: np.transpose,
             6: lambda a: np.rot90(a, -1), 7: lambda a: np.rot90(a, 2).T, 8: np.rot90}
    return np.ascontiguousarray(turns[orientation](grey)) if orientation in turns else grey


def _separate(grey: np.ndarray, light_ink: bool, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Ink strength per pixel with the paper's shading removed, and the ink by Otsu's threshold (empty if none).

    Ink must stand out by MIN_CONTRAST and NOISE_TIMES the photo's noise. Otsu's threshold is taken
    among the pixels above the noise: over all of them, the paper's peak drags it into the noise
    when the digit is small.
    """
    difference = grey - _paper(grey, light_ink)
    signal = np.clip(difference if light_ink else -difference, 0.0, None)
    floor = max(NOISE_TIMES / 2 * noise, MIN_CONTRAST / 2)
    above = signal[signal > floor]
    mask = signal > max(_otsu(above), floor) if above.size > 1 else np.zeros(signal.shape, dtype=bool)
    if mask.any() and signal[mask].mean() < max(MIN_CONTRAST, NOISE_TIMES * noise):
        mask[:] = False
    return signal, mask


def _paper(grey: np.ndarray, light_ink: bool) -> np.ndarray:
    """The paper's own level under the ink: shadows and the table around the paper kept, strokes removed.

    A grey closing (opening for light ink) fills every dark (light) feature narrower than PAPER_WINDOW,
    so strokes vanish while wide regions, a shadow's edge or the table, keep their place and level.
    It runs on a grid PAPER_GRID long, pooled towards the ink's side so that no block straddling the
    paper's edge smears paper over the table.
    """
    from scipy import ndimage

    factor = -(-max(grey.shape) // PAPER_GRID)
    height, width = -(-grey.shape[0] // factor) * factor, -(-grey.shape[1] // factor) * factor
    blocks = np.pad(grey, ((0, height - grey.shape[0]), (0, width - grey.shape[1])), mode="edge")
    blocks = blocks.reshape(height // factor, factor, width // factor, factor)
    # Pooling one axis at a time is 3x faster than over axis=(1, 3).
    coarse = blocks.max(axis=1).max(axis=2) if light_ink else blocks.min(axis=1).min(axis=2)
    size = max(3, round(max(coarse.shape) * PAPER_WINDOW))
    paper = ndimage.grey_opening(coarse, size=size) if light_ink else ndimage.grey_closing(coarse, size=size)
    return np.repeat(np.repeat(paper, factor, axis=0), factor, axis=1)[:grey.shape[0], :grey.shape[1]]


def _thinness(parts: tuple | None) -> float:
    """Width over length of the part taken as the digit (see `_parts`): ~0.1 for strokes, more for regions."""
    from scipy import ndimage

    if parts is None:
        return np.inf
    labels, boxes, main = parts[0], parts[1], parts[-1]
    # Closing first: a region speckled by noise or dithering is still a region, not a web of strokes.
    part = ndimage.binary_closing(np.pad(labels[boxes[main]] == main + 1, 2), iterations=2)
    # 90% of a stroke of width w lies within 0.45 w of its edge; a wide region's pixels lie deeper.
    width = 2 * np.percentile(ndimage.distance_transform_edt(part)[part], 90)
    return width / max(part.shape)


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold: the level that best splits the histogram into two classes (max between-class variance)."""
    counts, edges = np.histogram(values, bins=256)
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)[:-1].astype(np.float64)
    above = counts.sum() - below
    mass = np.cumsum(counts * centres)[:-1]
    mean_below = mass / np.maximum(below, 1)
    mean_above = (mass[-1] + counts[-1] * centres[-1] - mass) / np.maximum(above, 1)
    return float(edges[1:-1][np.argmax(below * above * (mean_below - mean_above) ** 2)])


def _parts(mask: np.ndarray) -> tuple | None:
    """The ink's connected parts (labels, boxes, areas, clear of the border) and which is the digit; None if none.

    The digit is the largest part spanning MIN_DIGIT_SHARE of the photo, preferring parts clear of the
    photo's border: a paper edge or the table touches it, a digit only when cropped tightly.
    """
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count == 0:
        return None
    boxes = ndimage.find_objects(labels)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    spans = np.array([max(r.stop - r.start, c.stop - c.start) for r, c in boxes])
    inner = np.array([r.start > 0 and c.start > 0 and r.stop < mask.shape[0] and c.stop < mask.shape[1]
                      for r, c in boxes])
    digit_sized = spans >= MIN_DIGIT_SHARE * max(mask.shape)
    candidates = digit_sized & inner if (digit_sized & inner).any() else digit_sized
    if not candidates.any():
        return None
    return labels, boxes, areas, inner, int(np.argmax(np.where(candidates, areas, -1)))


def _keep_digit(parts: tuple | None) -> np.ndarray:
    """The digit's ink alone (see `_parts`), with the parts that belong to it; specks and edges dropped.

    Another part stays when its box lies within NEAR x the digit's longer side of the digit's box, it
    holds MIN_PART_SHARE to all of the digit's ink, and it is clear of the border if the digit is: a
    5's detached bar, a pencil stroke broken in two; not the table around the paper.
    """
    if parts is None:
        raise ImageError(NO_DIGIT)
    labels, boxes, areas, inner, main = parts
    rows, cols = boxes[main]
    margin = NEAR * max(rows.stop - rows.start, cols.stop - cols.start)
    near = np.array([r.start < rows.stop + margin and r.stop > rows.start - margin and
                     c.start < cols.stop + margin and c.stop > cols.start - margin for r, c in boxes])
    keep = near & (areas >= MIN_PART_SHARE * areas[main]) & (areas <= areas[main]) & (inner | ~inner[main])
    return np.isin(labels, np.flatnonzero(keep) + 1)


def _ink_image(signal: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """The kept ink as a drawing: soft 0-1 strokes, the digit DIGIT_SIDE long in a CANVAS-square frame."""
    from scipy import ndimage

    grown = ndimage.binary_dilation(kept, iterations=2)  # the soft rim of each stroke, below the threshold
    full = float(np.percentile(signal[kept], 90))  # a stroke's core is full ink, as on the canvas
    ink = np.where(grown, np.clip(signal / full, 0.0, 1.0), 0.0).astype(np.float32)
    rows, cols = np.nonzero(grown)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    crop = np.clip(_resize(crop, fit(crop.shape, DIGIT_SIDE)), 0.0, 1.0)
    crop = _thicken(crop)
    frame = np.zeros((CANVAS, CANVAS), dtype=np.float32)
    top, left = (CANVAS - crop.shape[0]) // 2, (CANVAS - crop.shape[1]) // 2
    frame[top:top + crop.shape[0], left:left + crop.shape[1]] = crop
    return frame


def _thicken(ink: np.ndarray) -> np.ndarray:
    """Widen strokes thinner than STROKE (a ballpoint's are), so the 28x28 has MNIST's 2-pixel strokes."""
    from scipy import ndimage

    width = stroke_width(ink)
    grow = 0 if width is None else int(round(STROKE - width))
    if grow < 2:
        return ink
    radius = grow / 2
    y, x = np.ogrid[-int(radius):int(radius) + 1, -int(radius):int(radius) + 1]
    return ndimage.grey_dilation(ink, footprint=x * x + y * y <= radius * radius)


def _resize(values: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float image resized to (width, height): area-averaged when shrinking, smooth when growing."""
    from PIL import Image

    shrinking = size[0] < values.shape[1]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    resized = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32)).resize(size, method)
    return np.asarray(resized, dtype=np.float32)


def _picture(image: np.ndarray) -> np.ndarray:
    """A step's image (bool or 0-1 float) as uint8, at most PREVIEW_SIDE a side."""
    values = np.clip(image.astype(np.float32), 0.0, 1.0)
    if max(values.shape) > PREVIEW_SIDE:
        values = _resize(values, fit(values.shape, PREVIEW_SIDE))
    return (values * 255 + 0.5).astype(np.uint8)
