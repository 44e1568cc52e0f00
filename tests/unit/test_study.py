"""Ablation studies: what gets queued, in what order, how it resumes and stops, and the summary's maths."""

import math
from dataclasses import replace

import numpy as np
import pytest

from mnist_core.budget import summarize
from mnist_core.charts import study_figure
from mnist_core.evidence import binomial_std
from mnist_core.jobs import Lab
from mnist_core.runs import RunStore
from mnist_core.spec import PRESETS, Architecture
from mnist_core.study import (BASELINE, SHORT_RECIPE_FACTOR, check_seeds, measured_effects, summarize_study,
                               typical_seed_std, variants)
from mnist_core.recipe import FIRST_LOOK, QUICK_RUN, Recipe
from tests.conftest import wait_for

FIRST = PRESETS["seed-first"]
TINY = Recipe(epochs=1, train_subset=256, progress_every=1)
ONE_CONV = Architecture.from_code("c3x10l_gap_sm")  # baseline + BatchNorm on + Dropout on: 3 runs


@pytest.fixture
def queue_only(lab_home, monkeypatch):
    """A Lab whose queue fills but no worker starts: for what is queued, not how it trains."""
    lab = Lab(home=lab_home)
    monkeypatch.setattr(lab.executor, "ensure_running", lambda retry=False: None)
    return lab


@pytest.fixture
def lab(lab_home, mnist_dir):
    lab = Lab(home=lab_home, data_dir=mnist_dir)
    yield lab
    lab.shutdown()


def flipped(arch: Architecture, key: str) -> Architecture:
    """`arch` with the toggle a key like 'bn-off:conv2' names, worked out from the key alone."""
    word, _, conv = key.partition(":")
    kind, state = word.split("-")
    index = arch.convs[int(conv.removeprefix("conv")) - 1]
    layers = list(arch.layers)
    layers[index] = replace(layers[index], **{"batchnorm" if kind == "bn" else "dropout": state == "on"})
    return Architecture(tuple(layers))


def test_a_study_queues_the_baseline_and_each_toggle_flipped_alone(queue_only):
    """seed-first with one seed: 1 + one BatchNorm and one Dropout toggle per conv, same recipe and seed."""
    study_id = queue_only.submit_study(FIRST, TINY, seeds=(3,))
    runs = queue_only.store.study_runs(study_id)
    assert len(runs) == 1 + 2 * len(FIRST.convs) == 17
    assert all(run.status == "queued" and run.recipe == replace(TINY, seed=3).to_dict() for run in runs)
    assert runs[0].variant == BASELINE and runs[0].spec.layers == FIRST.layers
    keys = [run.variant for run in runs[1:]]
    assert sum(key.startswith("bn-") for key in keys) == sum(key.startswith("dropout-") for key in keys) == 8
    for run in runs[1:]:
        assert run.spec.layers == flipped(FIRST, run.variant).layers
        assert run.total_params == summarize(run.spec).total
    study = queue_only.store.get_study(study_id)
    assert (study.name, study.spec.layers, study.seeds) == ("Ablation of seed-first", FIRST.layers, [3])
    named = {run.variant: run.name for run in runs}
    assert named["bn-off:conv2"] == "Ablation of seed-first: Drop BatchNorm after conv 2, seed 3"


def test_every_variants_first_seed_is_queued_before_any_second_seed(queue_only):
    """The queue trains oldest first: a study's first 17 claims are seed 0 of every variant."""
    study_id = queue_only.submit_study(FIRST, TINY, seeds=(0, 1, 2), include_presets=True)
    runs = queue_only.store.study_runs(study_id)
    variants_per_seed = 1 + 16 + 2  # seed-first is the baseline itself: seed-final and best-under-15k are added
    assert len(runs) == 3 * variants_per_seed and runs[-1].variant == "preset:best-under-15k"
    claimed = [queue_only.store.claim_next(worker_pid=1) for _ in range(variants_per_seed)]
    assert {run.recipe["seed"] for run in claimed} == {0}
    assert [run.variant for run in claimed] == [run.variant for run in runs[variants_per_seed:2 * variants_per_seed]]
    assert [run.recipe["seed"] for run in runs] == sorted(run.recipe["seed"] for run in runs)


def test_seeds_are_one_to_five_distinct_values():
    assert check_seeds((4, 1, 4)) == [4, 1]
    for bad in ((), (0, 1, 2, 3, 4, 5)):
        with pytest.raises(ValueError, match="1 to 5 seeds"):
            check_seeds(bad)


