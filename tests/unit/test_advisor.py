"""The budget advisor: exact deltas of single edits (Keras as the oracle), the smallest fixes, spare params."""

import itertools
import random
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnist_core.advisor import ALTERNATIVES, MAX_EDITS, fits, single_edits, spare
from mnist_core.budget import Budget, summarize
from mnist_core.spec import MAX_FILTERS, PRESETS, Architecture, Conv, GlobalAvgPool, Softmax
from tests.unit.test_spec import architectures

FIRST, FINAL = PRESETS["seed-first"], PRESETS["seed-final"]


def keras_counts(arch: Architecture) -> tuple[int, int]:
    from mnist_core.model import build_model

    model = build_model(arch)
    return model.count_params(), sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def keys(plan) -> tuple[str, ...]:
    return tuple(edit.key for edit in plan.edits)


def assert_deltas_match_keras(arch: Architecture, edits) -> None:
    total, trainable = keras_counts(arch)
    for edit in edits:
        after_total, after_trainable = keras_counts(edit.apply(arch))
        assert (edit.delta.total, edit.delta.trainable) == (after_total - total, after_trainable - trainable), \
            (arch.to_code(), edit.key)


@pytest.mark.parametrize("name", ["seed-first", "seed-final", "best-under-15k"])
def test_every_single_edit_of_the_15k_presets_is_offered(name):
    """BatchNorm on or off after each of 8 convs, 6 filter steps on all but the head, and each 3x3 conv but the
    first (one input channel) made separable."""
    edits = single_edits(PRESETS[name])
    assert len(edits) == 8 + 7 * 6 + 5
    assert [edit.key for edit in edits if edit.field == "separable"] == [f"sep-on:conv{n}" for n in (2, 4, 5, 6, 7)]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_single_edit_of_the_presets_matches_keras(name):
    """Each BatchNorm toggle, filter step and separable switch of a preset changes Keras' counts by its delta."""
    assert_deltas_match_keras(PRESETS[name], single_edits(PRESETS[name]))


def test_a_separable_conv_can_be_made_full_again():
    """The advisor offers the way back: on a separable conv, 'Make conv N a full conv', with Keras' delta."""
    arch = FINAL.with_layer(1, separable=True)
    back = next(edit for edit in single_edits(arch) if edit.key == "sep-off:conv2")
    assert back.label == "Make conv 2 a full conv" and back.apply(arch) == FINAL
    assert back.delta.total == 4_608 - 656
    assert_deltas_match_keras(arch, [back])


@settings(max_examples=3, deadline=None, database=None)
@given(architectures(), st.randoms(use_true_random=False))
def test_sampled_edits_of_random_specs_match_keras(arch, rng):
    """Six edits of random specs (any kernels, pools, toggles) change Keras' counts by their deltas."""
    edits = single_edits(arch)
    assert_deltas_match_keras(arch, rng.sample(edits, min(6, len(edits))))


@settings(max_examples=60, deadline=None, database=None)
@given(architectures(), st.integers(1, 30_000), st.sampled_from(("total", "trainable")))
def test_every_edit_delta_is_summarize_after_minus_before(arch, limit, counting):
    """For any spec and budget, delta = summarize(after) - summarize(before), and `fits` is the verdict after."""
    budget, before = Budget(limit, counting), summarize(arch)
    for edit in single_edits(arch, budget, free=True):
        after = summarize(edit.apply(arch))
        assert (edit.delta.total, edit.delta.trainable) == (after.total - before.total,
                                                            after.trainable - before.trainable)
        assert edit.fits == budget.verdict(after).within


def test_dropout_toggles_are_listed_only_when_asked():
    """Dropout changes no count: left out by default, listed with delta 0 for an ablation."""
    assert not [edit for edit in single_edits(FINAL) if edit.field == "dropout"]
    toggles = {edit.key: edit for edit in single_edits(FINAL, free=True) if edit.field == "dropout"}
    assert set(toggles) == {"dropout-off:conv1", "dropout-off:conv2", "dropout-on:conv3", "dropout-off:conv4",
                            "dropout-off:conv5", "dropout-off:conv6", "dropout-off:conv7", "dropout-on:conv8"}
    edit = toggles["dropout-off:conv2"]
    assert edit.label == "Drop Dropout after conv 2" and (edit.delta.total, edit.delta.trainable) == (0, 0)
    assert not edit.apply(FINAL).layers[1].dropout


def test_filter_steps_stay_valid_and_spare_the_head():
    """No step below 1 or above MAX_FILTERS, and never on the 10-filter conv that feeds the classifier."""
    arch = Architecture((Conv(2), Conv(MAX_FILTERS - 1), Conv(10, 1, relu=False), GlobalAvgPool(), Softmax()))
    steps = [edit.key for edit in single_edits(arch) if edit.field == "filters"]
    assert steps == ["filters:conv1:-1", "filters:conv1:+1", "filters:conv1:+2", "filters:conv1:+4",
                     "filters:conv2:-4", "filters:conv2:-2", "filters:conv2:-1", "filters:conv2:+1"]


def test_seed_first_is_fixed_by_one_batchnorm_drop_or_the_notebooks_two():
    """88 over: drop BatchNorm after conv 2 (-128, 40 under the limit: 39 to spare) first; the notebook's 6 + 7 among 2-edit fixes."""
    plans = fits(FIRST)
    best = plans[0]
    assert keys(best) == ("bn-off:conv2",) and best.label == "Drop BatchNorm after conv 2"
    assert (best.delta.total, best.delta.trainable, best.margin) == (-128, -64, 40)
    two = [keys(plan) for plan in plans if len(plan.edits) == 2]
    assert ("bn-off:conv6", "bn-off:conv7") in two
    notebook = next(plan for plan in plans if keys(plan) == ("bn-off:conv6", "bn-off:conv7"))
    assert notebook.label == "Drop BatchNorm after conv 6 + Drop BatchNorm after conv 7"
    assert notebook.apply(FIRST) == FINAL and notebook.margin == 40 and notebook.spare == 39


