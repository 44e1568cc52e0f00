"""The architecture spec: presets, JSON and URL codes, validation, counting and the budget."""

import json
import re
import subprocess
import sys

import pytest

from mnist_core.budget import Budget, describe_change, summarize
from mnist_core.spec import PRESETS, Architecture, Conv, GlobalAvgPool, MaxPool, Softmax, SpecError

FINAL = PRESETS["seed-final"]


@pytest.mark.parametrize("name, total, trainable", [("seed-first", 15_088, 14_864), ("seed-final", 14_960, 14_800)])
def test_presets_have_the_notebooks_counts(name, total, trainable):
    """The two presets count exactly what the notebook's Keras summaries reported."""
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


def test_describe_change_names_the_layer_and_both_deltas():
    """Turning BatchNorm on after conv 6 costs 64 total and 32 trainable params."""
    after = FINAL.with_layer(6, batchnorm=True)
    assert describe_change(FINAL, after) == "BatchNorm after conv 6: +64 total / +32 trainable"
    assert describe_change(after, FINAL) == "No BatchNorm after conv 6: -64 total / -32 trainable"
    wider = FINAL.with_layer(0, filters=8)
    assert describe_change(FINAL, wider).startswith("Filters of conv 1: 16 -> 8: ")


@pytest.mark.parametrize("arch", list(PRESETS.values()), ids=list(PRESETS))
def test_json_and_url_codes_round_trip(arch):
    """A preset survives to_dict/from_dict, JSON text and the URL code unchanged."""
    assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_code(arch.to_code()).layers == arch.layers


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
    (_with(0, filters=0), "Layer 1 (Conv 3x3): filters must be between 1 and 256, got 0"),
    (_with(1, filters=-4), "Layer 2 (Conv 3x3): filters must be between 1 and 256, got -4"),
    (_with(1, filters=100_000), "Layer 2 (Conv 3x3): filters must be between 1 and 256"),
    (_with(0, filters=True), "Layer 1 (conv): 'filters' must be int"),
    (_with(4, dropout_rate=1.0), "Layer 5 (Conv 3x3): dropout rate must be in [0, 1), got 1.0"),
    (_with(4, dropout_rate=-0.1), "Layer 5 (Conv 3x3): dropout rate must be in [0, 1)"),
    (_with(8, filters=12), "Layer 9 (Conv 1x1) feeds the classifier: it must be a conv with 10 filters"),
    (_with(2, kernel=7), "Layer 3 (Conv 7x7): kernel must be one of (1, 3, 5)"),
    (_with(3, kind="upsample"), "Layer 4: unknown layer kind 'upsample'"),
    (_with(0, colour="red"), "Layer 1 (conv): unknown field(s) colour"),
    ({"layers": []}, "non-empty 'layers' list"),
    ([1, 2], "must be a JSON object"),
    ({"layers": _final_dict()["layers"][:-1]}, "Layer 10 (GlobalAvgPool): global average pooling must come just"),
    ({"layers": _final_dict()["layers"][:-2]}, "must end with global average pooling and softmax"),
])
def test_invalid_specs_get_a_message_naming_the_problem(data, message):
    """Each malformed spec raises SpecError whose text names the layer and what is wrong."""
    with pytest.raises(SpecError) as caught:
        Architecture.from_dict(data)
    assert message in str(caught.value)


def test_spatial_collapse_names_the_layer():
    """Six 5x5 convs shrink 28 to 4 and a seventh collapses it: the error names layer 7."""
    layers = [Conv(8, 5)] * 6 + [Conv(8, 5), Conv(10, 1, relu=False), GlobalAvgPool(), Softmax()]
    with pytest.raises(SpecError, match=r"Layer 7 \(Conv 5x5\): the spatial size collapses to 0"):
        Architecture(tuple(layers))
    with pytest.raises(SpecError, match=r"Layer 4 \(MaxPool 4x4\): the spatial size collapses"):
        Architecture((Conv(8, 5), MaxPool(4), MaxPool(4), MaxPool(4), Conv(10, 1), GlobalAvgPool(), Softmax()))


@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("", "not valid JSON"),
    ("x" * 30_000, "at most 20,000 bytes"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_malformed_json_is_a_spec_error(text, message):
    with pytest.raises(SpecError, match=message):
        Architecture.from_json(text)


@pytest.mark.parametrize("code, message", [
    ("c3x16b_zz_gap_sm", "Layer 2: 'zz' in the link is not a layer code"),
    ("c3x0_c1x10l_gap_sm", "Layer 1 (Conv 3x3): filters must be between 1"),
    ("c3x999999_gap_sm", "is not a layer code"),
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