def test_stop_study_cancels_queued_runs_and_flags_the_running_one(queue_only):
    """Stopping a study leaves none of its runs to train, and touches no other run."""
    other = queue_only.submit(FIRST, TINY).run_id
    study_id = queue_only.submit_study(ONE_CONV, TINY, seeds=(0, 1))
    queue_only.store.claim_next(worker_pid=1)  # the lone run first
    running = queue_only.store.claim_next(worker_pid=1)
    assert running.study_id == study_id
    stopped = queue_only.stop_study(study_id)
    runs = queue_only.store.study_runs(study_id)
    assert stopped == [run.id for run in runs]
    assert queue_only.store.stop_requested(running.id) and queue_only.store.get(running.id).status == "running"
    assert all(run.status == "stopped" for run in runs if run.id != running.id)
    assert queue_only.store.get(other).status == "running" and not queue_only.store.stop_requested(other)


def finished_run(store: RunStore, study_id: int, variant: str, arch: Architecture, seed: int, status: str,
                 accuracy: float | None = None) -> int:
    """A run of the study as a worker would leave it, without training."""
    counts = summarize(arch)
    run_id = store.create_run(variant, arch, replace(TINY, seed=seed).to_dict(), counts.total, counts.trainable,
                              study_id=study_id, variant=variant)
    if status != "queued":
        store.claim_next(worker_pid=1)
        if status != "running":
            store.finish(run_id, status, test_accuracy=accuracy)
    return run_id


def finished_study(store: RunStore, recipe: Recipe, results: dict[str, list[float]]) -> int:
    """A study of seed-first whose runs completed with these accuracies, one per seed, as a worker leaves them."""
    plan = {variant.key: variant.arch for variant in variants(FIRST)}
    seeds = len(next(iter(results.values())))
    study_id = store.create_study("made by hand", FIRST, recipe.to_dict(), list(range(seeds)))
    for seed in range(seeds):
        for key, accuracies in results.items():
            finished_run(store, study_id, key, plan[key], seed, "completed", accuracies[seed])
    return study_id


def test_typical_seed_spread_is_the_binomial_floor_inflated_for_short_recipes():
    """Well-trained: sqrt(p(1-p)/10,000); a train subset or few epochs: SHORT_RECIPE_FACTOR times that."""
    floor = math.sqrt(0.99 * 0.01 / 10_000)
    assert binomial_std(0.99) == pytest.approx(floor) == pytest.approx(0.000995, abs=1e-6)
    assert typical_seed_std(Recipe().to_dict(), 0.99) == pytest.approx(floor)
    for short in (Recipe(epochs=2, train_subset=10_000), Recipe(epochs=5), TINY):
        assert typical_seed_std(short.to_dict(), 0.99) == pytest.approx(SHORT_RECIPE_FACTOR * floor)


def test_summary_with_one_seed_judges_against_the_typical_spread(lab_home):
    store = RunStore(lab_home)
    plan = {variant.key: variant.arch for variant in variants(FIRST)}
    study_id = store.create_study("one seed", FIRST, TINY.to_dict(), [0])
    for key, status, accuracy in [(BASELINE, "completed", 0.98), ("bn-off:conv2", "completed", 0.95),
                                  ("dropout-off:conv1", "completed", 0.979), ("bn-on:conv3", "failed", None),
                                  ("bn-off:conv6", "running", None), ("dropout-on:conv8", "queued", None)]:
        finished_run(store, study_id, key, plan[key], 0, status, accuracy)
    summary = summarize_study(store, study_id)
    assert (summary.total, summary.done, summary.status) == (6, 4, "running")
    assert summary.counts == {"completed": 3, "failed": 1, "running": 1, "queued": 1}
    floor = SHORT_RECIPE_FACTOR * math.sqrt(0.98 * 0.02 / 10_000)  # TINY trains on a subset: a short recipe
    assert (summary.seed_std, summary.seed_std_source) == (pytest.approx(floor), "typical")
    rows = {row.key: row for row in summary.rows}
    assert [row.key for row in summary.rows][0] == BASELINE and rows[BASELINE].verdict == "reference"
    noise = 2 * floor * math.sqrt(2)
    drop_bn = rows["bn-off:conv2"]
    assert drop_bn.label == "Drop BatchNorm after conv 2" and drop_bn.delta_params == -128
    assert drop_bn.delta_accuracy == pytest.approx(0.95 - 0.98) and drop_bn.noise == pytest.approx(noise)
    assert (drop_bn.effect, drop_bn.verdict) == ("worse", "worse, 1 seed: tentative")
    assert drop_bn.spread is None and drop_bn.std is None
    assert rows["dropout-off:conv1"].verdict == "within seed noise, 1 seed: tentative"
    assert rows["dropout-off:conv1"].delta_params == 0 and rows["bn-on:conv3"].delta_params == 64
    assert (rows["bn-on:conv3"].verdict, rows["bn-on:conv3"].accuracies) == ("no result (failed)", {})
    assert rows["bn-off:conv6"].verdict == rows["dropout-on:conv8"].verdict == "no result yet"
    assert rows["dropout-on:conv8"].statuses == {0: "queued"}


