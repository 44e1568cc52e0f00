"""A class on one server: who is asking, what they may do, whose turn it is, and the teacher's switches.

With no class configured (no teacher passcode set, `config.teacher_passcode`), everyone who connects is the
lab's one user and may do everything, as on a laptop. In a class, each browser is a student, known by a
random token its cookie keeps (`students.py` holds their names); the teacher is whoever typed the passcode.
The rules live here and the Lab applies them, so a page that forgot to hide a button still cannot act on
another student's run.

    <home>/class.json   the teacher's switches: queue paused, runs per student (written whole)
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from pathlib import Path

from .files import write_atomically
from .history import Run

SETTINGS_FILE = "class.json"
RUNS_PER_STUDENT = 2  # queued or training at once; a study counts as one
MAX_RUNS_PER_STUDENT = 20
STUDY_RUNS_CAP = 24  # runs one student's study may queue; the teacher's studies are not capped


class NotAllowed(ValueError):
    """A visitor asked for something only the owner or the teacher may do; the message says so."""


class ShareExceeded(ValueError):
    """A student already has their share of the queue; the message says how to go on."""


class Duplicate(ValueError):
    """The same visitor's identical run is already queued or training: `run_id` is that run."""

    def __init__(self, run: Run):
        doing = "training" if run.status == "running" else "queued"
        super().__init__(f"This network with this recipe is already {doing} as run {run.id}; it was not queued twice.")
        self.run_id = run.id


@dataclass(frozen=True)
class Visitor:
    """Who is asking: a student's token (None for the lab's one user, or the CLI) and whether they teach."""

    owner: str | None = None
    teacher: bool = False
    in_class: bool = False  # a class is configured: owners and caps matter

    def may_manage(self, owner: str | None) -> bool:
        """Whether this visitor may stop or delete what `owner` made."""
        return not self.in_class or self.teacher or (self.owner is not None and owner == self.owner)

    def check_may_manage(self, owner: str | None, what: str) -> None:
        """Raise NotAllowed, naming `what` ('run 7'), unless this visitor may stop or delete it."""
        if not self.may_manage(owner):
            raise NotAllowed(f"{what[0].upper()}{what[1:]} belongs to another student: only they or the teacher "
                             f"can stop or delete it.")

    @property
    def capped(self) -> bool:
        """Whether the class's per-student caps apply (a student; never the teacher or a lab of one)."""
        return self.in_class and not self.teacher


LAB_USER = Visitor()  # the embedded default and the CLI: no class, every action allowed


def is_passcode(typed: str, passcode: str | None) -> bool:
    """Whether `typed` is the teacher passcode (compared in constant time); never true without one set."""
    return bool(passcode) and hmac.compare_digest(typed.strip().encode(), passcode.encode())


def teacher_mark(passcode: str, owner: str) -> str:
    """What a teacher's browser keeps in a cookie so a reload stays teacher: only this passcode makes it."""
    return hmac.new(passcode.encode(), owner.encode(), "sha256").hexdigest()


@dataclass(frozen=True)
class ClassSettings:
    """The teacher's switches, shared by every process on the run store."""

    paused: bool = False  # no queued run starts; those training go on
    runs_per_student: int = RUNS_PER_STUDENT


def read_settings(home: Path) -> ClassSettings:
    """The switches in `home`; the defaults when there is no file or it is damaged (never a failed page)."""
    try:
        data = json.loads((Path(home) / SETTINGS_FILE).read_text())
        runs = int(data.get("runs_per_student", RUNS_PER_STUDENT))
        return ClassSettings(bool(data.get("paused", False)), min(max(runs, 1), MAX_RUNS_PER_STUDENT))
    except (OSError, ValueError, TypeError, AttributeError):
        return ClassSettings()


def write_settings(home: Path, settings: ClassSettings) -> None:
    """Save the switches whole; raises ValueError for a runs-per-student cap outside 1 to 20."""
    if not 1 <= settings.runs_per_student <= MAX_RUNS_PER_STUDENT:
        raise ValueError(f"Runs per student must be 1 to {MAX_RUNS_PER_STUDENT}, not {settings.runs_per_student}.")
    write_atomically(Path(home) / SETTINGS_FILE, json.dumps(
        {"paused": settings.paused, "runs_per_student": settings.runs_per_student}))


def queue_order(active: list[Run]) -> list[Run]:
    """The queued runs of `active` (queued and running runs) in the order workers take them.

    Round-robin between owners: each run's turn is how many of its owner's active runs of its kind came
    before it (running ones count), so a student's second run waits behind every other student's first.
    Single runs go before study runs (a student is not kept waiting behind 17 variants); ties go oldest first.
    With one owner (a lab of one) this is plain oldest first, singles before studies.
    """
    turns: dict[tuple[str | None, bool], int] = {}
    keyed = []
    for run in sorted(active, key=lambda run: run.id):
        kind = (run.owner, run.study_id is not None)
        turn = turns.get(kind, 0)
        turns[kind] = turn + 1
        if run.status == "queued":
            keyed.append(((run.study_id is not None, turn, run.id), run))
    return [run for _, run in sorted(keyed, key=lambda pair: pair[0])]


def by_study(runs: list[Run]) -> list[tuple[Run, int]]:
    """`runs` with each study's runs folded into its first one: (run, how many runs it stands for), so a board
    shows a 17-run study as one line."""
    counts: dict[int, int] = {}
    for run in runs:
        if run.study_id is not None:
            counts[run.study_id] = counts.get(run.study_id, 0) + 1
    folded, seen = [], set()
    for run in runs:
        if run.study_id is None:
            folded.append((run, 1))
        elif run.study_id not in seen:
            seen.add(run.study_id)
            folded.append((run, counts[run.study_id]))
    return folded


def check_share(visitor: Visitor, own_active: list[Run], cap: int) -> None:
    """Raise ShareExceeded when a student already has `cap` runs or studies queued or training."""
    if not visitor.capped:
        return
    singles = sum(run.study_id is None for run in own_active)
    studies = len({run.study_id for run in own_active if run.study_id is not None})
    if singles + studies >= cap:
        raise ShareExceeded(f"You already have {singles + studies} runs or studies queued or training, the most one "
                            f"student may have at once ({cap}): wait for one to finish, or stop one.")


def check_not_duplicate(own_active: list[Run], name: str, spec_json: str, recipe_json: str) -> None:
    """Raise Duplicate when one of the visitor's queued or training single runs is this run (same name, spec
    and recipe): a double click, ten fast clicks or two tabs pressing Start at once make one run."""
    for run in own_active:
        if run.study_id is None and (run.name, run.spec_json, run.recipe_json) == (name, spec_json, recipe_json):
            raise Duplicate(run)
