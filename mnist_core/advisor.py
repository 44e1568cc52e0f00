"""The budget advisor: what each single edit costs, the fewest removals that fit, what spare params buy.

Counts come from each layer kind's own `cost`, re-walked only over the layers an edit reaches (a
filter change reaches the next conv, which absorbs it), so the whole search fits in a page rerun:
see bench/advisor.py.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

from .budget import Budget, Counting, summarize
from .layers import Conv, Layer, SeparableConv, Signal, field_types
from .spec import Architecture, SpecError

FILTER_STEPS = (-4, -2, -1, 1, 2, 4)  # nudges small enough to keep the network's shape, big enough to matter
MAX_EDITS = 3  # a fix of more than three edits is a redesign
ALTERNATIVES = 5  # plans kept for each number of edits: enough to show a choice, few enough to read

TOGGLES = (("batchnorm", "bn", "BatchNorm"), ("dropout", "dropout", "Dropout"))  # field, key word, label word
SEPARABLE = "separable"  # not a field: `Architecture.with_layer` turns a conv into a separable one or back
Change = tuple[int, str, Any]  # (layer index, field, new value)


@dataclass(frozen=True)
class Delta:
    """A change in parameter counts."""

    total: int
    trainable: int

    def counted(self, counting: Counting) -> int:
        """The change the budget rule sees."""
        return self.total if counting == "total" else self.trainable

    def __add__(self, other: Delta) -> Delta:
        return Delta(self.total + other.total, self.trainable + other.trainable)


@dataclass(frozen=True)
class Edit:
    """One change to one field of one layer, with its exact effect on the counts."""

    key: str  # stable across reruns, for widget keys: 'bn-off:conv2', 'filters:conv3:-2'
    label: str  # in the page's words: 'Drop BatchNorm after conv 2'
    index: int  # into `arch.layers`
    field: str
    value: Any  # the new value, not a step, so that edits to different fields of one layer compose
    delta: Delta  # this edit alone
    fits: bool  # the spec after this edit alone is within the budget

    def apply(self, arch: Architecture) -> Architecture:
        """`arch` with this edit made (`arch.with_layer(index, **{field: value})`)."""
        return arch.with_layer(self.index, **{self.field: self.value})


@dataclass(frozen=True)
class Plan:
    """Removals that, made together, bring an over-budget spec within the budget."""

    edits: tuple[Edit, ...]  # in layer order
    delta: Delta  # of the edits together: changes to neighbouring convs do not simply add up
    margin: int  # params left under the limit afterwards (> 0)

    @property
    def spare(self) -> int:
        """Params that could still be added afterwards and stay strictly under the limit."""
        return self.margin - 1

    @property
    def label(self) -> str:
        return " + ".join(edit.label for edit in self.edits)

    def apply(self, arch: Architecture) -> Architecture:
        """`arch` with every edit of the plan made."""
        for edit in self.edits:
            arch = edit.apply(arch)
        return arch


def single_edits(arch: Architecture, budget: Budget = Budget(), free: bool = False) -> list[Edit]:
    """Every valid single edit that changes the count, in layer order.

    BatchNorm on/off after each conv, filter steps on every conv but the 10-filter head, and each 3x3 or 5x5
    conv made separable or full. With `free`, also the Dropout toggles, which change no count (an ablation
    still wants them).
    """
    counter = _Counter(arch)
    counted = summarize(arch).counted(budget.counting)
    edits = []
    for index, field, value, key, label in _candidates(arch, free):
        try:
            arch.with_layer(index, **{field: value})
        except SpecError:
            continue
        delta = counter.delta([(index, field, value)])
        if free or delta.total or delta.trainable:
            edits.append(Edit(key, label, index, field, value, delta,
                              counted + delta.counted(budget.counting) < budget.limit))
    return edits


def fits(arch: Architecture, budget: Budget = Budget(), alternatives: int = ALTERNATIVES) -> list[Plan]:
    """The smallest sets of removals that bring an over-budget spec within `budget`; [] if it fits already.

    Fewest edits first, then fewest params removed; up to `alternatives` plans for each number of
    edits (1 to MAX_EDITS), so a two-edit fix like the notebook's (BatchNorm off after convs 6 and 7)
    shows beside a one-edit one. Each plan is minimal: no smaller part of it fits.
    """
    counting = budget.counting
    need = summarize(arch).counted(counting) - budget.limit + 1  # params to remove
    if need <= 0:
        return []
    counter = _Counter(arch)
    removals = sorted((edit for edit in single_edits(arch, budget) if edit.delta.counted(counting) < 0),
                      key=lambda edit: edit.delta.counted(counting))  # largest removal first
    amounts = [-edit.delta.counted(counting) for edit in removals]
    plans: list[Plan] = []
    unfit: dict[tuple[int, ...], int] = {(): 0}  # sets of removals (positions) that do not fit -> params removed
    for size in range(1, MAX_EDITS + 1):
        # Removals are subadditive (two edits touching the same weights remove them once): a set cannot
        # remove more than its parts do alone, which bounds what growing it could reach.
        reach = sum(amounts[:MAX_EDITS - size])
        found, grown = [], {}
        for combo, removed in unfit.items():
            for position in range(combo[-1] + 1 if combo else 0, len(removals)):
                if removed + amounts[position] + reach < need:
                    break  # amounts only shrink from here
                candidate = combo + (position,)
                edits = [removals[p] for p in candidate]
                if (len({(edit.index, edit.field) for edit in edits}) < size  # one filter change per conv
                        or any(part not in unfit for part in itertools.combinations(candidate, size - 1))):
                    continue  # a smaller part already fits (or cannot grow to fit)
                delta = counter.delta([(edit.index, edit.field, edit.value) for edit in edits])
                if -delta.counted(counting) >= need:
                    plan_edits = tuple(sorted(edits, key=lambda edit: edit.index))
                    found.append(Plan(plan_edits, delta, -delta.counted(counting) - need + 1))
                else:
                    grown[candidate] = -delta.counted(counting)
        plans += sorted(found, key=_plan_order)[:alternatives]
        unfit = grown
    return plans


def spare(arch: Architecture, budget: Budget = Budget()) -> list[Edit]:
    """The single additions that keep the spec within `budget` ('what the spare params buy'), cheapest first."""
    counting = budget.counting
    return sorted((edit for edit in single_edits(arch, budget) if edit.fits and edit.delta.counted(counting) > 0),
                  key=lambda edit: (edit.delta.counted(counting), -edit.index, edit.key))


def _plan_order(plan: Plan) -> tuple:
    """Fewest params removed (the smallest margin left), then edits nearer the head, then by key."""
    # Nearer the head first: it leaves the early feature extractors alone, as the notebook did.
    return plan.margin, sorted(-edit.index for edit in plan.edits), [edit.key for edit in plan.edits]


def _candidates(arch: Architecture, free: bool) -> Iterator[tuple[int, str, Any, str, str]]:
    """(index, field, new value, key, label) of each edit worth costing, read from the layers' fields."""
    head, x = arch.convs[-1], Signal()
    for index, layer in enumerate(arch.layers):
        fields = field_types(type(layer))
        number = arch.conv_number(index)
        x, channels_in = layer.output(x), x.channels
        for field, short, word in TOGGLES[:2 if free else 1]:
            if field in fields:
                on = not getattr(layer, field)
                yield (index, field, on, f"{short}-{'on' if on else 'off'}:conv{number}",
                       f"{'Add' if on else 'Drop'} {word} after conv {number}")
        # On one input channel a separable conv is one filter scaled `filters` ways: never worth suggesting.
        if isinstance(layer, Conv) and layer.kernel > 1 and channels_in > 1:
            on = not isinstance(layer, SeparableConv)
            yield (index, SEPARABLE, on, f"sep-{'on' if on else 'off'}:conv{number}",
                   f"Make conv {number} {'separable' if on else 'a full conv'}")
        if "filters" in fields and index != head:  # the head's 10 filters are the 10 digits
            for step in FILTER_STEPS:
                yield (index, "filters", layer.filters + step, f"filters:conv{number}:{step:+d}",
                       f"Filters of conv {number}: {layer.filters} → {layer.filters + step}")