def test_runs_that_did_not_learn_are_said_and_never_compared(lab_home):
    """The old first look: every variant at always-"1" (11.35%), one at 16.1% by luck. That used to read
    "better, +4.75%"; no run within noise of guessing is evidence, and without a baseline that learned
    nothing is compared."""
    store = RunStore(lab_home)
    plan = {variant.key: variant.arch for variant in variants(FIRST)}
    study_id = store.create_study("chance", FIRST, TINY.to_dict(), [0])
    for key, accuracy in [(BASELINE, 0.1135), ("bn-off:conv1", 0.1610), ("bn-off:conv2", 0.1135)]:
        finished_run(store, study_id, key, plan[key], 0, "completed", accuracy)
    rows = {row.key: row for row in summarize_study(store, study_id).rows}
    assert rows[BASELINE].verdict == rows["bn-off:conv2"].verdict == "did not learn: no evidence"
    assert rows[BASELINE].statuses == {0: "did not learn"} and rows[BASELINE].accuracies == {}
    lucky = rows["bn-off:conv1"]
    assert (lucky.effect, lucky.delta_accuracy) == (None, None)
    assert lucky.verdict == "no comparison: the baseline did not learn"
    assert measured_effects(store, FIRST) == {}


def test_a_seed_that_did_not_learn_is_left_out_of_the_mean_and_said(lab_home):
    store = RunStore(lab_home)
    study_id = finished_study(store, TINY, {BASELINE: [0.980, 0.982], "bn-off:conv2": [0.950, 0.1135]})
    rows = {row.key: row for row in summarize_study(store, study_id).rows}
    drop_bn = rows["bn-off:conv2"]
    assert drop_bn.accuracies == {0: 0.950} and drop_bn.statuses == {0: "completed", 1: "did not learn"}
    # Seed 0 alone against both baseline seeds would compare luck: no effect is drawn.
    assert (drop_bn.delta_accuracy, drop_bn.effect) == (None, None)
    assert drop_bn.verdict == "no evidence: 1 of 2 seeds did not learn"


def test_a_baseline_seed_that_did_not_learn_leaves_nothing_to_compare(lab_home):
    """Two 1x1 convs: baseline seeds at 19.73% and 7.83%, a variant at 15.67%. Comparing the lucky seed 0
    with the variant's seed 1 once said "worse, -4.06%"."""
    store = RunStore(lab_home)
    plan = {variant.key: variant.arch for variant in variants(FIRST)}
    study_id = finished_study(store, TINY, {BASELINE: [0.1973, 0.0783], "dropout-off:conv1": [0.1135, 0.1567]})
    rows = {row.key: row for row in summarize_study(store, study_id).rows}
    assert rows[BASELINE].verdict == "reference, 1 of 2 seeds did not learn"
    assert rows["dropout-off:conv1"].delta_accuracy is None
    finished_run(store, study_id, "bn-off:conv1", plan["bn-off:conv1"], 0, "completed", 0.30)
    assert {row.key: row for row in summarize_study(store, study_id).rows}["bn-off:conv1"].verdict == \
        "no comparison: 1 of 2 baseline seeds did not learn"
    assert rows["dropout-off:conv1"].verdict == "no evidence: 1 of 2 seeds did not learn"
    assert measured_effects(store, FIRST) == {}


def test_a_weaker_newer_study_never_replaces_a_stronger_ones_measured_effects(lab_home):
    """A Quick-run study (60,000 images) measured first; a later first look (4,000 images) says otherwise:
    the advisor keeps the Quick run's number and names its study. A later study as strong replaces it."""
    store = RunStore(lab_home)
    quick = finished_study(store, QUICK_RUN, {BASELINE: [0.985], "bn-off:conv1": [0.983]})
    finished_study(store, FIRST_LOOK, {BASELINE: [0.93], "bn-off:conv1": [0.95], "bn-off:conv2": [0.92]})
    effects = measured_effects(store, FIRST)
    assert effects["bn-off:conv1"].study_id == quick
    assert effects["bn-off:conv1"].delta_accuracy == pytest.approx(-0.002)
    assert effects["bn-off:conv1"].text == ("-0.20 points, within seed noise, 1 seed: tentative "
                                            "(study 1: 1 seed x 60,000 training images)")
    assert effects["bn-off:conv2"].study_id == 2  # nothing stronger measured it
    stronger = finished_study(store, QUICK_RUN, {BASELINE: [0.985, 0.985], "bn-off:conv1": [0.975, 0.975]})
    assert measured_effects(store, FIRST)["bn-off:conv1"].study_id == stronger
    assert "2 seeds x 60,000 training images" in measured_effects(store, FIRST)["bn-off:conv1"].text


