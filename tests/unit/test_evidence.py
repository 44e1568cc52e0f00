"""A test accuracy within noise of always answering "1" is "did not learn", said the same way everywhere."""

import pytest

from mnist_core.budget import Budget, Verdict
from mnist_core.evidence import COMMONEST_SHARE, LEARNED_FROM, accuracy_text, did_not_learn, learned
from mnist_core.words import plural, share


def test_always_answering_one_digit_is_not_learning(mnist):
    """The commonest test digit is "1": a net that always answers it scores its share, 11.35%."""
    import numpy as np

    assert np.bincount(mnist.y_test).max() / len(mnist.y_test) == pytest.approx(COMMONEST_SHARE)
    assert LEARNED_FROM == pytest.approx(0.1135 + 4 * (0.1135 * 0.8865 / 10_000) ** 0.5)


@pytest.mark.parametrize("accuracy, expected", [(0.098, False), (0.1135, False), (0.126, False), (0.127, True),
                                                (0.5, True), (0.9951, True), (None, False)])
def test_learned_is_clearly_above_guessing(accuracy, expected):
    assert learned(accuracy) is expected
    assert did_not_learn(accuracy) is (accuracy is not None and not expected)


@pytest.mark.parametrize("accuracy, text", [(0.9861, "98.61%"), (0.1135, "11.35% (did not learn)"), (None, "—")])
def test_an_accuracy_is_worded_one_way(accuracy, text):
    assert accuracy_text(accuracy) == text


@pytest.mark.parametrize("counted, short", [(14_999, "within"), (15_000, "at limit, 1 over"),
                                            (15_088, "over by 88")])
def test_the_budget_cell_never_says_over_by_zero(counted, short):
    verdict = Verdict(counted, Budget().limit, "total")
    assert verdict.short == short
    assert "over by 0" not in verdict.text


def test_counts_are_singular_only_for_one():
    assert [plural(n, "epoch") for n in (0, 1, 2, 60_000)] == ["0 epochs", "1 epoch", "2 epochs", "60,000 epochs"]


def test_a_confidence_never_reads_100_percent():
    assert [share(p) for p in (0.725, 0.9994, 0.9995, 1.0)] == ["72.5%", "99.9%", "over 99.9%", "over 99.9%"]
