"""Architecture page in AppTest: the counter, toggles, presets, budget, link state, JSON edits."""

import pytest

from mnist_core.spec import PRESETS, Architecture
from tests.app.conftest import metrics, texts


def toggle(at, label):
    return next(t for t in at.toggle if t.label == label)


def json_section(at):
    return next(expander for expander in at.expander if expander.label.startswith("Spec as JSON"))


def test_batchnorm_toggle_changes_the_counter_by_the_exact_amount(app):
    """BatchNorm after conv 6 (layer 7) adds 64 total / 32 trainable, and says so."""
    at = app("architecture")
    assert metrics(at)["Total params"] == "14,960" and metrics(at)["Trainable"] == "14,800"
    toggle(at, "batchnorm of conv 6").set_value(True).run()
    assert metrics(at)["Total params"] == "15,024" and metrics(at)["Trainable"] == "14,832"
    assert "Last change: BatchNorm after conv 6: +64 total / +32 trainable" in texts(at.caption)
    assert "15,024 total params: over the 15,000 budget by 24; remove 25 to be under it" in texts(at.error)
    assert metrics(at)["Spare"] == "-25"  # the same 25, counted as the params to remove
    toggle(at, "batchnorm of conv 6").set_value(False).run()
    assert metrics(at)["Total params"] == "14,960"
    assert any("39 to spare" in text for text in texts(at.success))


def test_dropout_and_filters_edits(app):
    at = app("architecture")
    toggle(at, "dropout of conv 1").set_value(False).run()
    assert "Last change: No Dropout after conv 1: +0 total / +0 trainable" in texts(at.caption)
    next(n for n in at.number_input if n.label == "Filters of conv 1").set_value(8).run()
    # conv1: 16 -> 8 filters saves 72 weights + 32 BatchNorm; conv2 loses 8 x 9 x 32 = 2,304 inputs.
    assert metrics(at)["Total params"] == f"{14_960 - 72 - 32 - 2_304:,}"
    assert any(text.startswith("Last change: Filters of conv 1: 16 → 8: -2,408 total") for text in texts(at.caption))


def test_a_conv_made_separable_costs_its_depthwise_and_pointwise_weights_and_travels_in_the_link(app):
    """Conv 2 of seed-final (3x3, 16 -> 32): 4,608 weights full, 9 x 16 + 16 x 32 = 656 separable."""
    at = app("architecture")
    assert not any(t.label == "separable of conv 3" for t in at.toggle)  # a 1x1 conv has no separable form
    toggle(at, "separable of conv 2").set_value(True).run()
    assert not at.exception
    assert metrics(at)["Total params"] == f"{14_960 - 4_608 + 656:,}"
    assert "Last change: Conv 2: Conv 3x3 → SepConv 3x3: -3,952 total / -3,952 trainable" in texts(at.caption)
    assert "_s3x32bd0.1_" in at.query_params["arch"]
    toggle(at, "separable of conv 2").set_value(False).run()
    assert metrics(at)["Total params"] == "14,960"


def test_a_preset_opened_from_a_link_is_named_by_its_content(app):
    at = app("architecture", query={"arch": PRESETS["seed-first"].to_code()})
    assert any("Current: **seed-first**" in text for text in texts(at.caption))


def test_presets_and_reset(app):
    at = app("architecture")
    next(b for b in at.button if b.label.startswith("seed-first")).click().run()
    assert metrics(at)["Total params"] == "15,088" and metrics(at)["Spare"] == "-89"
    assert any("over the 15,000 budget by 88" in text for text in texts(at.error))
    next(b for b in at.button if b.label == "Reset").click().run()
    assert metrics(at)["Total params"] == "14,960"


def test_budget_can_count_trainable_params(app):
    at = app("architecture")
    next(b for b in at.button if b.label.startswith("seed-first")).click().run()
    at.radio[0].set_value("trainable").run()
    assert any("14,864 trainable params < 15,000: 135 to spare" in text for text in texts(at.success))
    at.number_input(key="budget_limit").set_value(14_000).run()
    assert any("over the 14,000 budget by 864" in text for text in texts(at.error))


