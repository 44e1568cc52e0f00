"""Whatever a user uploads, pastes or types into a link, the readers answer with the project's own error,
in one line, or with a value: random bytes, random JSON, mutated specs, links and sample files."""

import io
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mnist_core.budget import Budget
from mnist_core.links import parse_budget, parse_number, parse_run_id
from mnist_core.photo import read_photo
from mnist_core.reading import ImageError
from mnist_core.runs import RunStore
from mnist_core.samples import SampleError, SampleStore
from mnist_core.spec import PRESETS, Architecture, SpecError

FAST = settings(max_examples=150, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

ODD_TEXT = st.one_of(st.text(), st.sampled_from(["²", "١٢", "１２", "1_000", " 7", "\n", "\x00", "-0", "1e999",
                                                 "NaN", "𝟙", "\ud800", "conv", "custom", "best-under-15k"]))
SCALARS = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), ODD_TEXT,
                    st.integers(), st.integers(min_value=10**300, max_value=10**4000))
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(ODD_TEXT, inner, max_size=5)),
                           max_leaves=30)
SPEC_KEYS = ["name", "layers", "kind", "filters", "kernel", "batchnorm", "dropout", "dropout_rate", "relu", "size"]


def assert_one_sentence(err: Exception) -> None:
    """A message a page or the CLI can show as it is: some words, on one line, no traceback."""
    message = str(err)
    assert message.strip() and "\n" not in message and "Traceback" not in message, repr(message)


def refused(reader, data, errors) -> None:
    """Run `reader(data)`; it may succeed or raise one of `errors` with a one-line message, nothing else."""
    try:
        reader(data)
    except errors as err:
        assert_one_sentence(err)


@st.composite
def mutated_specs(draw) -> dict:
    """A preset's JSON form with a few fields replaced by random JSON values, or some layers dropped."""
    data = json.loads(PRESETS[draw(st.sampled_from(list(PRESETS)))].to_json())
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "layer", "drop"]))
        if where == "top":
            data[draw(st.sampled_from(SPEC_KEYS[:2]) | ODD_TEXT)] = draw(JSON_VALUES)
        elif isinstance(data.get("layers"), list) and data["layers"]:
            index = draw(st.integers(0, len(data["layers"]) - 1))
            if where == "drop":
                del data["layers"][index]
            elif isinstance(data["layers"][index], dict):
                data["layers"][index][draw(st.sampled_from(SPEC_KEYS) | ODD_TEXT)] = draw(JSON_VALUES)
    return data


@FAST
@given(st.one_of(JSON_VALUES.map(json.dumps), mutated_specs().map(json.dumps), st.binary(max_size=300),
                 st.text(max_size=300), st.integers(1, 20_000).map(lambda depth: "[" * depth),
                 st.integers(1, 3_000).map(lambda depth: '{"a":' * depth + "1" + "}" * depth),
                 st.integers(4_000, 6_000).map(lambda digits: '{"layers": [{"kind": "conv", "filters": '
                                                              + "9" * digits + "}]}")))
def test_spec_json_is_read_or_refused_in_one_line(text):
    """Architecture.from_json on random JSON, mutated presets, random bytes and deep nesting: SpecError or a spec."""
    refused(Architecture.from_json, text, SpecError)


@FAST
@given(st.one_of(st.text(max_size=200), st.lists(st.sampled_from(
    ["c3x16", "c3x16b", "c1x10l", "c5x256bd0.5", "c3x0", "c9x9", "c3x16d1e-400", "c3x16d.5", "c٣x١٦", "p2",
     "p9", "p٢", "gap", "sm", "", "x"]) | st.text(max_size=8), max_size=40).map("_".join)))
def test_link_codes_are_read_or_refused_in_one_line(code):
    """Architecture.from_code on random text and shuffled layer tokens: SpecError or a spec."""
    refused(Architecture.from_code, code, SpecError)


@FAST
@given(st.one_of(st.none(), ODD_TEXT, st.integers().map(str), st.integers(10**18, 10**30).map(str)),
       st.one_of(st.none(), ODD_TEXT, st.sampled_from(["total", "trainable"])))
def test_link_numbers_are_ascii_digits_in_range_or_none(text, counting):
    """A link's run id and budget are a number in range spelled in ASCII digits, or None; never an error."""
    run_id, budget = parse_run_id(text), parse_budget(text, counting)
    ascii_number = text is not None and text.isascii() and text.isdigit()
    assert run_id is None or (ascii_number and 1 <= run_id == int(text) < 2**63)
    assert budget is None or isinstance(budget, Budget)
    assert parse_number(text, 0, 9) in (None, *range(10))


def tiny_png() -> bytes:
    """A 64x64 photo-like PNG: a dark '1' on light paper."""
    image = np.full((64, 64), 220, np.uint8)
    image[12:52, 30:35] = 30
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` with a few bytes overwritten, or cut short."""
    data = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[:draw(st.integers(1, len(data)))])


@st.composite
def odd_images(draw) -> bytes:
    """A PNG or JPEG of random size, mode and pixels: a dot, a stripe, noise, one flat colour."""
    image_format = draw(st.sampled_from(["PNG", "JPEG"]))
    mode = draw(st.sampled_from(["L", "RGB", "RGBA", "LA", "P", "1", "I;16"] if image_format == "PNG" else
                                ["L", "RGB", "CMYK"]))
    width, height = draw(st.integers(1, 80)), draw(st.integers(1, 80))
    values = draw(st.lists(st.integers(0, 255), min_size=1, max_size=16))
    bands = len(Image.new(mode, (1, 1)).getbands())
    pixels = np.resize(np.asarray(values, np.uint8), (height, width, bands))
    image = Image.fromarray(pixels[..., 0] if bands == 1 else pixels[..., :3]).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


@FAST
@given(st.one_of(st.binary(max_size=2_000), mutated(tiny_png()), odd_images()))
def test_photo_bytes_are_read_or_refused_in_one_line(data):
    """read_photo on random bytes, damaged PNGs and odd images: ImageError or a reading."""
    refused(read_photo, data, ImageError)


DTYPES = st.sampled_from(["uint8", "int64", "float32", "float64", "bool", "U8", "complex64", "int8"])


@st.composite
def sample_files(draw) -> bytes:
    """A .npz with random images, labels and sources arrays (any shape and dtype), maybe damaged."""
    arrays, count = {}, draw(st.integers(0, 3))
    missing = draw(st.sets(st.sampled_from(["images", "labels"]), max_size=1))
    for key in {"images", "labels"} - missing | draw(st.sets(st.sampled_from(["sources", "other"]))):
        shape = tuple(draw(st.lists(st.integers(0, 30), max_size=3)))
        if key == "images" and draw(st.booleans()):
            shape = (count, 28, 28)
        elif key in ("labels", "sources") and draw(st.booleans()):
            shape = (count,)
        values = np.asarray(draw(st.lists(st.integers(-3, 300), min_size=1, max_size=4)))
        arrays[key] = np.resize(values, shape).astype(draw(DTYPES))
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **arrays)
    return draw(st.just(buffer.getvalue()) | mutated(buffer.getvalue()))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> SampleStore:
    return SampleStore(RunStore(tmp_path_factory.mktemp("lab")))


@FAST
@given(data=st.one_of(st.binary(max_size=2_000), sample_files()))
def test_sample_files_are_imported_or_refused_in_one_line(samples, data):
    """SampleStore.import_npz on random bytes and random or damaged .npz files: SampleError or samples added."""
    refused(samples.import_npz, data, SampleError)
