"""Photos of a handwritten digit -> the 28x28 a drawing gives; every bad upload -> one clear ImageError."""

import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from bench.uploads import UPLOADS, measure
from mnist_core.photo import CANVAS, read_photo
from mnist_core.catalogue import bundled_model, load_predictor
from mnist_core.reading import ImageError, to_mnist


def _arc(cx, cy, rx, ry, start, stop, steps=24):
    """Points on an ellipse from angle `start` to `stop` (degrees, 0 = right, 90 = down)."""
    angles = np.radians(np.linspace(start, stop, steps))
    return list(zip(cx + rx * np.cos(angles), cy + ry * np.sin(angles)))


# Each digit as pen strokes in a unit box (x right, y down), written the way people write them.
STROKES = {
    0: [_arc(0.5, 0.5, 0.36, 0.47, -90, 275)],
    1: [[(0.58, 0.02), (0.42, 0.98)]],
    2: [_arc(0.5, 0.3, 0.36, 0.27, 200, 370) + [(0.12, 0.96), (0.9, 0.96)]],
    3: [_arc(0.45, 0.26, 0.38, 0.24, 200, 450) + _arc(0.45, 0.73, 0.42, 0.25, -90, 150)],
    4: [[(0.2, 0.02), (0.08, 0.62), (0.92, 0.62)], [(0.68, 0.2), (0.66, 0.98)]],
    5: [[(0.4, 0.02), (0.9, 0.02)], [(0.22, 0.14), (0.2, 0.46)] + _arc(0.46, 0.68, 0.4, 0.28, -130, 150)],
    7: [[(0.08, 0.04), (0.92, 0.04), (0.38, 0.98)]],
}


def ink_coverage(digit, size=(640, 480), height=0.55, pen=0.09, angle=0.0):
    """How much pen ink covers each pixel (0-1): round pen, drawn at 2x and averaged down."""
    width, rows = size[0] * 2, size[1] * 2
    canvas = Image.new("L", (width, rows), 0)
    draw = ImageDraw.Draw(canvas)
    side = height * rows
    left, top, pen_px = (width - 0.7 * side) / 2, (rows - side) / 2, max(2, round(pen * side))
    for stroke in STROKES[digit]:
        points = [(left + x * 0.7 * side, top + y * side) for x, y in stroke]
        draw.line(points, fill=255, width=pen_px, joint="curve")
        for x, y in (points[0], points[-1]):  # round caps
            draw.ellipse((x - pen_px / 2, y - pen_px / 2, x + pen_px / 2, y + pen_px / 2), fill=255)
    canvas = canvas.rotate(angle, resample=Image.Resampling.BILINEAR)
    return np.asarray(canvas.reduce(2), dtype=np.float32) / 255


def photo_pixels(digit, size=(640, 480), ink=60, paper=215, shadow=0.35, noise=4.0, seed=0, **pen):
    """A phone-like grey photo: dark ink on light paper, a shadow across it, blur and sensor noise."""
    rng = np.random.default_rng(seed)
    coverage = ink_coverage(digit, size, **pen)
    rows, cols = np.mgrid[0:size[1], 0:size[0]]
    light = 1 - shadow * (cols / size[0]) * (0.6 + 0.4 * rows / size[1])  # darker towards one corner
    grey = light * (paper * (1 - coverage) + ink * coverage)
    grey = ndimage.gaussian_filter(grey, 1.0) + rng.normal(0, noise, grey.shape)
    return np.clip(grey, 0, 255).astype(np.uint8)


