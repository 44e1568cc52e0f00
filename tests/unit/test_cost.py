"""A run's cost before it is queued, and the server's caps that refuse a run too big for a shared machine."""

from dataclasses import replace

import pytest

from mnist_core.__main__ import main
from mnist_core.budget import summarize
from mnist_core.config import ConfigError
from mnist_core.cost import (DEFAULT_FLOPS_PER_SECOND, RATE_RANGE, RUN_OVERHEAD_SECONDS, STEP_SECONDS, LimitError,
                             check_cost, estimate, fixed_seconds, peak_memory, server_rate, training_flops)
from mnist_core.jobs import Lab
from mnist_core.layers import Conv, GlobalAvgPool, Softmax
from mnist_core.recipe import RECIPES, Recipe
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS, Architecture

# The run a student queued on a class server by ticking "Train anyway": 12 convs of 256 filters (6.5 M params),
# 200 epochs at batch 4096.
GIANT = Architecture(tuple([Conv(256, batchnorm=True, dropout=True) for _ in range(12)]
                           + [Conv(10, kernel=1, relu=False), GlobalAvgPool(), Softmax()]), "giant")
GIANT_RECIPE = Recipe(epochs=200, batch_size=4096)


def test_work_is_the_specs_multiply_adds_over_every_training_step_and_test_pass():
    macs = 3_546_688  # seed-final's, by hand: conv by conv, output pixels x kernel x channels in x out
    assert summarize(PRESETS["seed-final"]).macs == macs
    quick = RECIPES["quick"]  # one epoch of 60,000 images
    assert training_flops(PRESETS["seed-final"], quick) == 6 * macs * 60_000 + 2 * macs * 10_000
    assert training_flops(PRESETS["seed-final"], replace(quick, epochs=3, train_subset=1_000)) == \
        3 * (6 * macs * 1_000 + 2 * macs * 10_000)
    cost = estimate(PRESETS["seed-final"], quick, flops_per_second=25e9)
    steps = 469  # 60,000 images in batches of 128
    assert cost.seconds == pytest.approx(RUN_OVERHEAD_SECONDS + STEP_SECONDS * steps
                                         + (6 * macs * 60_000 + 2 * macs * 10_000) / 25e9)
    assert cost.time_text == "about 60 s"  # 59.2 s on a server that trains at 25 GFLOP/s


def test_many_tiny_steps_cost_time_however_small_the_network(monkeypatch):
    """A 4-filter net at batch 8 for 200 epochs is 1.5 M steps: over an hour here, though its FLOPs say
    minutes. bench.step_cost measured 2.7-2.9 ms a step for it on this machine."""
    tiny = Architecture((Conv(4), Conv(10, kernel=1, relu=False), GlobalAvgPool(), Softmax()), "tiny")
    recipe = Recipe(epochs=200, batch_size=8)
    assert training_flops(tiny, recipe) / DEFAULT_FLOPS_PER_SECOND < 300
    assert estimate(tiny, recipe).seconds == pytest.approx(200 * 7_500 * 2.8e-3, rel=0.1)
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MINUTES", raising=False)
    with pytest.raises(LimitError, match="about 72 min here, over this server's limit of 60 minutes"):
        check_cost(estimate(tiny, recipe))


def test_memory_grows_with_the_batch_and_the_layers_kept_for_the_backward_pass():
    arch = PRESETS["seed-final"]
    small, large = peak_memory(arch, Recipe(batch_size=256)), peak_memory(arch, Recipe(batch_size=512))
    weights = 4 * 4 * summarize(arch).total  # weights, gradients and Adam's two moments, float32
    assert large - weights == pytest.approx(2 * (small - weights))
    no_batchnorm = Architecture(tuple(replace(layer, batchnorm=False) if getattr(layer, "is_conv", False) else layer
                                      for layer in arch.layers), "no bn")
    assert peak_memory(no_batchnorm, Recipe(batch_size=256)) < small
    # A small batch on a wide first layer: the test pass's batch of 1,000, forward only, is the peak.
    assert peak_memory(arch, Recipe(batch_size=8)) == peak_memory(arch, Recipe(batch_size=16)) > \
        peak_memory(arch, Recipe(batch_size=8, val_batch_size=500))


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_passes_the_default_caps_with_every_named_recipe_even_at_the_slowest_rate(preset, monkeypatch):
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MINUTES", raising=False)
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MEMORY_GB", raising=False)
    slowest = DEFAULT_FLOPS_PER_SECOND * RATE_RANGE[0]  # a busy server's learnt rate goes no lower
    for recipe in RECIPES.values():
        check_cost(estimate(PRESETS[preset], recipe, slowest))


