"""Parameter counts, shapes, receptive fields and the budget verdict, by arithmetic from a spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .spec import Architecture, Signal

DEFAULT_LIMIT = 15_000  # the notebook's rule: total parameters strictly under 15K
MAX_LIMIT = 10_000_000  # far above any network the spec allows; a larger number is a typo
Counting = Literal["total", "trainable"]
COUNTINGS: tuple[Counting, ...] = ("total", "trainable")


class BudgetError(ValueError):
    """A budget that cannot be used; the message says what a budget may be."""


@dataclass(frozen=True)
class LayerStats:
    """What one spec layer (a conv with its BatchNorm and Dropout, a pool, ...) costs and sees."""

    index: int
    label: str
    output_shape: tuple[int, ...]
    trainable: int
    non_trainable: int  # BatchNorm's moving mean and variance
    receptive_field: int
    macs: int  # multiply-accumulates of the convolution for one image

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def shape_text(self) -> str:
        return "x".join(str(d) for d in self.output_shape)


@dataclass(frozen=True)
class Summary:
    """Per-layer stats and totals of an architecture."""

    layers: tuple[LayerStats, ...]

    @property
    def trainable(self) -> int:
        return sum(s.trainable for s in self.layers)

    @property
    def non_trainable(self) -> int:
        return sum(s.non_trainable for s in self.layers)

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.layers)

    def counted(self, counting: Counting) -> int:
        """The number the budget rule looks at."""
        return self.total if counting == "total" else self.trainable


@dataclass(frozen=True)
class Budget:
    """A parameter limit and which parameters count against it; the verdict is strict `<`."""

    limit: int = DEFAULT_LIMIT
    counting: Counting = "total"

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or not 1 <= self.limit <= MAX_LIMIT:
            raise BudgetError(f"The budget must be a whole number of parameters from 1 to {MAX_LIMIT:,}.")
        if self.counting not in COUNTINGS:
            raise BudgetError(f"A budget counts {' or '.join(COUNTINGS)} parameters, not {self.counting!r:.40}.")

    def verdict(self, summary: Summary) -> Verdict:
        """How the architecture stands against this budget."""
        counted = summary.counted(self.counting)
        return Verdict(counted=counted, limit=self.limit, counting=self.counting)


@dataclass(frozen=True)
class Verdict:
    """`counted < limit` or not, and by how much."""

    counted: int
    limit: int
    counting: Counting

    @property
    def within(self) -> bool:
        return self.counted < self.limit

    @property
    def margin(self) -> int:
        """Parameters left before the limit (negative when over)."""
        return self.limit - self.counted

    @property
    def spare(self) -> int:
        """Parameters that could still be added and stay strictly under the limit (0 or more when within)."""
        return self.margin - 1

    @property
    def over_by(self) -> int:
        """Parameters above the limit (0 when within or exactly at it)."""
        return max(0, self.counted - self.limit)

    @property
    def over_text(self) -> str:
        """How far over, in words, never 'over by 0': '88 params over the 15,000 budget', or at the budget."""
        if self.over_by == 0:
            return f"at the {self.limit:,} budget, which it must stay under: 1 param over"
        return f"{self.over_by:,} params over the {self.limit:,} budget"

    @property
    def short(self) -> str:
        """A table cell short enough for the Runs table's budget column: 'within', 'at limit, 1 over' (the rule
        is strict) or 'over by 88'."""
        if self.within:
            return "within"
        return "at limit, 1 over" if self.over_by == 0 else f"over by {self.over_by:,}"

    @property
    def text(self) -> str:
        if self.within:
            return f"{self.counted:,} {self.counting} params < {self.limit:,}: {self.spare:,} to spare"
        if self.over_by == 0:
            return (f"{self.counted:,} {self.counting} params equals the {self.limit:,} budget; the rule is strictly "
                    f"under, so it is 1 over")
        # The rule is strictly under: 24 over means 25 to remove, as the Spare counter's -25 says.
        return (f"{self.counted:,} {self.counting} params: over the {self.limit:,} budget by {self.over_by:,}; "
                f"remove {-self.spare:,} to be under it")


def summarize(arch: Architecture) -> Summary:
    """Count every layer of `arch` the way Keras would, without building it."""
    x, rows = Signal(), []
    for index, layer in enumerate(arch.layers, 1):
        cost = layer.cost(x)
        x = layer.output(x)
        rows.append(LayerStats(index, layer.label, x.shape, cost.trainable, cost.non_trainable, x.receptive,
                               cost.macs))
    return Summary(tuple(rows))


def describe_change(before: Architecture, after: Architecture) -> str:
    """One line for the last edit, e.g. 'BatchNorm after conv 6: +64 total / +32 trainable'."""
    changed = [i for i, (a, b) in enumerate(zip(before.layers, after.layers)) if a != b]
    old, new = summarize(before), summarize(after)
    delta_total, delta_trainable = new.total - old.total, new.trainable - old.trainable
    counts = f"{delta_total:+,} total / {delta_trainable:+,} trainable"
    if len(before.layers) != len(after.layers) or len(changed) != 1:
        return f"Architecture changed: {counts}"
    index = changed[0]
    a, b = before.layers[index], after.layers[index]
    if type(a) is not type(b):
        if a.is_conv and b.is_conv:  # a conv made separable, or back
            return f"Conv {after.conv_number(index)}: {a.label} → {b.label}: {counts}"
        return f"Changed {after.layer_name(index)}: {counts}"
    return f"{a.describe_change(b, after.conv_number(index))}: {counts}"