def encode(pixels, fmt="JPEG", mode=None, **options) -> bytes:
    """Bytes of an image file, as an upload would send them."""
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    if mode:
        image = image.convert(mode)
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def tinted(grey):
    """A grey photo as RGB with a slightly blue paper and warm ink, like an indoor phone shot."""
    return np.clip(np.stack([grey * 0.97, grey * 1.0, grey * 1.04 + 4], axis=-1), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def read():
    """The digit the bundled model reads from a photo's 28x28."""
    model = load_predictor(bundled_model())
    return lambda data: int(np.argmax(model.probabilities(read_photo(data).digit28)))


@pytest.mark.parametrize("digit, options", [
    (0, dict(shadow=0.45, angle=4)),
    (1, dict(pen=0.05, angle=-6, ink=75)),
    (3, dict(paper=190, ink=45, angle=3)),
    (4, dict(shadow=0.2, angle=-3, seed=2)),
    (7, dict(pen=0.03, ink=80, paper=225)),  # a ballpoint's hairline, thickened to MNIST's strokes
    (2, dict(size=(480, 640), angle=2)),
    (5, dict(angle=-2)),  # the 5's top bar is written apart from the rest, and must survive
])
def test_photographed_digits_are_read(read, digit, options):
    """Shaded, noisy, slightly rotated JPEG photos of several digits are read by the bundled model."""
    size = options.pop("size", (640, 480))
    assert read(encode(tinted(photo_pixels(digit, size, **options)), quality=80)) == digit


def test_big_photo_is_shrunk_and_read(read):
    """A 12-megapixel phone JPEG is decoded at reduced size and still read."""
    small = Image.fromarray(tinted(photo_pixels(3, (1000, 750), noise=3)))
    data = encode(small.resize((4000, 3000), Image.Resampling.BICUBIC), quality=85)
    assert read(data) == 3
    assert max(read_photo(data).steps[0][1].shape) <= 256


def test_hairline_strokes_are_thickened_like_the_canvas_brush(read):
    """A fine pen's strokes (2% of the digit's height) are widened to the canvas brush's ~20 px."""
    data = encode(tinted(photo_pixels(4, pen=0.02, seed=1, angle=-4)), quality=80)
    mask = read_photo(data).ink >= 0.5
    outline = np.count_nonzero(mask & ~ndimage.binary_erosion(mask))
    assert 2 * mask.sum() / outline > 14  # unthickened, about 4
    assert read(data) == 4


def test_phone_mpo_is_read_as_its_first_frame(read):
    """Some phones save a JPEG with extra frames (MPO): that is one photo, not an animation."""
    frames = [Image.fromarray(tinted(photo_pixels(1))), Image.fromarray(tinted(photo_pixels(7)))]
    out = io.BytesIO()
    frames[0].save(out, "MPO", save_all=True, append_images=frames[1:], quality=85)
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    assert read(out.getvalue()) == 1


def test_a_fives_detached_bar_is_kept():
    """A part written apart from the digit but close to it stays; the dust far from it does not."""
    grey = photo_pixels(5, angle=-2)
    grey[40:44, 40:44] = 70  # dust in a corner
    reading = read_photo(encode(grey, quality=85))
    otsu = ndimage.label(dict(reading.steps)["Otsu threshold"] > 127)[1]
    kept = ndimage.label(dict(reading.steps)["Digit kept"] > 127)[1]
    assert kept == 2 and otsu > kept


def test_uneven_lighting_is_flattened(read):
    """A shadow darkens one corner of the paper nearly to the ink's grey, yet only the digit is taken for ink."""
    pixels = photo_pixels(4, shadow=0.6, paper=225, ink=70)
    reading = read_photo(encode(pixels, quality=85))
    mask = dict(reading.steps)["Otsu threshold"] > 127
    assert mask.mean() < 0.12  # one global threshold would take 45% of the photo for ink
    assert read(encode(pixels, quality=85)) == 4


def test_exif_rotation_is_undone(read):
    """A 7 stored sideways with an EXIF tag saying so comes out upright, as the upright photo does; without
    the tag it stays sideways (compared as images: a strong model may still read a sideways 7 as a 7)."""
    upright = Image.fromarray(tinted(photo_pixels(7)))
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    tagged = encode(sideways, exif=exif.tobytes(), quality=85)
    assert read(tagged) == 7
    as_shot = read_photo(encode(upright, quality=85)).digit28
    assert np.abs(read_photo(tagged).digit28 - as_shot).mean() < 0.02
    assert np.abs(read_photo(encode(sideways, quality=85)).digit28 - as_shot).mean() > 0.05


def test_polarity_is_detected_both_ways(read):
    """Dark ink on paper is inverted; light chalk on a dark board is kept; both give light ink on dark."""
    paper = photo_pixels(3)
    chalk = photo_pixels(3, ink=235, paper=40, shadow=0.2, seed=5)
    for pixels, inverted in ((paper, True), (chalk, False)):
        steps = dict(read_photo(encode(pixels, quality=85)).steps)
        photo, ink_view = steps["Photo"].astype(int), steps["Ink light on dark"].astype(int)
        assert np.abs((255 - photo if inverted else photo) - ink_view).max() <= 1
        assert np.median(ink_view) < 100 < ink_view.max()
        assert read(encode(pixels, quality=85)) == 3


def test_canvas_screenshot_reads_like_the_canvas(read):
    """White strokes on black, like the drawing canvas, give the 28x28 the canvas itself gives."""
    canvas = np.zeros((CANVAS, CANVAS, 4), dtype=np.uint8)
    canvas[..., 3] = 255
    canvas[..., :3] = (ink_coverage(0, (CANVAS, CANVAS), height=0.7, pen=0.1)[..., None] * 255).astype(np.uint8)
    reading = read_photo(encode(canvas, "PNG"))
    assert read(encode(canvas, "PNG")) == 0
    assert np.abs(reading.digit28 - to_mnist(canvas)).mean() < 0.05


@pytest.mark.parametrize("kind", ["16-bit PNG", "CMYK JPEG", "RGBA PNG", "white ink on transparent", "palette PNG",
                                  "grey+alpha PNG", "float TIFF"])
def test_colour_modes_are_read(read, kind):
    """Every colour mode a photo may come in is reduced to grey without losing the digit."""
    grey = photo_pixels(7, noise=2)
    if kind == "16-bit PNG":
        data = encode(Image.fromarray(grey.astype(np.uint16) * 257), "PNG")  # clipped to 8 bits it would be white
    elif kind == "CMYK JPEG":
        data = encode(tinted(grey), mode="CMYK", quality=90)
    elif kind == "RGBA PNG":
        rgba = np.dstack([tinted(grey), np.full(grey.shape, 255, np.uint8)])
        rgba[:, :60, 3] = rgba[:40, :, 3] = 0  # a transparent border, as cut out of a bigger picture
        data = encode(rgba, "PNG")
    elif kind == "white ink on transparent":
        alpha = (ink_coverage(7) * 255).astype(np.uint8)
        data = encode(np.dstack([np.full(grey.shape + (3,), 255, np.uint8), alpha]), "PNG")
    elif kind == "palette PNG":
        data = encode(tinted(grey), "PNG", mode="P")
    elif kind == "grey+alpha PNG":
        data = encode(np.dstack([grey, np.full(grey.shape, 255, np.uint8)]), "PNG")
    else:
        data = encode(Image.fromarray(grey.astype(np.float32) / 255), "TIFF")
    assert read(data) == 7


def test_every_step_is_returned():
    """Each step is a named uint8 picture, small enough for a thumbnail; the ink image is canvas-sized."""
    reading = read_photo(encode(tinted(photo_pixels(4, (1280, 960))), quality=85))
    names = [name for name, _ in reading.steps]
    assert names == ["Photo", "Ink light on dark", "Shading flattened", "Otsu threshold", "Digit kept", "Ink image",
                     "28x28"]
    for _, picture in reading.steps:
        assert picture.dtype == np.uint8 and picture.ndim == 2 and max(picture.shape) <= 256 and picture.max() > 0
    assert reading.ink.shape == (CANVAS, CANVAS) and reading.digit28.shape == (28, 28)
    assert reading.digit28.dtype == np.float32 and 0 <= reading.digit28.min() and reading.digit28.max() <= 1


def test_paper_on_a_dark_table_and_specks_are_dropped(read):
    """The table around a sheet of paper and dust specks on it are not part of the digit."""
    grey = photo_pixels(3, height=0.45).astype(np.float32)
    rows, cols = np.mgrid[0:480, 0:640]
    table = (abs(cols - 330) > 200) | (abs(rows - 235) > 165)  # the sheet is 400x330, off-centre
    grey[table] = 70 + 12 * np.sin(cols[table] / 9)  # wood grain
    for y, x in np.random.default_rng(1).integers(90, 380, size=(12, 2)):
        grey[y:y + 3, x + 50:x + 53] = 60  # specks of dust
    reading = read_photo(encode(grey.astype(np.uint8), quality=85))
    kept = np.nonzero(dict(reading.steps)["Digit kept"] > 127)
    scale = 256 / 640
    assert kept[1].min() > 130 * scale and kept[1].max() < 530 * scale  # inside the sheet
    assert read(encode(grey.astype(np.uint8), quality=85)) == 3


def test_an_mnist_image_reads_as_itself(read):
    """A 28x28 white-on-black digit, as in MNIST, is read like any photo."""
    digit28 = to_mnist((ink_coverage(7, (280, 280), height=0.7, pen=0.1) * 255).astype(np.uint8))
    assert read(encode((digit28 * 255).astype(np.uint8), "PNG")) == 7


def png_header_claiming(width, height) -> bytes:
    """A tiny PNG whose header claims a huge size, as a decompression bomb does."""
    data = bytearray(encode(np.zeros((20, 20), np.uint8), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:33] = ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def animated(fmt) -> bytes:
    """Two frames of digits as an animated GIF or PNG."""
    frames = [Image.fromarray(photo_pixels(digit, (160, 120))) for digit in (1, 7)]
    out = io.BytesIO()
    frames[0].save(out, fmt, save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


BAD_UPLOADS = {
    "empty file": (lambda: b"", "empty"),
    "random bytes": (lambda: np.random.default_rng(0).bytes(5000), "not a PNG or JPEG"),
    "text file": (lambda: b"Dear diary, today I wrote the digit 7.\n" * 20, "not a PNG or JPEG"),
    "over the byte limit": (lambda: b"\xff\xd8" + bytes(11_000_000), "MB"),
    "truncated PNG": (lambda: encode(photo_pixels(3), "PNG")[:20_000], "truncated or damaged"),
    "truncated JPEG": (lambda: encode(photo_pixels(3), quality=90)[:6_000], "truncated or damaged"),
    "48 megapixels": (lambda: png_header_claiming(8000, 6000), "8000x6000 pixels; at most 40 megapixels"),
    "over Pillow's warning size": (lambda: png_header_claiming(12_000, 9_000), "at most 40 megapixels"),
    "decompression bomb": (lambda: png_header_claiming(60_000, 60_000), "too large"),
    "PNG over 3072x3072": (lambda: png_header_claiming(6300, 6300), "6300x6300 pixels; a PNG is read up to 3072x3072"),
    "progressive JPEG over 3072x3072": (lambda: encode(Image.new("L", (3200, 3200), 200), progressive=True),
                                        "a progressive JPEG is read up to 3072x3072"),
    "WEBP over 2048x2048": (lambda: encode(Image.new("L", (2100, 2100), 200), "WEBP"),
                            "a WEBP is read up to 2048x2048"),
    "tiny": (lambda: encode(np.zeros((8, 8), np.uint8), "PNG"), "at least 16"),
    "LAB TIFF": (lambda: encode(Image.new("RGB", (300, 200), (220, 220, 220)), "TIFF", mode="LAB"),
                 "Images in LAB colour cannot be read"),
    "animated GIF": (lambda: animated("GIF"), "one still photo"),
    "animated PNG": (lambda: animated("PNG"), "one still photo"),
    "blank paper": (lambda: encode(photo_pixels(1, ink=215, shadow=0.4, noise=5), quality=75),
                    "No digit found: the photo looks like blank paper"),
    "all ink": (lambda: encode(photo_pixels(1, ink=50, paper=50, noise=6), quality=80), "dark all over"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_bad_uploads_get_one_clear_error(name):
    """Each kind of unusable upload raises ImageError saying what is wrong; no other error, no warning."""
    make, message = BAD_UPLOADS[name]
    data = make()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageError, match=message):
            read_photo(data)


PEAK_MB = 80  # over the memory in use after a first small photo: tens of MB, for twenty uploads at once


@pytest.mark.parametrize("name", ["6300x6300 RGBA PNG", "5 MB 1-bit noise PNG", "3072x3072 RGBA PNG"])
def test_reading_one_upload_costs_tens_of_megabytes_at_most(name):
    """Read in a fresh process, a huge PNG of a small file, 5 MB of 1-bit noise or the largest PNG accepted
    raises the peak memory by under PEAK_MB (the first once cost 1 GB; a 12 MP JPEG, see bench.uploads, 32 MB)."""
    assert measure(UPLOADS[name]())["growth_mb"] < PEAK_MB
