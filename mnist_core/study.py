"""Ablation studies: what does each BatchNorm or Dropout actually buy?

A study trains a baseline architecture beside one variant per toggle (each BatchNorm and each
Dropout flipped on its own) and, optionally, the presets, all with one recipe and each of a
few seeds. `variants` plans them, `Lab.submit_study` queues them, and `summarize_study` turns the
finished runs into one row per variant: the parameter change, the accuracy change, and whether that
change is larger than the noise from the random seed alone.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable

from .advisor import single_edits
from .budget import summarize
from .db import StoreError
from .evidence import DID_NOT_LEARN, binomial_std, did_not_learn, learned
from .history import TERMINAL, Run, Study
from .runs import RunStore
from .spec import PRESETS, Architecture, SpecError
from .words import plural, points

BASELINE = "baseline"
PRESET = "preset:"  # a preset variant's key is this plus the preset's name
TOGGLES = ("bn-", "dropout-")  # the advisor's keys for BatchNorm and Dropout on/off
MAX_SEEDS = 5  # five seeds already make a study of the notebook network ~85 runs
NOISE_SIGMAS = 2.0  # a difference beyond 2 standard deviations of seed noise is called real (~95%)
WELL_TRAINED_EPOCHS = 10  # on all 60,000 images: past this a net's seed spread is about the binomial floor
# A short recipe (fewer epochs, or a train subset the seed draws) spreads more than the floor. Measured on
# the quick recipe, seeds 0-5: seed-first std 0.34 points = 2.0 x its floor, seed-final 0.43 = 2.3 x.
SHORT_RECIPE_FACTOR = 2.2
NO_COMPARISON = "no comparison"
NO_BASELINE_LEARNED = f"{NO_COMPARISON}: the baseline did not learn"


@dataclass(frozen=True)
class Variant:
    """One arm of a study: its key (a run's `variant`), its label in words, its architecture."""

    key: str
    label: str
    arch: Architecture


@dataclass(frozen=True)
class VariantRow:
    """One variant's results: a row of the study table and a point of its scatter."""

    key: str
    label: str
    total_params: int
    delta_params: int  # total params minus the baseline's
    accuracies: dict[int, float]  # seed -> test accuracy, completed runs that learned only
    statuses: dict[int, str]  # seed -> status of its run, whatever it is, or 'did not learn'
    mean: float | None  # over the completed seeds
    spread: float | None  # max - min over the completed seeds; None below 2
    std: float | None  # sample standard deviation over the completed seeds; None below 2
    delta_accuracy: float | None  # mean minus the baseline's mean
    noise: float | None  # |delta_accuracy| below this is within seed noise
    effect: str | None  # 'better', 'worse' or 'noise' than the baseline; None without a comparison
    verdict: str  # in words: 'reference', 'within seed noise', 'worse, 1 seed: tentative', 'did not learn', ...


@dataclass(frozen=True)
class StudySummary:
    """A study's progress and one row per variant, the baseline first."""

    study: Study
    counts: dict[str, int]  # run status -> how many runs have it
    rows: list[VariantRow]
    seed_std: float | None  # the seed-to-seed standard deviation the verdicts used
    seed_std_source: str  # 'observed' (pooled over the study's seeds) or 'typical' (`typical_seed_std`)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def done(self) -> int:
        """Runs that ended, whichever way."""
        return sum(self.counts.get(status, 0) for status in TERMINAL)

    @property
    def status(self) -> str:
        """'queued' (nothing started), 'running' or 'finished'."""
        if self.done == self.total:
            return "finished"
        return "queued" if self.counts.get("queued", 0) == self.total else "running"


# The presets of the notebook's 15K budget: a study sets networks of one size side by side (the smaller
# budgets' presets are on the Frontier page).
STUDY_PRESETS = ("seed-first", "seed-final", "best-under-15k")


def variants(arch: Architecture, include_presets: bool = False) -> list[Variant]:
    """The baseline, each BatchNorm and Dropout toggle in layer order, then (optionally) the notebook budget's
    presets (STUDY_PRESETS).

    A preset whose layers equal an earlier variant's is left out: it would train the same network twice.
    """
    found = [Variant(BASELINE, "Baseline", arch)]
    found += [Variant(edit.key, edit.label, edit.apply(arch)) for edit in single_edits(arch, free=True)
              if edit.key.startswith(TOGGLES)]
    if include_presets:
        for name in STUDY_PRESETS:
            preset = PRESETS[name]
            if all(preset.layers != variant.arch.layers for variant in found):
                found.append(Variant(PRESET + name, f"Preset {name}", preset))
    return found


def check_seeds(seeds: Iterable[int]) -> list[int]:
    """The distinct seeds in order; raises ValueError unless there are 1 to MAX_SEEDS."""
    distinct = list(dict.fromkeys(int(seed) for seed in seeds))
    if not 1 <= len(distinct) <= MAX_SEEDS:
        raise ValueError(f"A study takes 1 to {MAX_SEEDS} seeds, got {len(distinct)}.")
    return distinct


def typical_seed_std(recipe: dict, accuracy: float) -> float:
    """The seed-to-seed standard deviation to expect from `recipe` at `accuracy`, before any is observed.

    The binomial floor for a well-trained recipe (all images, WELL_TRAINED_EPOCHS or more), and
    SHORT_RECIPE_FACTOR times it for a shorter one, such as the app's Quick run.
    """
    short = recipe.get("train_subset") is not None or recipe.get("epochs", WELL_TRAINED_EPOCHS) < WELL_TRAINED_EPOCHS
    return binomial_std(accuracy) * (SHORT_RECIPE_FACTOR if short else 1.0)


def summarize_study(store: RunStore, study_id: int) -> StudySummary:
    """Progress and one row per variant of a study, from its runs as they stand now.

    Only completed runs that learned (`evidence.learned`) count toward accuracies; a run within noise of
    always answering one digit is reported as 'did not learn', like other statuses, per seed. A variant with
    a seed that did not learn gets no verdict (its other seeds' means would compare luck), and while any
    baseline seed did not learn nothing is compared.

    The noise rule. A run's test accuracy varies with its seed (initial weights, batch order, and
    the images a train_subset draws). Call that standard deviation s. A variant's mean over n_v
    seeds minus the baseline's over n_b seeds then varies by s * sqrt(1/n_v + 1/n_b), and a
    difference is "within seed noise" while it is smaller than NOISE_SIGMAS (2) times that, the
    usual ~95% two-sided bar. s is taken as the larger of:
      - the typical spread for the study's recipe (`typical_seed_std`) at the baseline's accuracy p.
        Its base is the binomial floor sqrt(p (1 - p) / 10,000): the seed-to-seed spread of a
        well-trained net on a fixed test set is close to it (Jordan 2023, "On the variance of neural
        network training and testing"), and it scales with the recipe through p (0.10 points at
        99%, 0.17 at 97%). Short recipes spread more, measured here: SHORT_RECIPE_FACTOR times it.
        With one seed this is all there is to go on.
      - once any variant has 2 or more completed seeds, the standard deviation observed in the
        study, pooled over every variant (a toggle changes the network a little, not its noise).
        The typical spread stays a floor: a few seeds often agree by chance.
    One seed per side cannot separate an effect from noise: its verdict rests on a spread measured
    on other runs, so it says "(1 seed: tentative)", meaning "rerun with more seeds", not "proven".
    """
    study = store.get_study(study_id)
    if study is None:
        raise StoreError(f"There is no study {study_id} in the run store.")
    runs = store.study_runs(study_id)
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    by_variant = _latest_per_seed(runs)
    labels = _labels(study)
    base_total = _baseline_total(study, runs)
    base = _accuracies(by_variant.get(BASELINE, {}))
    std, source = _seed_std(by_variant, study.recipe, statistics.mean(base.values()) if base else None)
    base_statuses = [_status(run) for run in by_variant.get(BASELINE, {}).values()]
    base_unlearned = base_statuses.count(DID_NOT_LEARN)
    missing = ("no baseline result yet" if not base_unlearned else NO_BASELINE_LEARNED if not base else
               f"{NO_COMPARISON}: {base_unlearned} of {len(base_statuses)} baseline seeds did not learn")
    rows = [_row(key, labels.get(key, key), seeds, base_total, base, std, missing)
            for key, seeds in by_variant.items()]
    return StudySummary(study, counts, sorted(rows, key=lambda row: row.key != BASELINE), std, source)


def _latest_per_seed(runs: list[Run]) -> dict[str, dict[int, Run]]:
    """variant -> seed -> its newest completed run, else its newest run; variants in queue order."""
    found: dict[str, dict[int, Run]] = {}
    for run in runs:  # oldest first, so a newer run of the same seed replaces an older one
        seeds = found.setdefault(run.variant or BASELINE, {})
        seed = run.recipe.get("seed", 0)
        if seed not in seeds or run.status == "completed" or seeds[seed].status != "completed":
            seeds[seed] = run
    return found


def _accuracies(seeds: dict[int, Run]) -> dict[int, float]:
    """seed -> test accuracy of the completed runs that learned: the only ones that are evidence."""
    return {seed: run.test_accuracy for seed, run in sorted(seeds.items())
            if run.status == "completed" and learned(run.test_accuracy)}


def _finished(seeds: dict[int, Run]) -> list[Run]:
    """The completed runs: those that learned and those that did not."""
    return [run for run in seeds.values() if run.status == "completed" and run.test_accuracy is not None]


def _status(run: Run) -> str:
    return DID_NOT_LEARN if run.status == "completed" and did_not_learn(run.test_accuracy) else run.status


def _labels(study: Study) -> dict[str, str]:
    """Variant key -> label, re-planned from the stored baseline (empty if that spec is damaged)."""
    try:
        return {variant.key: variant.label for variant in variants(study.spec, include_presets=True)}
    except SpecError:
        return {}


def _baseline_total(study: Study, runs: list[Run]) -> int:
    baseline = next((run for run in runs if run.variant == BASELINE), None)
    if baseline is not None:
        return baseline.total_params
    return summarize(study.spec).total


def _seed_std(by_variant: dict[str, dict[int, Run]], recipe: dict,
              baseline_mean: float | None) -> tuple[float | None, str]:
    """The seed-to-seed standard deviation to judge by, and where it came from (see `summarize_study`)."""
    if baseline_mean is None:
        return None, "typical"
    floor = typical_seed_std(recipe, baseline_mean)
    squares, freedom = 0.0, 0
    for seeds in by_variant.values():
        values = list(_accuracies(seeds).values())
        if len(values) >= 2:
            squares += statistics.variance(values) * (len(values) - 1)
            freedom += len(values) - 1
    observed = math.sqrt(squares / freedom) if freedom else 0.0
    return (observed, "observed") if observed > floor else (floor, "typical")


def _row(key: str, label: str, seeds: dict[int, Run], base_total: int, base: dict[int, float],
         std: float | None, missing: str) -> VariantRow:
    accuracies = _accuracies(seeds)
    values = list(accuracies.values())
    mean = statistics.mean(values) if values else None
    total = next(iter(seeds.values())).total_params
    several = len(values) >= 2
    delta = noise = effect = None
    # A seed that did not learn on either side leaves the other seeds' luck: no comparison at all.
    clean = base and not missing.startswith(NO_COMPARISON) and len(values) == len(_finished(seeds))
    if mean is not None and clean and key != BASELINE:
        delta = mean - statistics.mean(base.values())
        noise = NOISE_SIGMAS * std * math.sqrt(1 / len(values) + 1 / len(base))
        effect = "noise" if abs(delta) < noise else "better" if delta > 0 else "worse"
    statuses = {seed: _status(run) for seed, run in sorted(seeds.items())}
    return VariantRow(key, label, total, total - base_total, accuracies, statuses, mean,
                      max(values) - min(values) if several else None, statistics.stdev(values) if several else None,
                      delta, noise, effect, _verdict(key, statuses, len(values), len(base), effect, missing))


def _verdict(key: str, statuses: dict[int, str], completed: int, base_completed: int, effect: str | None,
             missing: str) -> str:
    """The row's verdict in plain words; seeds that did not learn are said, never averaged in."""
    unlearned = sum(status == DID_NOT_LEARN for status in statuses.values())
    if not completed:
        if not all(status in TERMINAL or status == DID_NOT_LEARN for status in statuses.values()):
            return "no result yet"
        if unlearned:
            return f"{DID_NOT_LEARN}: no evidence"
        return f"no result ({', '.join(sorted(set(statuses.values())))})"
    aside = f", {unlearned} of {len(statuses)} seeds did not learn" if unlearned else ""
    if key == BASELINE:
        return "reference" + aside
    if unlearned:
        return f"no evidence: {unlearned} of {len(statuses)} seeds did not learn"
    if effect is None:
        return missing
    tentative = ", 1 seed: tentative" if min(completed, base_completed) == 1 else ""
    return ("within seed noise" if effect == "noise" else effect) + tentative + aside


@dataclass(frozen=True)
class MeasuredEffect:
    """What one toggle did to accuracy in a study of exactly this network, and how strong that study was."""

    delta_accuracy: float
    verdict: str
    study_id: int
    seeds: int  # seeds behind the comparison: the fewer of the variant's and the baseline's that learned
    images_seen: int  # training images per run: images per epoch x epochs

    def stronger_or_equal(self, other: MeasuredEffect) -> bool:
        """As many seeds and as much training as `other`: only then may this number replace `other`'s."""
        return self.seeds >= other.seeds and self.images_seen >= other.images_seen

    @property
    def text(self) -> str:
        """'+0.12 points, within seed noise (study 3: 2 seeds x 60,000 training images)'."""
        return (f"{points(self.delta_accuracy)}, {self.verdict} (study {self.study_id}: "
                f"{plural(self.seeds, 'seed')} x {self.images_seen:,} training images)")


def measured_effects(store: RunStore, arch: Architecture) -> dict[str, MeasuredEffect]:
    """Edit key -> its measured effect on `arch`, from the strongest study of exactly this network.

    Studies are read oldest first; a newer study's number replaces an older one's only when it rests on as
    many seeds and as much training (`MeasuredEffect.stronger_or_equal`): a one-epoch first look never
    overrides a longer study. Runs that did not learn are no evidence, so rows without a verdict give nothing.
    """
    found: dict[str, MeasuredEffect] = {}
    for study in reversed(store.list_studies()):
        try:
            if study.spec != arch:
                continue
            recipe = study.recipe
        except SpecError:
            continue
        summary = summarize_study(store, study.id)
        base = next((row for row in summary.rows if row.key == BASELINE), None)
        if base is None:
            continue
        images = (recipe.get("train_subset") or 60_000) * recipe.get("epochs", 1)
        for row in summary.rows:
            if row.delta_accuracy is None:
                continue
            effect = MeasuredEffect(row.delta_accuracy, row.verdict, study.id,
                                    min(len(row.accuracies), len(base.accuracies)), images)
            if row.key not in found or effect.stronger_or_equal(found[row.key]):
                found[row.key] = effect
    return found
