"""The architecture spec: presets, JSON and URL codes, validation, counting and the budget."""

import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_core.budget import Budget, BudgetError, describe_change, summarize
from mnist_core.layers import SeparableConv
from mnist_core.spec import PRESETS, Architecture, Conv, GlobalAvgPool, MaxPool, Softmax, SpecError

FINAL = PRESETS["seed-final"]


@pytest.mark.parametrize("name, total, trainable", [("seed-first", 15_088, 14_864), ("seed-final", 14_960, 14_800),
                                                     ("best-under-15k", 14_846, 14_638)])
def test_presets_have_the_notebooks_counts(name, total, trainable):
    """The seed presets count exactly what the notebook's Keras summaries reported; best-under-15k is under 15,000."""
    summary = summarize(PRESETS[name])
    assert (summary.total, summary.trainable) == (total, trainable)


def test_output_shapes_follow_the_notebooks_comments():
    """Output sizes 26, 24, 24, 12, 10, 8, 6, 4, 4 as in the notebook's '#26'-style comments."""
    shapes = [row.output_shape for row in summarize(FINAL).layers]
    assert [s[0] for s in shapes[:9]] == [26, 24, 24, 12, 10, 8, 6, 4, 4]
    assert shapes[-1] == (10,)


def test_receptive_field_covers_the_image_at_global_pooling():
    """The receptive field grows 3, 5, 5, 6, 10, 14, 18, 22, 22 and global pooling sees all 28."""
    fields = [row.receptive_field for row in summarize(FINAL).layers]
    assert fields[:10] == [3, 5, 5, 6, 10, 14, 18, 22, 22, 28]


def test_budget_is_strictly_under():
    """seed-first is 88 over 15,000; a limit equal to the count fails; trainable counting can pass."""
    first = summarize(PRESETS["seed-first"])
    verdict = Budget().verdict(first)
    assert not verdict.within and verdict.over_by == 88 and verdict.margin == -88
    assert not Budget(limit=first.total).verdict(first).within
    assert Budget(limit=first.total + 1).verdict(first).within
    assert Budget(counting="trainable").verdict(first).within  # 14,864 < 15,000
    assert Budget().verdict(summarize(FINAL)).margin == 40
    assert Budget().verdict(summarize(FINAL)).spare == 39  # +40 would land on 15,000, not under it


@pytest.mark.parametrize("limit, counting", [(-5, "total"), (0, "total"), (10_000_001, "total"), (True, "total"),
                                             (1.5, "total"), (15_000, "all")])
def test_a_budget_out_of_range_is_refused_in_one_sentence(limit, counting):
    """A budget is a whole number of parameters from 1 to 10,000,000, counting total or trainable ones."""
    with pytest.raises(BudgetError) as caught:
        Budget(limit, counting)
    assert str(caught.value).endswith(".") and "\n" not in str(caught.value)


def test_describe_change_names_the_layer_and_both_deltas():
    """Turning BatchNorm on after conv 6 costs 64 total and 32 trainable params."""
    after = FINAL.with_layer(6, batchnorm=True)
    assert describe_change(FINAL, after) == "BatchNorm after conv 6: +64 total / +32 trainable"
    assert describe_change(after, FINAL) == "No BatchNorm after conv 6: -64 total / -32 trainable"
    wider = FINAL.with_layer(0, filters=8)
    assert describe_change(FINAL, wider).startswith("Filters of conv 1: 16 → 8: ")
    assert describe_change(FINAL, FINAL.with_layer(2, kernel=3)).startswith("Changed conv 3: ")
    small = Architecture((Conv(8), MaxPool(2), Conv(10, 1, relu=False), GlobalAvgPool(), Softmax()))
    assert describe_change(small, small.with_layer(1, size=3)) == \
        "Changed the max-pool after conv 1: +0 total / +0 trainable"


@pytest.mark.parametrize("arch", list(PRESETS.values()), ids=list(PRESETS))
def test_json_and_url_codes_round_trip(arch):
    """A preset survives to_dict/from_dict, JSON text and the URL code unchanged."""
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_code(arch.to_code()) == arch
    assert Architecture.from_code(arch.to_code()).name == arch.name