def test_the_giant_run_is_refused_before_it_is_queued_with_a_sentence_naming_the_cap(lab_home, monkeypatch):
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MINUTES", raising=False)
    assert summarize(GIANT).total == 6_505_216
    lab = Lab(home=lab_home)
    try:
        with pytest.raises(LimitError) as refused:
            lab.submit(GIANT, GIANT_RECIPE)
        assert str(refused.value).startswith("this run would take about ")
        assert "over this server's limit of 60 minutes a run (MNIST_LAB_MAX_RUN_MINUTES)" in str(refused.value)
        with pytest.raises(LimitError, match="over this server's limit of 60 minutes"):
            lab.submit_study(GIANT, RECIPES["quick"])  # each of a study's runs is held to the same caps
        assert lab.store.list() == [] and lab.store.list_studies() == []
    finally:
        lab.shutdown()


def test_memory_cap_refuses_a_huge_batch_and_the_teacher_can_raise_both_caps(monkeypatch):
    wide = Architecture(tuple([Conv(256) for _ in range(3)] + [Conv(10, kernel=1, relu=False), GlobalAvgPool(),
                                                               Softmax()]), "wide")
    cost = estimate(wide, Recipe(epochs=1, batch_size=4096))
    one_batch_of_100 = estimate(wide, Recipe(epochs=1, train_subset=100, batch_size=4096))
    assert one_batch_of_100.memory_bytes < cost.memory_bytes / 2
    monkeypatch.setenv("MNIST_LAB_MAX_RUN_MINUTES", "100000")
    with pytest.raises(LimitError, match=r"GB of training memory, over this server's limit of 4 GB a run"):
        check_cost(cost)
    monkeypatch.setenv("MNIST_LAB_MAX_RUN_MEMORY_GB", "64")
    check_cost(cost)
    monkeypatch.setenv("MNIST_LAB_MAX_RUN_MEMORY_GB", "lots")
    with pytest.raises(ConfigError, match="MNIST_LAB_MAX_RUN_MEMORY_GB must be a positive number"):
        check_cost(cost)


def test_the_server_rate_is_learnt_from_its_completed_runs(lab_home):
    store = RunStore(lab_home)
    arch, recipe = PRESETS["seed-final"], RECIPES["quick"]
    run_id = store.create_run("r", arch, recipe.to_dict(), 1, 1)
    stored = store.get(run_id)
    flops = training_flops(arch, recipe)

    def run(seconds, status="completed"):
        return replace(stored, status=status, duration=seconds)

    assert server_rate([]) == DEFAULT_FLOPS_PER_SECOND
    assert server_rate([run(10.0), run(100.0, "stopped")]) == DEFAULT_FLOPS_PER_SECOND  # too short; not whole
    fixed = fixed_seconds(recipe)
    rates = [flops / (seconds - fixed) for seconds in (44.0, 54.0, 104.0)]
    assert server_rate([run(44.0), run(54.0), run(104.0)]) == pytest.approx(rates[1])  # the median
    damaged = replace(stored, status="completed", duration=50.0, spec_json="{}")
    not_a_recipe = replace(stored, status="completed", duration=50.0, recipe_json="[1, 2]")
    assert server_rate([damaged, not_a_recipe, run(54.0)]) == pytest.approx(rates[1])
    # A few odd runs cannot move every classmate's estimate far: the rate stays within half to twice the default.
    assert server_rate([run(21.0)] * 5) == DEFAULT_FLOPS_PER_SECOND * RATE_RANGE[1]
    assert server_rate([run(3_000.0)] * 5) == DEFAULT_FLOPS_PER_SECOND * RATE_RANGE[0]


def test_the_cli_refuses_the_giant_run_in_one_line(lab_home, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MNIST_LAB_MAX_RUN_MINUTES", raising=False)
    spec = tmp_path / "giant.json"
    spec.write_text(GIANT.to_json())
    assert main(["train", "--spec", str(spec), "--epochs", "200", "--batch-size", "4096"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: this run would take about ") and "MNIST_LAB_MAX_RUN_MINUTES" in error
    assert RunStore(lab_home).list() == []
