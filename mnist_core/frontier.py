"""The budget frontier as data: each preset's measured seeds, and published small-MNIST results to compare.

The numbers of the `best-under-8k` ... `best-under-1k` presets come from `bench/frontier.py` and
are checked against `bench/results/frontier.json` by the tests: every choice behind them was made on
a validation split (the last 5,000 training images), and the test set was read once per seed, after the
last epoch. `best-under-15k` was chosen earlier, on the test set, and is marked so.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from .budget import Budget, summarize
from .spec import PRESETS


@dataclass(frozen=True)
class PresetResult:
    """A preset trained with a named recipe, one final test accuracy per seed (the last epoch's)."""

    preset: str
    recipe: str  # e.g. 'best with 5,000 validation images'
    test: dict[int, float]  # seed -> final test accuracy
    validation: dict[int, float]  # seed -> final validation accuracy; empty where no split was held out
    chosen_on_test: bool = False  # the architecture or recipe was picked by its test accuracy

    @property
    def params(self) -> int:
        return summarize(PRESETS[self.preset]).total

    @property
    def budget(self) -> int:
        """The total-params budget its name says it is under: best-under-5k is under 5,000."""
        return int(re.fullmatch(r"best-under-(\d+)k", self.preset)[1]) * 1000

    @property
    def mean(self) -> float:
        return statistics.mean(self.test.values())

    @property
    def spread(self) -> float:
        """The standard deviation over the seeds."""
        return statistics.stdev(self.test.values()) if len(self.test) > 1 else 0.0


@dataclass(frozen=True)
class Published:
    """A published result: most are a single run's best epoch, read on the test set."""

    label: str
    params: int
    accuracy: float
    how: str  # how the number was got, e.g. 'single run, best epoch'
    source: str
    url: str | None = None  # where the source can be read, where one was found


# Seeds 0-4: final test accuracy, then final validation accuracy (bench/results/frontier.json, on 55,000 images;
# the epochs are those with the higher validation mean; "rotate=0 shift=0 zoom=0": the `best` recipe without its
# augmentation, better for the tiny nets).
MEASURED: dict[str, PresetResult] = {result.preset: result for result in (
    # The `best` recipe, 20 epochs on all 60,000 images, each epoch tested: the architecture was tuned on the test set.
    PresetResult("best-under-15k", "best", {0: 0.9957, 1: 0.9956, 2: 0.9962, 3: 0.9957, 4: 0.9957}, {},
                 chosen_on_test=True),
    PresetResult("best-under-8k", "best epochs=25",
                 {0: 0.9951, 1: 0.9947, 2: 0.9954, 3: 0.9942, 4: 0.9946},
                 {0: 0.9954, 1: 0.9946, 2: 0.9934, 3: 0.9948, 4: 0.9946}),
    PresetResult("best-under-5k", "best epochs=25",
                 {0: 0.9933, 1: 0.9934, 2: 0.9935, 3: 0.9931, 4: 0.9939},
                 {0: 0.9934, 1: 0.9938, 2: 0.9926, 3: 0.9942, 4: 0.9934}),
    PresetResult("best-under-2k", "best epochs=15 rotate=0 shift=0 zoom=0",
                 {0: 0.9899, 1: 0.9905, 2: 0.9909, 3: 0.9921, 4: 0.9912},
                 {0: 0.9908, 1: 0.9904, 2: 0.9904, 3: 0.9926, 4: 0.9900}),
    PresetResult("best-under-1k", "best epochs=45 rotate=0 shift=0 zoom=0",
                 {0: 0.9842, 1: 0.9859, 2: 0.9836, 3: 0.9857, 4: 0.9834},
                 {0: 0.9850, 1: 0.9864, 2: 0.9866, 3: 0.9878, 4: 0.9830}),
)}

PUBLISHED = (
    Published("notebook", 14_960, 0.9951, "single run, final epoch (20)", "the Keras notebook this app grew from"),
    Published("1x1+GAP 8.9K", 8_900, 0.995, "single run, epoch 15; 1x1 convs, global average pooling, rotation",
              "a public course write-up (<= 10K parameters)", "https://github.com/The-School-of-AI/era-s7-ram"),
    Published("course 7.1K", 7_070, 0.994, "single run, over 99.4% in 11 epochs", "a course repository (<= 8K)",
              "https://github.com/nitin-vig/ERAv4S6"),
    Published("course 5.8K", 5_760, 0.9945, "single run, best epoch", "a course repository (<= 8K)"),
    Published("course 4.8K", 4_838, 0.9942, "single run, epoch 8 of 12", "the same course family (<= 5K)"),
    Published("course 3.8K", 3_762, 0.9952, "single run, best epoch", "the same course family (<= 5K)"),
    Published("golf 697", 697, 0.99, "best of many runs, test set used for early stopping",
              "a parameter-golf project (<= 1K)"),
    Published("golf 575", 575, 0.98, "single run", "a parameter-golf project (<= 1K)",
              "https://hexhowells.com/posts/neural-golfing.html"),
)


def smallest_measured() -> PresetResult:
    """The measured preset with the fewest total params."""
    return min(MEASURED.values(), key=lambda result: result.params)


def best_within(budget: Budget) -> PresetResult | None:
    """The measured preset with the highest mean test accuracy that fits `budget`; None if none fits."""
    fitting = [result for result in MEASURED.values() if budget.verdict(summarize(PRESETS[result.preset])).within]
    return max(fitting, key=lambda result: result.mean, default=None)