@pytest.mark.parametrize("changes, start", [
    ({"dropout_rate": 0.0}, "c3x16bd0_"),
    ({"dropout_rate": 0.12345}, "c3x16bd0.12345_"),
    ({"dropout_rate": 1e-05}, "c3x16bd1e-05_"),
    ({"dropout": False, "dropout_rate": 0.25}, "c3x16br0.25_"),
], ids=["rate-0", "five-decimals", "exponent", "kept-while-off"])
def test_links_keep_the_dropout_rates_the_old_format_lost(changes, start):
    """A rate of 0, with more than 4 decimals, in exponent form, or kept while Dropout is off survives a link."""
    arch = FINAL.with_layer(0, **changes)
    assert arch.to_code().startswith(start)
    again = Architecture.from_code(arch.to_code())
    assert again == arch and again.layers[0].dropout_rate == arch.layers[0].dropout_rate


@pytest.mark.parametrize("code, arch", [
    ("c3x16bd0.1_c3x32bd0.1_c1x16_p2_c3x16bd0.1_c3x16bd0.1_c3x16d0.1_c3x16d0.1_c1x10l_gap_sm", FINAL),
    ("c3x16bd0.1_c3x32bd0.1_c1x16_p2_c3x16bd0.1_c3x16bd0.1_c3x16bd0.1_c3x16bd0.1_c1x10l_gap_sm", PRESETS["seed-first"]),
    ("c5x8d.5_p3_c3x10bl_gap_sm", Architecture((Conv(8, 5, dropout=True, dropout_rate=0.5), MaxPool(3),
                                                Conv(10, 3, batchnorm=True, relu=False), GlobalAvgPool(), Softmax()))),
    ("c1x4d0.1234_c1x10_gap_sm", Architecture((Conv(4, 1, dropout=True, dropout_rate=0.1234), Conv(10, 1),
                                               GlobalAvgPool(), Softmax()))),
], ids=["seed-final", "seed-first", "short-rate", "four-decimals"])
def test_old_links_open_the_same_network(code, arch):
    """Links made before the format change parse to the same architecture; the presets' links are unchanged."""
    assert Architecture.from_code(code) == arch
    assert arch.to_code() == code or arch.name == "custom"


def test_a_network_equal_to_a_preset_is_named_after_it():
    """From a link, an edit or unnamed JSON, seed-final's layers are called seed-final; names don't affect equality."""
    assert Architecture.from_code(FINAL.to_code()).name == "seed-final"
    edited = FINAL.with_layer(6, batchnorm=True)
    assert edited.name == "custom" and edited.with_layer(6, batchnorm=False).name == "seed-final"
    data = {"layers": FINAL.to_dict()["layers"]}
    assert Architecture.from_dict(data).name == "seed-final"
    assert Architecture.from_dict({**data, "name": "custom"}).name == "seed-final"
    assert Architecture.from_dict({**data, "name": "mine"}).name == "mine"
    assert Architecture(FINAL.layers, name="other") == FINAL


def test_a_preset_name_on_other_layers_is_not_kept():
    """Named best-under-15k on other layers, a spec takes the name its layers earn: a preset's, else custom."""
    data = {**PRESETS["seed-first"].to_dict(), "name": "best-under-15k"}
    assert Architecture.from_dict(data).name == "seed-first"
    edited = {**FINAL.with_layer(6, batchnorm=True).to_dict(), "name": "best-under-15k"}
    assert Architecture.from_dict(edited).name == "custom"
    assert Architecture.from_json(PRESETS["best-under-15k"].to_json()).name == "best-under-15k"


RATES = st.one_of(st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
                  st.sampled_from([0.0, 0.1, 1e-05, 5e-324, 0.12345, 1 / 3, 0.99999]))


