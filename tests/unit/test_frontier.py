"""The frontier's numbers: each preset's seeds are the bench's, each preset is under its budget, and the
advisor's 'best measured preset within this budget' is the most accurate one that fits."""

import json
import re

import pytest

from mnist_core.budget import Budget, summarize
from mnist_core.frontier import MEASURED, PUBLISHED, best_within
from mnist_core.spec import PRESETS
from tests.conftest import ROOT

RESULTS = json.loads((ROOT / "bench" / "results" / "frontier.json").read_text())
HONEST = [result for result in MEASURED.values() if not result.chosen_on_test]


def budget_of(preset: str) -> int:
    return int(re.fullmatch(r"best-under-(\d+)k", preset)[1]) * 1000


def test_a_preset_at_every_budget_the_issue_names():
    assert {result.preset for result in HONEST} == {f"best-under-{k}k" for k in (8, 5, 2, 1)}


@pytest.mark.parametrize("result", HONEST, ids=lambda result: result.preset)
def test_each_presets_seeds_are_the_final_runs_of_the_bench(result):
    """Five seeds, each the final run's last-epoch test and validation accuracy as bench.frontier wrote them,
    trained on 55,000 images with 5,000 held out."""
    code = PRESETS[result.preset].to_code()
    finals = {row["seed"]: row for row in RESULTS if row["mode"] == "final" and row["code"] == code
              and row["recipe"] == result.recipe}
    assert sorted(finals) == [0, 1, 2, 3, 4] == sorted(result.test) == sorted(result.validation)
    for seed, row in finals.items():
        assert row["settings"]["validation"] == 5_000
        assert result.test[seed] == round(row["test_accuracy"], 4)
        assert result.validation[seed] == round(row["validation_accuracy"], 4)
        assert row["epochs"][-1]["validation_accuracy"] == row["validation_accuracy"]


@pytest.mark.parametrize("result", list(MEASURED.values()), ids=lambda result: result.preset)
def test_each_preset_is_strictly_under_the_budget_in_its_name(result):
    assert result.params == summarize(PRESETS[result.preset]).total < budget_of(result.preset)


def test_the_best_measured_preset_within_a_budget():
    assert best_within(Budget(15_000)).preset == "best-under-15k"
    assert best_within(Budget(5_000)).preset == "best-under-5k"
    assert best_within(Budget(2_000)).preset == "best-under-2k"
    smallest = min(result.params for result in MEASURED.values())
    assert best_within(Budget(smallest)) is None  # strictly under: a budget of its own size does not fit it
    assert best_within(Budget(smallest + 1)).params == smallest


def test_published_results_are_plausible_and_sourced():
    for published in PUBLISHED:
        assert 0 < published.params < 20_000 and 0.9 < published.accuracy < 1 and published.how and published.source