def test_summary_with_three_seeds_pools_the_observed_spread(lab_home):
    store = RunStore(lab_home)
    plan = {variant.key: variant.arch for variant in variants(FIRST)}
    results = {BASELINE: [0.980, 0.984, 0.982], "bn-off:conv6": [0.970, 0.975, 0.972],
               "dropout-off:conv2": [0.983, 0.985, 0.981], "bn-off:conv7": [0.978, 0.986, None]}
    study_id = store.create_study("three seeds", FIRST, Recipe().to_dict(), [0, 1, 2])  # its floor: binomial
    for seed in range(3):
        for key, accuracies in results.items():
            accuracy = accuracies[seed]
            finished_run(store, study_id, key, plan[key], seed, "stopped" if accuracy is None else "completed",
                         accuracy)
    summary = summarize_study(store, study_id)
    assert (summary.total, summary.done, summary.status) == (12, 12, "finished")
    # The oracle: the same rule computed directly with numpy.
    done = {key: np.array([a for a in values if a is not None]) for key, values in results.items()}
    pooled = math.sqrt(sum(v.var(ddof=1) * (len(v) - 1) for v in done.values()) /
                       sum(len(v) - 1 for v in done.values()))
    assert pooled > binomial_std(done[BASELINE].mean())
    assert (summary.seed_std, summary.seed_std_source) == (pytest.approx(pooled), "observed")
    for row in summary.rows:
        values = done[row.key]
        assert row.accuracies == {seed: a for seed, a in enumerate(results[row.key]) if a is not None}
        assert row.mean == pytest.approx(values.mean())
        assert row.spread == pytest.approx(values.max() - values.min())
        assert row.std == pytest.approx(values.std(ddof=1))
        if row.key != BASELINE:
            delta = values.mean() - done[BASELINE].mean()
            noise = 2 * pooled * math.sqrt(1 / len(values) + 1 / 3)
            assert row.delta_accuracy == pytest.approx(delta) and row.noise == pytest.approx(noise)
            assert row.effect == ("noise" if abs(delta) < noise else "better" if delta > 0 else "worse")
    rows = {row.key: row for row in summary.rows}
    assert rows["bn-off:conv6"].verdict == "worse" and rows["dropout-off:conv2"].verdict == "within seed noise"
    assert rows["bn-off:conv7"].statuses == {0: "completed", 1: "completed", 2: "stopped"}
    figure = study_figure(summary)
    assert list(figure.data[0].x) == [row.delta_params for row in summary.rows[1:]]
    assert list(figure.data[0].text) == [row.label for row in summary.rows[1:]]


def test_a_restarted_app_continues_a_study_and_the_summary_counts_it(lab, lab_home, mnist_dir):
    """Shut the Lab down mid-study: its queued runs stay queued, and a new Lab's worker trains them."""
    study_id = lab.submit_study(ONE_CONV, TINY)
    first = lab.store.study_runs(study_id)[0].id
    wait_for(lambda: lab.store.get(first).status != "queued", every=0.05)
    lab.shutdown()
    before = [run.status for run in lab.store.study_runs(study_id)]
    assert set(before) <= {"interrupted", "completed", "queued"} and before[-1] == "queued", before

    restarted = Lab(home=lab_home, data_dir=mnist_dir)
    try:
        runs = restarted.wait_study(study_id, timeout=120)
    finally:
        restarted.shutdown()
    assert [run.status for run in runs] == [status.replace("queued", "completed") for status in before]
    summary = summarize_study(restarted.store, study_id)
    assert (summary.done, summary.total, summary.status) == (3, 3, "finished")
    assert summary.counts.get("completed") == 3 - before.count("interrupted")
    assert [row.key for row in summary.rows] == [BASELINE, "bn-on:conv1", "dropout-on:conv1"]
    for row in summary.rows[1:]:  # 256 images are too few to learn from: each seed is reported, not averaged
        assert row.statuses[0] in ("did not learn", "completed")
        assert row.delta_params == (40 if row.key == "bn-on:conv1" else 0)