@st.composite
def convs(draw, size, filters=st.integers(1, 256)):
    """A random conv, or separable conv, that fits a `size` x `size` input."""
    kind = draw(st.sampled_from([Conv, SeparableConv] if size >= 3 else [Conv]))
    kernels = [k for k in (1, 3, 5) if k <= size and (kind is Conv or k > 1)]
    return kind(draw(filters), draw(st.sampled_from(kernels)), draw(st.booleans()), draw(st.booleans()), draw(RATES),
                draw(st.booleans()))


@st.composite
def architectures(draw):
    """Random valid specs: convs and max-pools in any order, then a 10-filter conv, gap and softmax."""
    size, layers = 28, []
    for _ in range(draw(st.integers(0, 12))):
        if size >= 2 and draw(st.integers(0, 3)) == 0:
            layers.append(MaxPool(draw(st.integers(2, min(4, size)))))
            size //= layers[-1].size
        else:
            layers.append(draw(convs(size)))
            size -= layers[-1].kernel - 1
    return Architecture(tuple(layers) + (draw(convs(size, st.just(10))), GlobalAvgPool(), Softmax()))


@settings(max_examples=300, deadline=None, database=None)
@given(architectures())
def test_every_valid_spec_survives_a_link(arch):
    """from_code(to_code(a)) == a for any valid spec, and the code stays URL-safe."""
    code = arch.to_code()
    assert re.fullmatch(r"[A-Za-z0-9._-]+", code)
    assert Architecture.from_code(code) == arch


@settings(max_examples=300, deadline=None, database=None)
@given(architectures())
def test_every_valid_spec_survives_json(arch):
    """from_dict(to_dict(a)) == a for any valid spec, also through JSON text."""
    assert Architecture.from_dict(arch.to_dict()) == arch
    assert Architecture.from_json(arch.to_json()) == arch


def test_dropout_rate_survives_toggling_off_in_json():
    """Turning Dropout off keeps its rate, so turning it back on restores it."""
    arch = FINAL.with_layer(0, dropout_rate=0.25).with_layer(0, dropout=False)
    again = Architecture.from_json(arch.to_json()).with_layer(0, dropout=True)
    assert again.layers[0].dropout_rate == 0.25


def _final_dict():
    return FINAL.to_dict()


def _with(index, **changes):
    data = _final_dict()
    data["layers"][index].update(changes)
    return data


@pytest.mark.parametrize("data, message", [
    ({**PRESETS["seed-final"].to_dict(), "name": "a\nb"}, "must be one line of at most 80 printable characters"),
    ({**PRESETS["seed-final"].to_dict(), "name": "a\u202eb"}, "must be one line of at most 80 printable"),
    ({"layers": [{"kind": "conv", "filters": -3}]}, "conv 1 (3x3): filters must be between 1 and 256, got -3."),
    (_with(0, filters=0), "conv 1 (3x3): filters must be between 1 and 256, got 0"),
    (_with(1, filters=-4), "conv 2 (3x3): filters must be between 1 and 256, got -4"),
    (_with(1, filters=100_000), "conv 2 (3x3): filters must be between 1 and 256"),
    (_with(0, filters=True), "conv 1 (3x3): 'filters' must be int, got True"),
    (_with(0, batchnorm=1), "conv 1 (3x3): 'batchnorm' must be bool, got 1"),
    (_with(4, dropout_rate=1.0), "conv 4 (3x3): dropout rate must be in [0, 1), got 1.0"),
    (_with(4, dropout_rate=-0.1), "conv 4 (3x3): dropout rate must be in [0, 1)"),
    (_with(8, filters=12), "conv 8 (1x1) feeds the classifier: it must be a conv with 10 filters"),
    (_with(2, kernel=7), "conv 3 (7x7): kernel must be one of (1, 3, 5)"),
    (_with(3, size=5), "the max-pool after conv 3: pool size must be 2, 3 or 4, got 5"),
    (_with(3, kind="upsample"), "item 4 of 'layers': unknown layer kind 'upsample'"),
    (_with(0, colour="red"), "item 1 of 'layers' (conv): unknown field(s) 'colour'"),
    ({"layers": [{"kind": "conv"}]}, "item 1 of 'layers' (conv): 'filters' is required"),
    ({"layers": []}, "non-empty 'layers' list"),
    ([1, 2], "must be a JSON object"),
    ({"layers": _final_dict()["layers"][:-1]}, "the global average pooling after conv 8 must come just before"),
    ({"layers": _final_dict()["layers"][:-2]}, "must end with global average pooling and softmax"),
    ({"layers": [{"kind": "softmax"}] + _final_dict()["layers"]}, "the softmax before any conv must be the last layer"),
])
def test_invalid_specs_get_a_message_naming_the_problem(data, message):
    """Each malformed spec raises SpecError naming the layer as the page numbers it, and what is wrong."""
    with pytest.raises(SpecError) as caught:
        Architecture.from_dict(data)
    assert message in str(caught.value)


