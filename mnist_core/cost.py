"""What a run will cost before it is queued, and the caps that keep one run from taking a shared server.

Work: the spec's multiply-adds per image (`budget.summarize`) x 2 FLOPs, x 3 for a training step (forward,
then gradients for inputs and weights), over every training image of every epoch, plus one forward pass
over the 10,000 test digits per epoch. Time: that work at this server's training rate, learnt from the
store's completed runs and kept within half to twice the rate measured here (so a few odd runs cannot move
every classmate's estimate far), plus what does not grow with the network: a cost per training step (many
tiny batches are slow however small the network) and a run's seconds around its batches (`bench.step_cost`,
`bench.overhead`).
Memory: every layer's output for a whole batch, kept for the backward pass and matched by its gradient,
plus the weights with their gradients and Adam's two moments, all float32; or the test pass's (and the
BatchNorm re-estimate's) larger batches, forward only, where those need more. The TensorFlow process
itself (~1 GB) is not counted.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from . import config
from .budget import summarize
from .history import Run
from .recipe import Recipe
from .spec import Architecture
from .words import plural

TEST_IMAGES = 10_000
RECALIBRATION_BATCH = 2_000  # the BatchNorm re-estimate's forward-only batch (`train.recalibrate_batchnorm`)
# A training step's cost however small the network (`bench.step_cost`, this 2-core machine: 2.7-2.9 ms a step
# at batch 8 and at batch 32 alike, for a net whose arithmetic is negligible, its test pass included).
STEP_SECONDS = 0.0028
# Measured here with the fused BatchNorm step (`bench.throughput`, `bench.quick_run`): seed-final's arithmetic
# runs at ~65-80 GFLOP/s, best-under-15k's (six BatchNorms and Dropouts to its 1.9 M multiply-adds) at ~25;
# their geometric mean, ~40, is used until this server has runs of its own to learn from.
DEFAULT_FLOPS_PER_SECOND = 40e9
RATE_RANGE = (0.5, 2.0)  # a learnt rate stays within these multiples of the default
RUN_OVERHEAD_SECONDS = 4.0  # claim to first batch and last batch to recorded (bench.overhead: ~2 s + ~1.6 s)
LEARN_FROM_RUNS = 10  # the newest completed runs that set this server's rate
MIN_LEARNING_SECONDS = 20.0  # shorter runs are mostly overhead: they say little about the rate
BYTES = 4  # float32


class LimitError(ValueError):
    """A run over one of the server's caps; the message names the cap and the run's estimate."""


@dataclass(frozen=True)
class RunCost:
    """A run's estimated work, time and peak training memory."""

    flops: float
    seconds: float
    memory_bytes: float

    @property
    def time_text(self) -> str:
        """'about 40 s', 'about 9 min', 'about 3.5 h', for 'about 40 s here'."""
        return estimate_words(self.seconds)

    @property
    def memory_text(self) -> str:
        """'180 MB', '4.1 GB'."""
        return f"{self.memory_bytes / 2**30:.1f} GB" if self.memory_bytes >= 2**30 else \
            f"{math.ceil(self.memory_bytes / 2**20)} MB"


def estimate_words(seconds: float) -> str:
    """An estimated time in words: 'about 40 s', 'about 9 min', 'about 3.5 h', 'about 54 days'."""
    if seconds < 90:
        return f"about {max(5, round(seconds / 5) * 5)} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    hours = seconds / 3600
    return f"about {hours:.1f} h" if hours < 48 else f"about {plural(round(hours / 24), 'day')}"


def training_flops(arch: Architecture, recipe: Recipe) -> float:
    """The FLOPs a run of `arch` with `recipe` computes: training steps and each epoch's test pass."""
    macs = summarize(arch).macs
    return recipe.epochs * (6 * macs * recipe.images + 2 * macs * TEST_IMAGES)


def training_steps(recipe: Recipe) -> int:
    """The optimizer steps of a whole run."""
    return recipe.epochs * math.ceil(recipe.images / recipe.batch_size)


def fixed_seconds(recipe: Recipe) -> float:
    """A run's seconds that do not grow with the network: around its batches, and per step."""
    return RUN_OVERHEAD_SECONDS + STEP_SECONDS * training_steps(recipe)


def peak_memory(arch: Architecture, recipe: Recipe) -> float:
    """Bytes of training memory at the peak of a run (see the module's notes)."""
    summary = summarize(arch)
    kept_per_image = sum(math.prod(layer.output_shape) * _outputs_kept(layer_spec)
                         for layer, layer_spec in zip(summary.layers, arch.layers))
    largest_output = max(math.prod(layer.output_shape) for layer in summary.layers)
    training = 2 * kept_per_image * min(recipe.batch_size, recipe.images)
    forward_batch = max(recipe.val_batch_size, RECALIBRATION_BATCH if recipe.recalibrate_bn else 0)
    forward_only = 2 * largest_output * forward_batch  # the test pass holds one layer's input and output at a time
    return BYTES * (max(training, forward_only) + 4 * summary.total)


def _outputs_kept(layer) -> int:
    """How many tensors of its output shape a spec layer keeps for the backward pass."""
    if not getattr(layer, "is_conv", False):
        return 1
    return 1 + layer.relu + layer.batchnorm + 2 * layer.dropout  # dropout keeps its mask too


def server_rate(runs: list[Run]) -> float:
    """FLOP/s of training on this server: the median over its newest completed runs, else the default."""
    rates = []
    for run in runs:
        if run.status != "completed" or not run.duration or run.duration < MIN_LEARNING_SECONDS:
            continue
        try:
            recipe = Recipe.from_dict(run.recipe)
            flops = training_flops(run.spec, recipe)
        except (ValueError, TypeError, AttributeError, KeyError):  # a spec or recipe this version cannot read
            continue
        rates.append(flops / max(run.duration - fixed_seconds(recipe), 1.0))
        if len(rates) == LEARN_FROM_RUNS:
            break
    if not rates:
        return DEFAULT_FLOPS_PER_SECOND
    low, high = (DEFAULT_FLOPS_PER_SECOND * bound for bound in RATE_RANGE)
    return min(max(statistics.median(rates), low), high)


def estimate(arch: Architecture, recipe: Recipe, flops_per_second: float = DEFAULT_FLOPS_PER_SECOND) -> RunCost:
    """The run's cost on a server that trains at `flops_per_second`."""
    flops = training_flops(arch, recipe)
    return RunCost(flops, fixed_seconds(recipe) + flops / flops_per_second, peak_memory(arch, recipe))


def check_cost(cost: RunCost) -> None:
    """Raise LimitError, one sentence naming the cap, when `cost` is over a cap of this server."""
    minutes, gigabytes = config.run_caps()
    if cost.seconds > minutes * 60:
        raise LimitError(f"this run would take {cost.time_text} here, over this server's limit of "
                         f"{minutes:g} minutes a run ({config.MAX_RUN_MINUTES_ENV}): train fewer epochs or images, or a "
                         f"smaller network.")
    if cost.memory_bytes > gigabytes * 2**30:
        raise LimitError(f"this run would need {cost.memory_text} of training memory, over this server's limit "
                         f"of {gigabytes:g} GB a run ({config.MAX_RUN_MEMORY_ENV}): use a smaller batch or fewer filters.")

