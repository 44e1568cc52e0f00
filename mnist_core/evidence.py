"""Whether a test accuracy is evidence of learning, and how every page words an accuracy.

A network that learned nothing still scores: always answering "1" gets 11.35% of MNIST's test set
right. Such a run is labelled "did not learn" wherever it is shown and is never used as evidence
(a study's verdicts, the advisor's measured effects, the default model to draw for).
"""

from __future__ import annotations

import math

TEST_IMAGES = 10_000  # every accuracy is measured on MNIST's full test set
COMMONEST_SHARE = 0.1135  # 1,135 of the 10,000 test digits are 1s: the score of always answering "1"
CHANCE_SIGMAS = 4  # a score this many binomial deviations above always-"1" cannot be luck (p < 1e-4)
DID_NOT_LEARN = "did not learn"
NO_ACCURACY = "—"  # no test accuracy (stopped before its first epoch ended, or still training)


def binomial_std(accuracy: float) -> float:
    """The standard deviation of a test accuracy that sampling the 10,000 test digits alone implies."""
    return math.sqrt(accuracy * (1 - accuracy) / TEST_IMAGES)


# 12.62%: guessing scores at most the commonest class's share, plus the noise of a 10,000-digit test.
LEARNED_FROM = COMMONEST_SHARE + CHANCE_SIGMAS * binomial_std(COMMONEST_SHARE)


def learned(accuracy: float | None) -> bool:
    """Whether `accuracy` is clearly above what answering one digit every time scores."""
    return accuracy is not None and accuracy >= LEARNED_FROM


def did_not_learn(accuracy: float | None) -> bool:
    """A measured accuracy within noise of always answering the commonest digit (False when none was measured)."""
    return accuracy is not None and not learned(accuracy)


def accuracy_text(accuracy: float | None) -> str:
    """An accuracy as every page shows it: '98.61%', '11.35% (did not learn)', or a dash when none."""
    if accuracy is None:
        return NO_ACCURACY
    return f"{accuracy:.2%}" + (f" ({DID_NOT_LEARN})" if did_not_learn(accuracy) else "")


def did_not_learn_sentence(accuracy: float) -> str:
    """Why a run's score means nothing, for the run's own page."""
    return (f"This run did not learn: {accuracy:.2%} is within noise of what always answering \"1\" scores "
            f"({COMMONEST_SHARE:.2%} of the test digits are 1s). Its result is not used as evidence anywhere; "
            f"train longer, on more images, or with another recipe.")
