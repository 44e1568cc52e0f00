"""Peak memory and time of reading one photo upload, for the uploads that cost the most.

    python -m bench.uploads

Each upload is read by `read_photo` in a fresh process, after a small photo has been read there
first (so every import and lazy load is paid): the peak resident memory above that baseline is
what one more upload costs the server at worst, and what twenty at once cost twenty times over.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_SIDE = 64  # the photo read before the baseline is taken: small, but through every step


def rgba_png(side: int, fmt: str = "PNG") -> bytes:
    """A side x side RGBA image of a 7 on white: as a PNG 6300 a side is about 190 KB, 40 MP decoded."""
    from PIL import Image, ImageDraw

    image = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    points = [(side * 0.24, side * 0.13), (side * 0.76, side * 0.13), (side * 0.41, side * 0.87)]
    ImageDraw.Draw(image).line(points, fill=(20, 20, 20, 255), width=side // 20)
    return _encode(image, fmt, **({"compression": "tiff_deflate"} if fmt == "TIFF" else {}))


def noise_png(side: int) -> bytes:
    """A side x side 1-bit PNG of random noise, which no compression shrinks: 6300 a side is 5 MB."""
    from PIL import Image

    bits = np.random.default_rng(0).bytes(-(-side // 8) * side)  # rows are padded to whole bytes
    return _encode(Image.frombytes("1", (side, side), bits), "PNG")


def phone_jpeg(width: int, height: int, **options) -> bytes:
    """A JPEG like a phone's: a dark 3 on shaded, slightly noisy paper (4000x3000 is 12 MP, about 2 MB)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (width, height), 210)
    ImageDraw.Draw(image).arc((width * 0.35, height * 0.23, width * 0.65, height * 0.77), -160, 160, fill=50,
                              width=width // 45)
    pixels = np.asarray(image, np.float32) - np.linspace(0, 60, width, dtype=np.float32)
    pixels += np.random.default_rng(0).normal(0, 4, pixels.shape).astype(np.float32)
    rgb = np.clip(np.stack([pixels * 0.97, pixels, pixels * 1.03 + 4], axis=-1), 0, 255).astype(np.uint8)
    return _encode(Image.fromarray(rgb), "JPEG", quality=90, **options)


UPLOADS = {  # the three of issue 25, then the largest of each kind that is still read
    "6300x6300 RGBA PNG": lambda: rgba_png(6300),
    "5 MB 1-bit noise PNG": lambda: noise_png(6300),
    "12 MP phone JPEG": lambda: phone_jpeg(4000, 3000),
    "3072x3072 RGBA PNG": lambda: rgba_png(3072),
    "3072x3072 RGBA TIFF": lambda: rgba_png(3072, "TIFF"),
    "2048x2048 RGBA WEBP": lambda: rgba_png(2048, "WEBP"),
    "3072x3072 noise PNG": lambda: noise_png(3072),
    "40 MP phone JPEG": lambda: phone_jpeg(7300, 5470),
    "40 MP progressive JPEG": lambda: phone_jpeg(7300, 5470, progressive=True),
    "9 MP progressive JPEG": lambda: phone_jpeg(3072, 3072, progressive=True),
}

PROBE = """
import json, sys, time
import numpy as np
from PIL import Image
import io
from mnist_core.photo import read_photo
from mnist_core.reading import ImageError

def status_mb(field):
    # /proc, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
    line = next(line for line in open("/proc/self/status") if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024

small = io.BytesIO()
Image.fromarray(np.pad(np.full((32, 8), 40, np.uint8), 16, constant_values=220)).save(small, "PNG")
read_photo(small.getvalue())
data = open(sys.argv[1], "rb").read()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak restarts from the memory in use now
baseline = status_mb("VmRSS")
started = time.perf_counter()
try:
    read_photo(data)
    outcome = "read"
except ImageError as err:
    outcome = f"refused: {err}"
print(json.dumps({"baseline_mb": baseline, "growth_mb": status_mb("VmHWM") - baseline,
                  "seconds": time.perf_counter() - started, "outcome": outcome}))
"""


def measure(data: bytes) -> dict:
    """Peak RSS above the warmed-up baseline (MB), seconds and outcome of `read_photo(data)` in a fresh process."""
    with tempfile.NamedTemporaryFile(suffix=".upload") as file:
        file.write(data)
        file.flush()
        done = subprocess.run([sys.executable, "-c", PROBE, file.name], cwd=ROOT, capture_output=True, text=True,
                              check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _encode(image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def main() -> None:
    for name, make in UPLOADS.items():
        data = make()
        result = measure(data)
        print(f"{name:24} {len(data) / 1e3:8,.0f} KB  peak +{result['growth_mb']:6.0f} MB "
              f"(baseline {result['baseline_mb']:.0f} MB)  {result['seconds']:5.2f} s  {result['outcome']}")


if __name__ == "__main__":
    main()