def test_spatial_collapse_names_the_layer():
    """Six 5x5 convs shrink 28 to 4 and a seventh collapses it: the error names conv 7."""
    layers = [Conv(8, 5)] * 6 + [Conv(8, 5), Conv(10, 1, relu=False), GlobalAvgPool(), Softmax()]
    with pytest.raises(SpecError, match=r"conv 7 \(5x5\): the spatial size collapses to 0"):
        Architecture(tuple(layers))
    with pytest.raises(SpecError, match=r"the max-pool after conv 1: the spatial size collapses"):
        Architecture((Conv(8, 5), MaxPool(4), MaxPool(4), MaxPool(4), Conv(10, 1), GlobalAvgPool(), Softmax()))


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("x" * 30_000, "at most 20,000 bytes"),
    (b"\xff\xfe", "not valid JSON"),
    ("[" * 19_000, "nested too deeply"),
    ('{"layers": [{"kind": "conv", "filters": ' + "9" * 5_000 + "}]}", "too many digits"),
    ('{"layers": [{"kind": []}]}', "unknown layer kind []"),
    ('{"layers": [{"kind": "conv", "filters": 8, "a\\nb": 1}]}', "unknown field(s) 'a\\nb'"),
])
def test_malformed_json_is_a_spec_error(text, message):
    """Bad JSON, too deep, a number too long, a key with a newline: one line of SpecError, never a crash."""
    with pytest.raises(SpecError, match=re.escape(message)) as caught:
        Architecture.from_json(text)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("code, message", [
    ("c3x16b_zz_gap_sm", "'zz' in the link is not a layer code (item 2;"),
    ("c3x0_c1x10l_gap_sm", "conv 1 (3x3): filters must be between 1"),
    ("c3x16d1.5_c1x10l_gap_sm", "conv 1 (3x3): dropout rate must be in [0, 1), got 1.5"),
    ("c3x16dnan_c1x10l_gap_sm", "'c3x16dnan' in the link is not a layer code"),
    ("c3x999999_gap_sm", "is not a layer code"),
    ("c3x16_[x](http://e)\n_gap_sm", "A token in the link is not a layer code (item 2;"),
    ("c3x8_s1x16_c1x10l_gap_sm", "conv 2 (separable 1x1): a separable conv's kernel must be 3 or 5, got 1"),
    ("c3x8_s2x16_c1x10l_gap_sm", "a separable conv's kernel must be 3 or 5, got 2"),
    ("c3x8_s3x0_c1x10l_gap_sm", "conv 2 (separable 3x3): filters must be between 1"),
    ("", "empty or too long"),
    ("_".join(["c3x8"] * 40), "at most 32 layers"),
])
def test_tampered_url_codes_are_rejected_with_a_message(code, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        Architecture.from_code(code)


def test_counting_never_imports_tensorflow():
    """The Architecture page's arithmetic runs without TensorFlow or Keras in the process."""
    code = ("import sys; from mnist_core.spec import PRESETS; from mnist_core.budget import summarize; "
            "summarize(PRESETS['seed-first']); import mnist_core.charts, mnist_core.report, mnist_core.jobs; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