def test_link_opens_the_same_network(app):
    """?arch=<code> restores the architecture; the URL follows every edit."""
    code = PRESETS["seed-first"].to_code()
    at = app("architecture", query={"arch": code, "budget": "16000"})
    assert metrics(at)["Total params"] == "15,088"
    assert any("911 to spare" in text for text in texts(at.success))
    toggle(at, "batchnorm of conv 7").set_value(False).run()
    assert at.query_params["arch"] != code


def test_tampered_link_keeps_a_good_architecture_and_says_why(app):
    at = app(query={"arch": "c3x16b_zz_gap_sm", "budget": "lots"})
    warnings = " ".join(texts(at.warning))
    assert "'zz' in the link is not a layer code" in warnings
    at.switch_page("pages/architecture.py").run()
    assert metrics(at)["Total params"] == "14,960"
    assert not at.exception


def test_bad_json_is_refused_and_the_last_good_architecture_kept(app):
    at = app("architecture")
    at.text_area[0].set_value('{"layers": [{"kind": "conv", "filters": -3}]}')
    next(b for b in at.button if b.label == "Apply JSON").click().run()
    # Shown inside the JSON section, beside Apply, not at the top of the page out of sight.
    assert any(text.startswith("Spec not loaded:") and "filters must be between 1 and 256, got -3." in text
               for text in texts(json_section(at).error))
    assert not at.warning and metrics(at)["Total params"] == "14,960"
    at.run()
    assert not json_section(at).error  # said once


@pytest.mark.parametrize("text, reason", [
    ("[" * 19_000, "The spec is nested too deeply"),
    ('{"layers": [{"kind": "conv", "filters": ' + "9" * 5_000 + "}]}", "The spec has a number with too many digits"),
])
def test_json_too_deep_or_with_too_long_a_number_is_refused_in_one_sentence(app, text, reason):
    """Once a RecursionError and a ValueError in the exception box; now a refusal beside Apply."""
    at = app("architecture")
    at.text_area[0].set_value(text)
    next(b for b in at.button if b.label == "Apply JSON").click().run()
    assert any(error.startswith(f"Spec not loaded: {reason}") for error in texts(json_section(at).error))
    assert metrics(at)["Total params"] == "14,960"


def test_good_json_is_applied(app):
    at = app("architecture")
    at.text_area[0].set_value(PRESETS["seed-first"].to_json())
    next(b for b in at.button if b.label == "Apply JSON").click().run()
    assert metrics(at)["Total params"] == "15,088"


def test_advisor_offers_the_one_edit_fix_and_the_notebooks_two_edit_fix_for_seed_first(app):
    """88 over: one edit fits (BatchNorm after conv 2 off, 39 to spare); the notebook's two BatchNorm drops
    are offered too; one click applies a fix and the counter follows."""
    at = app("architecture", query={"arch": PRESETS["seed-first"].to_code()})
    applies = {button.help: button for button in at.button if button.label == "Apply"}
    assert "Apply: Drop BatchNorm after conv 2" in applies
    assert "Apply: Drop BatchNorm after conv 6 + Drop BatchNorm after conv 7" in applies
    assert any(text.startswith("**One edit** that fits") for text in texts(at.markdown))
    assert any(text.startswith("**Two edits (the notebook's kind of fix: two BatchNorms)** that fit")
               for text in texts(at.markdown))
    applies["Apply: Drop BatchNorm after conv 6 + Drop BatchNorm after conv 7"].click().run()
    assert metrics(at)["Total params"] == "14,960" and at.session_state["arch"] == PRESETS["seed-final"]
    assert any(text.startswith("Last change: Drop BatchNorm after conv 6 + Drop BatchNorm after conv 7: -128 total")
               for text in texts(at.caption))
    assert any("No single addition fits in the 39 spare parameters" in text for text in texts(at.markdown))


def test_the_network_picture_follows_every_edit(app):
    at = app("architecture")
    before = at.get("graphviz_chart")[0].proto.spec
    toggle(at, "batchnorm of conv 6").set_value(True).run()
    after = at.get("graphviz_chart")[0].proto.spec
    assert "conv 6" in after and before != after and "+BN" in after.split("conv 6")[1].split("conv 7")[0]