class _Counter:
    """Count changes of edits to one architecture, re-costing only the layers the edits reach."""

    def __init__(self, arch: Architecture) -> None:
        self.layers = arch.layers
        self.signals = [Signal()]  # the input of each layer, then the output of the last
        for layer in arch.layers:
            self.signals.append(layer.output(self.signals[-1]))
        self.walks: dict[tuple[Change, ...], tuple[Delta, int]] = {}

    def delta(self, changes: Sequence[Change]) -> Delta:
        """The change in counts when all `changes` are made together."""
        total = Delta(0, 0)
        for group in self._groups(changes):
            total += self._walk(group)[0]
        return total

    def _groups(self, changes: Sequence[Change]) -> list[tuple[Change, ...]]:
        """`changes` split where no layer is reached by two groups: such groups' deltas add up."""
        groups: list[list[Change]] = []
        end = -1
        for change in sorted(changes, key=lambda change: change[0]):
            if change[0] > end:
                groups.append([])
            groups[-1].append(change)
            end = max(end, self._walk((change,))[1])
        return [tuple(group) for group in groups]

    def _walk(self, changes: tuple[Change, ...]) -> tuple[Delta, int]:
        """The delta of `changes` and the last layer they reach, walking from the first edited layer."""
        if changes in self.walks:
            return self.walks[changes]
        edited: dict[int, dict[str, Any]] = {}
        for index, field, value in changes:
            edited.setdefault(index, {})[field] = value
        last = reached = max(edited)
        total = trainable = 0
        x = self.signals[min(edited)]
        for index in range(min(edited), len(self.layers)):
            if index not in edited and x == self.signals[index]:
                if index > last:
                    break  # the change has been absorbed and nothing further is edited
                x = self.signals[index + 1]
                continue
            old = self.layers[index]
            new = _edited(old, edited[index]) if index in edited else old
            before, after = old.cost(self.signals[index]), new.cost(x)
            total += after.trainable + after.non_trainable - before.trainable - before.non_trainable
            trainable += after.trainable - before.trainable
            x, reached = new.output(x), index
        self.walks[changes] = Delta(total, trainable), reached
        return self.walks[changes]


def _edited(layer: Layer, changes: dict[str, Any]) -> Layer:
    """`layer` with `changes` to its fields, made separable or full first when asked."""
    changes = dict(changes)
    if SEPARABLE in changes:
        layer = layer.with_separable(changes.pop(SEPARABLE))
    return replace(layer, **changes)