def test_plans_come_fewest_edits_first_then_fewest_params_removed():
    """Sizes never shrink down the list; within a size, the margin left never shrinks."""
    for arch, budget in ((FIRST, Budget()), (FIRST, Budget(13_500)), (FINAL, Budget(14_000, "trainable"))):
        order = [(len(plan.edits), plan.margin) for plan in fits(arch, budget)]
        assert order and order == sorted(order)


def test_plans_are_valid_specs_that_really_fit():
    """Applying a plan gives a valid spec within the budget, with exactly the plan's delta and margin."""
    rng = random.Random(3)
    specs = [FIRST, FINAL] + [FINAL.with_layer(index, filters=rng.randint(8, 40)) for index in FINAL.convs[:4]]
    for arch in specs:
        before = summarize(arch)
        for budget in (Budget(before.total - 50), Budget(before.total - 900),
                       Budget(before.trainable - 300, "trainable")):
            plans = fits(arch, budget)
            assert plans, (arch.to_code(), budget)
            for plan in plans:
                after = summarize(plan.apply(arch))
                assert (plan.delta.total, plan.delta.trainable) == (after.total - before.total,
                                                                    after.trainable - before.trainable)
                assert budget.verdict(after).within and budget.verdict(after).margin == plan.margin


def test_plans_are_the_smallest_fixes_a_brute_force_finds():
    """Against every combination of up to three removals: each plan is minimal and none better is missed."""
    counts = combination_counts(FIRST)
    for budget in (Budget(), Budget(14_200), Budget(12_500), Budget(14_700, "trainable")):
        margins = {combo: budget.limit - (total if budget.counting == "total" else trainable)
                   for combo, (total, trainable) in counts.items()}
        minimal = {combo: margin for combo, margin in margins.items() if margin > 0 and not any(
            margins.get(frozenset(part), 0) > 0 for part in itertools.combinations(combo, len(combo) - 1))}
        plans = fits(FIRST, budget)
        assert plans, budget
        for size in range(1, MAX_EDITS + 1):
            ours = [plan for plan in plans if len(plan.edits) == size]
            theirs = sorted(margin for combo, margin in minimal.items() if len(combo) == size)
            assert all(minimal.get(frozenset(keys(plan))) == plan.margin for plan in ours), budget
            assert [plan.margin for plan in ours] == theirs[:ALTERNATIVES], (budget, size)


def combination_counts(arch: Architecture) -> dict[frozenset[str], tuple[int, int]]:
    """(total, trainable) after every combination of up to MAX_EDITS removals, one filter change per conv."""
    removals = [edit for edit in single_edits(arch) if edit.delta.total < 0]
    counts = {}
    for size in range(1, MAX_EDITS + 1):
        for combo in itertools.combinations(removals, size):
            if len({(edit.index, edit.field) for edit in combo}) == size:
                after = arch
                for edit in combo:
                    after = edit.apply(after)
                summary = summarize(after)
                counts[frozenset(edit.key for edit in combo)] = summary.total, summary.trainable
    return counts


def test_a_spec_within_the_budget_or_far_beyond_three_edits_gets_no_plans():
    """seed-final already fits; seed-first fits when trainable params count; 1,000 is out of reach."""
    assert fits(FINAL) == []
    assert fits(FIRST, Budget(counting="trainable")) == []
    assert fits(FIRST, Budget(1_000)) == []


def test_seed_final_has_too_few_spare_params_to_buy_anything():
    """39 to spare: the cheapest addition, BatchNorm after conv 8 (+40), would land on 15,000, not under it."""
    assert spare(FINAL) == []
    (only,) = spare(FINAL, Budget(15_001))
    assert (only.key, only.label, only.delta.total) == ("bn-on:conv8", "Add BatchNorm after conv 8", 40)


def test_spare_trainable_params_buy_batchnorms_and_single_filters():
    """Counting trainable (200 spare), four BatchNorms or one more filter on conv 7, 2 or 3 fit, cheapest first."""
    bought = spare(FINAL, Budget(counting="trainable"))
    assert [(edit.key, edit.delta.trainable) for edit in bought] == [
        ("bn-on:conv8", 20), ("bn-on:conv7", 32), ("bn-on:conv6", 32), ("bn-on:conv3", 32),
        ("filters:conv7:+1", 154), ("filters:conv2:+1", 162), ("filters:conv3:+1", 176)]
    assert all(edit.fits for edit in bought)
    assert spare(FIRST) == []  # over budget: nothing to spend


def test_edits_apply_with_with_layer():
    """An edit's index, field and value are what `Architecture.with_layer` takes."""
    edit = next(edit for edit in single_edits(FIRST) if edit.key == "filters:conv3:-2")
    assert (edit.index, edit.field, edit.value, edit.label) == (2, "filters", 14, "Filters of conv 3: 16 → 14")
    assert edit.apply(FIRST) == FIRST.with_layer(2, filters=14)


def test_advice_never_imports_tensorflow_or_streamlit():
    """The page asks for advice on every rerun: it must stay plain arithmetic."""
    code = ("import sys; from mnist_core.advisor import fits; from mnist_core.spec import PRESETS; "
            "fits(PRESETS['seed-first']); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'streamlit')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