def test_reset_resets_the_budget_fields_it_shows(app):
    """Budget 20000 typed, then Reset: the page tells the browser to show 15000 and 'total' again (it left the
    browser's 20000 standing, and the next click sent it back: the verdict silently returned to 20,000)."""
    at = app("architecture")
    at.number_input(key="budget_limit").set_value(20_000).run()
    at.radio(key="budget_counting").set_value("trainable").run()
    assert any("< 20,000" in text for text in texts(at.success))
    next(b for b in at.button if b.label == "Reset").click().run()
    limit, counting = at.number_input(key="budget_limit"), at.radio(key="budget_counting")
    assert (limit.value, counting.value) == (15_000, "total")
    assert limit.proto.set_value and limit.proto.value == 15_000  # sent to the browser, which shows it
    assert counting.proto.set_value and counting.proto.raw_value == "total"
    assert any("14,960 total params < 15,000: 39 to spare" in text for text in texts(at.success))
    next(b for b in at.button if b.label.startswith("seed-first")).click().run()
    assert any("over the 15,000 budget by 88" in text for text in texts(at.error))
    assert at.number_input(key="budget_limit").value == 15_000


def test_the_copy_link_holds_the_link_to_this_network_and_budget(app):
    """The sidebar's link opens the page as it is: it follows an edit and a budget change."""
    at = app("architecture")
    [link] = at.sidebar.code
    assert link.value == f"?arch={PRESETS['seed-final'].to_code()}&budget=15000&count=total"
    assert any(text.startswith("**Copy link**") for text in texts(at.sidebar.markdown))
    toggle(at, "batchnorm of conv 7").set_value(False).run()
    at.number_input(key="budget_limit").set_value(16_000).run()
    [link] = at.sidebar.code
    assert link.value == f"?arch={at.session_state['arch'].to_code()}&budget=16000&count=total"
    assert "_c3x16d0.1_c1x10l_" in link.value and at.query_params["arch"] in link.value


def test_at_any_budget_the_advisor_offers_the_best_measured_preset_that_fits(app):
    """Budget 5,000 with seed-final (14,960): no three edits fit, so the advisor names the best measured preset
    under 5,000, and Load opens it: then it fits, and the advisor shows what its spare params buy."""
    from mnist_core.budget import Budget
    from mnist_core.frontier import best_within

    expected = best_within(Budget(5_000))
    assert expected is not None and expected.params < 5_000
    at = app("architecture")
    at.number_input(key="budget_limit").set_value(5_000).run()
    assert any("No combination of up to three edits" in text for text in texts(at.warning))
    assert (f"Best measured preset within this budget: {expected.preset} ({expected.params:,} total params)"
            in texts(at.markdown))
    next(b for b in at.button if b.key == f"nearest-{expected.preset}").click().run()
    assert metrics(at)["Total params"] == f"{expected.params:,}"
    assert any("within" in text or "spare" in text for text in texts(at.success))
    assert not any(b.key == f"nearest-{expected.preset}" for b in at.button)  # it is the current network now


def test_under_the_smallest_preset_the_advisor_says_none_fits_and_the_same_layers_renamed_are_no_news(app):
    """At a budget no measured preset fits, the advisor says so and names the smallest; a preset's layers
    loaded under another name are that preset, so it is not offered again."""
    from mnist_core.frontier import smallest_measured

    smallest = smallest_measured()
    at = app("architecture")
    at.number_input(key="budget_limit").set_value(smallest.params).run()  # strictly under: it does not fit
    assert (f"No measured preset is under {smallest.params:,} total params: the smallest, {smallest.preset}, has "
            f"{smallest.params:,}." in texts(at.caption))
    assert not any((b.key or "").startswith("nearest-") for b in at.button)
    at.session_state["arch"] = Architecture(PRESETS["best-under-5k"].layers, name="my net")
    at.number_input(key="budget_limit").set_value(5_000).run()
    assert not any(b.key == "nearest-best-under-5k" for b in at.button)
