"""The run store: an SQLite index of runs and their progress events, plus one folder per run.

Layout under the lab home:
    runs.sqlite          the index (WAL, so the UI reads while a worker writes)
    runs/<id>/run.json   the run's manifest: spec, recipe, status, results and history
    runs/<id>/model.keras
    samples/<id>.png     the user's labelled digits (see samples.py), indexed in the same database
    studies/<id>.json    an ablation study's manifest: name, baseline spec, recipe, seeds (see study.py)
The manifests are the durable copy: if the index is corrupted it is moved aside and rebuilt
from them, so a broken database file never loses a run or a study (a run's manifest names its
study and variant). Run and study ids are never reused, not even after a delete, so files a failed
delete left behind can never attach to a new run.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from .samples import SAMPLES_TABLE, restore_samples
from .spec import Architecture, SpecError
from .words import plural

DB_NAME = "runs.sqlite"
MIN_FREE_BYTES = 50 * 1024 * 1024  # a run needs a few MB; refuse to start below this
NOTICE_SECONDS = 600  # how long pages say that the history was rebuilt or made again
TERMINAL = ("completed", "stopped", "failed", "interrupted")
STATUSES = ("queued", "running", *TERMINAL)
EVENT_FIELDS = ("kind", "epoch", "batch", "step", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
                "elapsed", "eta")
RUN_FIELDS = ("id", "name", "status", "created_at", "started_at", "finished_at", "spec_json", "recipe_json",
              "total_params", "trainable_params", "test_accuracy", "test_loss", "duration", "error",
              "versions_json", "stop_requested", "worker_pid", "submitter_pid", "study_id", "variant")
STUDY_FIELDS = ("id", "name", "created_at", "spec_json", "recipe_json", "seeds_json")
# Columns added after release, with their types: older databases get them by ALTER TABLE.
ADDED_RUN_COLUMNS = (("study_id", "INTEGER"), ("variant", "TEXT"))

RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    spec_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    total_params INTEGER NOT NULL,
    trainable_params INTEGER NOT NULL,
    test_accuracy REAL,
    test_loss REAL,
    duration REAL,
    error TEXT,
    versions_json TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    submitter_pid INTEGER,
    study_id INTEGER,
    variant TEXT
)"""
EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    epoch REAL, batch INTEGER, step INTEGER, lr REAL, loss REAL, accuracy REAL,
    val_loss REAL, val_accuracy REAL, elapsed REAL, eta REAL,
    PRIMARY KEY (run_id, seq)
)"""
STUDIES_TABLE = """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    spec_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    seeds_json TEXT NOT NULL
)"""


def keeps_model(status: str, epochs_done: int) -> bool:
    """The one rule for a run's model: kept when the run completed, or was stopped after at least one whole
    epoch (stopped earlier, it was never tested, so nobody should draw with it)."""
    return status == "completed" or (status == "stopped" and epochs_done > 0)


class StoreError(RuntimeError):
    """The run store cannot do what was asked; the message says why and what to do."""


class _SpecAndRecipe:
    """What a run and a study share: a stored spec and recipe, read back on demand."""

    spec_json: str
    recipe_json: str

    @property
    def spec(self) -> Architecture:
        """The validated architecture; raises SpecError if the stored spec is damaged."""
        return Architecture.from_json(self.spec_json)

    @property
    def recipe(self) -> dict[str, Any]:
        return json.loads(self.recipe_json)


@dataclass(frozen=True)
class Run(_SpecAndRecipe):
    """One row of the run history."""

    id: int
    name: str
    status: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    spec_json: str
    recipe_json: str
    total_params: int
    trainable_params: int
    test_accuracy: float | None
    test_loss: float | None
    duration: float | None
    error: str | None
    versions_json: str | None
    stop_requested: int
    worker_pid: int | None
    submitter_pid: int | None = None  # the process that queued it: its worker must not abandon it
    study_id: int | None = None  # the ablation study it belongs to, if any
    variant: str | None = None  # its place in that study: 'baseline', an edit key like 'bn-off:conv2', 'preset:...'

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def has_model(self) -> bool:
        """Whether the run ended with a model to draw with, download and analyse (`keeps_model`); its file may
        still be missing or damaged, which the page that reads it says."""
        return keeps_model(self.status, 1 if self.test_accuracy is not None else 0)


@dataclass(frozen=True)
class Study(_SpecAndRecipe):
    """One ablation study: a baseline spec, a recipe and the seeds its runs were queued with."""

    id: int
    name: str
    created_at: float
    spec_json: str
    recipe_json: str  # the shared recipe; each run's own recipe has one of `seeds` as its seed
    seeds_json: str

    @property
    def seeds(self) -> list[int]:
        return json.loads(self.seeds_json)


@dataclass
class Event:
    """One progress report: within an epoch (kind 'batch') or at its end (kind 'epoch')."""

    kind: str
    epoch: float  # fractional: 2.5 is halfway through the third epoch
    batch: int
    step: int
    lr: float
    loss: float
    accuracy: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    elapsed: float = 0.0
    eta: float | None = None


class RunStore:
    """SQLite run history at `home`; every method opens its own short connection (thread-safe)."""

    def __init__(self, home: str | Path):
        self.home = Path(home)
        self.db_path = self.home / DB_NAME
        self.runs_dir = self.home / "runs"
        self.studies_dir = self.home / "studies"
        self.notice: str | None = None  # set when the index had to be rebuilt or made again
        self.notice_at = 0.0  # when: pages say it only for a while (NOTICE_SECONDS)
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"Cannot create the run store at {self.home}: {err.strerror or err}. "
                             f"Set MNIST_LAB_HOME to a writable folder.") from None
        self._open_or_recover()

    @property
    def recent_notice(self) -> str | None:
        """`notice` while it is news: a visitor arriving an hour after a rebuild is not told their runs are gone."""
        return self.notice if time.time() - self.notice_at < NOTICE_SECONDS else None

    # -- connection handling -------------------------------------------------------------

    @contextmanager
    def connect(self, wait: float = 5.0) -> Iterator[sqlite3.Connection]:
        """A short connection (samples.py uses it too); `wait` seconds for another writer's lock before the
        store counts as busy. SQLite's errors come out as StoreError with a sentence for the user, which names
        no server path: students on a class server read it."""
        self.remake_if_deleted()
        try:
            conn = sqlite3.connect(self.db_path, timeout=wait, isolation_level=None)
        except sqlite3.Error as err:
            raise StoreError(f"Cannot open the run history: {err}.") from None
        try:
            conn.row_factory = sqlite3.Row
            yield conn
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                raise StoreError("The run history is locked by another program; try again in a moment.") from None
            if "disk is full" in str(err) or shutil.disk_usage(self.home).free < 2**20:  # SQLite may say "I/O error"
                raise StoreError("The disk holding the run history is full; free some space.") from None
            raise StoreError(f"The run history cannot be used: {err}.") from None
        except sqlite3.DatabaseError as err:
            raise StoreError(f"The run history is damaged ({err}); restart the app to rebuild it from the run "
                             f"folders.") from None
        finally:
            conn.close()

    def _open_or_recover(self) -> None:
        try:
            with closing(sqlite3.connect(self.db_path, timeout=5, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
                _create_tables(conn)
                if _needs_migration(conn):
                    _migrate(conn)
            return
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                return  # a writer holds it; reads will work once it is done
            if not os.access(self.home, os.W_OK) or "readonly" in str(err) or "unable to open" in str(err):
                raise StoreError(f"The run store at {self.home} is not writable ({err}). "
                                 f"Set MNIST_LAB_HOME to a writable folder.") from None
            damage = err
        except sqlite3.DatabaseError as err:
            damage = err
        self._rebuild(damage)

    def remake_if_deleted(self) -> None:
        """If the index file is gone (its folder deleted while the app ran), make it again from whatever files
        are left and say so in `notice`, so every process goes on without a restart. One stat when it is there."""
        if self.db_path.exists():
            return
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            restored = self._restore_files()
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"The run history {self.db_path} was deleted and cannot be made again: {err}.") from None
        self.notice_at = time.time()
        self.notice = ("The run history was deleted while the app ran; it was made again"
                       + (f" from {restored}." if restored else ", empty: earlier runs are gone."))

    def _rebuild(self, damage: Exception) -> None:
        """Move a damaged index aside (never delete it) and rebuild it from the run, study and sample files."""
        aside = self.db_path.with_name(f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.db_path}{suffix}")
            if part.exists():
                part.replace(Path(f"{aside}{suffix}"))
        restored = self._restore_files()
        self.notice_at = time.time()
        self.notice = (f"The run history was damaged ({damage}); it was moved to {aside.name} and "
                       f"rebuilt from {restored or 'no files'}.")

    def _restore_files(self) -> str:
        """Make a fresh index and fill it from the run, study and sample files; says what it restored
        ('' when there was nothing)."""
        with closing(sqlite3.connect(self.db_path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            _create_tables(conn)
            samples = restore_samples(conn, self.home)
            studies = _restore_studies(conn, self.studies_dir)
        restored = 0
        for manifest in sorted(self.runs_dir.glob("*/run.json")):
            try:
                self._import_manifest(json.loads(manifest.read_text()))
                restored += 1
            except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
                continue  # a damaged manifest costs only its own run
        if not (restored or samples or studies):
            return ""
        return (f"{plural(restored, 'run folder')} and {plural(samples, 'sample file')}"
                + (f", with {plural(studies, 'study file')}" if studies else ""))

    def _import_manifest(self, data: dict[str, Any]) -> None:
        run = {key: data.get(key) for key in RUN_FIELDS}
        if run["status"] in ("queued", "running"):
            run["status"], run["error"] = "interrupted", "The app stopped before this run finished."
        run["stop_requested"] = run["stop_requested"] or 0
        with closing(sqlite3.connect(self.db_path, isolation_level=None)) as conn:
            conn.execute(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES "
                         f"({', '.join('?' for _ in RUN_FIELDS)})", [run[key] for key in RUN_FIELDS])
            conn.executemany(
                f"INSERT INTO events (run_id, seq, {', '.join(EVENT_FIELDS)}) VALUES "
                f"(?, ?, {', '.join('?' for _ in EVENT_FIELDS)})",
                [(run["id"], seq, *[event.get(key) for key in EVENT_FIELDS])
                 for seq, event in enumerate(data.get("events", []))])

    # -- writes ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise StoreError unless a run can be stored now (folder writable, disk not full)."""
        probe = self.runs_dir / f".probe-{os.getpid()}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise StoreError(f"The run store {self.runs_dir} is not writable ({err.strerror or err}); "
                             f"nothing was started. Set MNIST_LAB_HOME to a writable folder.") from None
        free = shutil.disk_usage(self.runs_dir).free
        if free < MIN_FREE_BYTES:
            raise StoreError(f"Only {free / 2**20:.0f} MB free for the run store at {self.runs_dir}; "
                             f"free some disk space before training.")

    def create_run(self, name: str, spec: Architecture, recipe: dict[str, Any], total_params: int,
                   trainable_params: int, submitter_pid: int | None = None, study_id: int | None = None,
                   variant: str | None = None) -> int:
        """Queue a new run and return its id: higher than any id used before or found under runs/.

        The name is kept as one line of printable characters (a CLI `--name` may hold newlines or controls).
        """
        name = " ".join("".join(char if char.isprintable() else " " for char in name).split())[:80] or spec.name
        self.check_writable()
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            run_id = max(_used_id(conn, "runs"), _highest_file(self.runs_dir)) + 1
            conn.execute(
                "INSERT INTO runs (id, name, status, created_at, spec_json, recipe_json, total_params, "
                "trainable_params, submitter_pid, study_id, variant) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, time.time(), json.dumps(spec.to_dict()), json.dumps(recipe), total_params,
                 trainable_params, submitter_pid, study_id, variant))
            conn.execute("COMMIT")
        self.write_manifest(run_id)
        return run_id

    def create_study(self, name: str, spec: Architecture, recipe: dict[str, Any], seeds: list[int]) -> int:
        """Record a new study (its runs are created after) and write studies/<id>.json; returns its id."""
        self.check_writable()
        self.studies_dir.mkdir(exist_ok=True)
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            study_id = max(_used_id(conn, "studies"), _highest_file(self.studies_dir)) + 1
            values = (study_id, name, time.time(), json.dumps(spec.to_dict()), json.dumps(recipe), json.dumps(seeds))
            conn.execute(f"INSERT INTO studies ({', '.join(STUDY_FIELDS)}) VALUES "
                         f"({', '.join('?' for _ in STUDY_FIELDS)})", values)
            conn.execute("COMMIT")
        # Written once: a study never changes after creation (its progress lives in its runs).
        write_atomically(self.studies_dir, f"{study_id}.json", json.dumps(dict(zip(STUDY_FIELDS, values))))
        return study_id

    def claim_next(self, worker_pid: int) -> Run | None:
        """Atomically move the oldest queued run to 'running' for this worker."""
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            # A single run goes before a queued study's runs: a student is not kept waiting behind 17 variants.
            row = conn.execute("SELECT id FROM runs WHERE status = 'queued' "
                               "ORDER BY study_id IS NOT NULL, id LIMIT 1").fetchone()
            if row is None:
                conn.execute("COMMIT")
                return None
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, worker_pid = ? WHERE id = ?",
                         (time.time(), worker_pid, row["id"]))
            conn.execute("COMMIT")
        return self.get(row["id"])

    def add_event(self, run_id: int, seq: int, event: Event) -> None:
        """Append one progress event."""
        values = asdict(event)
        with self.connect() as conn:
            conn.execute(f"INSERT OR REPLACE INTO events (run_id, seq, {', '.join(EVENT_FIELDS)}) "
                         f"VALUES (?, ?, {', '.join('?' for _ in EVENT_FIELDS)})",
                         (run_id, seq, *[values[key] for key in EVENT_FIELDS]))

    def add_events(self, run_id: int, first_seq: int, events: list[Event], worker_pid: int,
                   wait: float = 0.2) -> None:
        """Append a trainer's progress events in one transaction, numbered from `first_seq`.

        Written only while the run is running under `worker_pid`: a run deleted meanwhile (or a new run
        that took its id in a store made again) gets none. A lock held elsewhere for more than `wait`
        seconds raises StoreError at once, so the trainer keeps the events and goes on training.
        """
        rows = [(run_id, seq, *[asdict(event)[key] for key in EVENT_FIELDS], run_id, worker_pid)
                for seq, event in enumerate(events, first_seq)]
        with self.connect(wait) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT OR REPLACE INTO events (run_id, seq, {', '.join(EVENT_FIELDS)}) "
                             f"SELECT ?, ?, {', '.join('?' for _ in EVENT_FIELDS)} WHERE EXISTS (SELECT 1 FROM "
                             f"runs WHERE id = ? AND status = 'running' AND worker_pid = ?)", rows)
            conn.execute("COMMIT")

    def finish(self, run_id: int, status: str, *, test_accuracy: float | None = None,
               test_loss: float | None = None, error: str | None = None,
               versions: dict[str, str] | None = None, worker_pid: int | None = None) -> None:
        """Record a terminal status and results, then write the run's manifest.

        With `worker_pid`, only a run that worker claimed is changed (see `add_events`).
        """
        assert status in TERMINAL, status
        now = time.time()
        with self.connect() as conn:
            conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, duration = ? - COALESCE(started_at, ?), "
                "test_accuracy = ?, test_loss = ?, error = ?, versions_json = COALESCE(?, versions_json) "
                "WHERE id = ? AND (? IS NULL OR worker_pid = ?)",
                (status, now, now, now, test_accuracy, test_loss, error,
                 json.dumps(versions) if versions else None, run_id, worker_pid, worker_pid))
        self.write_manifest(run_id)

    def request_stop(self, run_id: int) -> None:
        """Ask the worker to stop this run; a run still queued is stopped at once."""
        with self.connect() as conn:
            conn.execute("UPDATE runs SET stop_requested = 1 WHERE id = ?", (run_id,))
            cancelled = conn.execute(
                "UPDATE runs SET status = 'stopped', finished_at = ?, duration = 0, "
                "error = 'Stopped before it started.' WHERE id = ? AND status = 'queued'",
                (time.time(), run_id)).rowcount
        if cancelled:
            self.write_manifest(run_id)

    def request_stop_study(self, study_id: int) -> list[int]:
        """Ask every queued or running run of a study to stop, in one transaction; returns their ids.

        Queued runs are stopped at once, so a worker finishing one run of the study cannot claim the next.
        """
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            ids = [row["id"] for row in conn.execute(
                "SELECT id FROM runs WHERE study_id = ? AND status IN ('queued', 'running')", (study_id,))]
            conn.execute("UPDATE runs SET stop_requested = 1 WHERE study_id = ? AND status = 'running'", (study_id,))
            conn.execute("UPDATE runs SET status = 'stopped', stop_requested = 1, finished_at = ?, duration = 0, "
                         "error = 'Stopped before it started.' WHERE study_id = ? AND status = 'queued'",
                         (time.time(), study_id))
            conn.execute("COMMIT")
        for run_id in ids:
            self.write_manifest(run_id)
        return ids

    def stop_requested(self, run_id: int) -> bool:
        with self.connect() as conn:
            row = conn.execute("SELECT stop_requested FROM runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row["stop_requested"])

    def mark_interrupted(self, run_ids: list[int], reason: str) -> None:
        """Mark runs whose worker died as 'interrupted', keeping their history."""
        self._end(run_ids, "running", "interrupted", reason)

    def fail_queued(self, run_ids: list[int], reason: str) -> list[int]:
        """Mark runs that no worker can train as 'failed'; returns those still queued until now."""
        return self._end(run_ids, "queued", "failed", reason)

    def _end(self, run_ids: list[int], before: str, status: str, reason: str) -> list[int]:
        """Move each run still in status `before` to `status` with `reason`; returns the ids moved."""
        moved = []
        for run_id in run_ids:
            with self.connect() as conn:
                changed = conn.execute(
                    "UPDATE runs SET status = ?, error = ?, finished_at = ?, "
                    "duration = ? - COALESCE(started_at, created_at) WHERE id = ? AND status = ?",
                    (status, reason, time.time(), time.time(), run_id, before)).rowcount
            if changed:
                self.write_manifest(run_id)
                moved.append(run_id)
        return moved

    def delete(self, run_id: int) -> None:
        """Remove a run from the index and its folder from disk."""
        with self.connect() as conn:
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        shutil.rmtree(self.run_dir(run_id), ignore_errors=True)

    def write_manifest(self, run_id: int) -> None:
        """Write runs/<id>/run.json atomically: the copy the index is rebuilt from."""
        run = self.get(run_id)
        if run is None:
            return
        data = {key: getattr(run, key) for key in RUN_FIELDS}
        data["events"] = [{key: getattr(e, key) for key in EVENT_FIELDS} for e in self.events(run_id)]
        folder = self.run_dir(run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder, "run.json", json.dumps(data))
        except OSError as err:  # a full disk: the caller retries, as for a locked database
            raise StoreError(f"Cannot write run {run_id}'s manifest in {folder}: {err.strerror or err}.") from None

    # -- reads -----------------------------------------------------------------------------

    def get(self, run_id: int) -> Run | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return Run(**dict(row)) if row else None

    def list(self, statuses: tuple[str, ...] = STATUSES) -> list[Run]:
        """Runs, newest first."""
        marks = ", ".join("?" for _ in statuses)
        with self.connect() as conn:
            rows = conn.execute(f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY id DESC",
                                statuses).fetchall()
        return [Run(**dict(row)) for row in rows]

    def study_runs(self, study_id: int) -> list[Run]:
        """The runs of one study, in queue order (oldest first)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM runs WHERE study_id = ? ORDER BY id", (study_id,)).fetchall()
        return [Run(**dict(row)) for row in rows]

    def get_study(self, study_id: int) -> Study | None:
        with self.connect() as conn:
            row = conn.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
        return Study(**dict(row)) if row else None

    def list_studies(self) -> list[Study]:
        """Studies, newest first."""
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM studies ORDER BY id DESC").fetchall()
        return [Study(**dict(row)) for row in rows]

    def events(self, run_id: int, after_seq: int = -1) -> list[Event]:
        with self.connect() as conn:
            rows = conn.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM events WHERE run_id = ? AND seq > ? "
                                f"ORDER BY seq", (run_id, after_seq)).fetchall()
        return [Event(**dict(row)) for row in rows]

    def progress_counts(self) -> dict[int, tuple[int, int]]:
        """run id -> (events, epoch events) for every run that has any, in one query (not one per run)."""
        with self.connect() as conn:
            rows = conn.execute("SELECT run_id, COUNT(*), SUM(kind = 'epoch') FROM events GROUP BY run_id").fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / str(run_id)

    def model_path(self, run_id: int) -> Path:
        return self.run_dir(run_id) / "model.keras"


def _create_tables(conn: sqlite3.Connection) -> None:
    conn.execute(RUNS_TABLE)
    conn.execute(EVENTS_TABLE)
    conn.execute(SAMPLES_TABLE)
    conn.execute(STUDIES_TABLE)


def _needs_rebuild(conn: sqlite3.Connection) -> bool:
    """The runs table predates AUTOINCREMENT (ids reused after a delete) or the submitter column."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()[0]
    return "AUTOINCREMENT" not in sql or "submitter_pid" not in sql


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Columns added since the runs table was made (study membership), with their types."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
    return [(name, kind) for name, kind in ADDED_RUN_COLUMNS if name not in have]


def _needs_migration(conn: sqlite3.Connection) -> bool:
    return _needs_rebuild(conn) or bool(_missing_columns(conn))


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older runs table to the current schema, keeping every row and id.

    A table without AUTOINCREMENT is copied into a new one; columns added later are ALTERed in.
    """
    conn.execute("BEGIN IMMEDIATE")  # outside the try: a lock held elsewhere means "migrate next time"
    try:
        if _needs_rebuild(conn):  # another process may have migrated while this one waited
            old = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
            kept = ", ".join(field for field in RUN_FIELDS if field in old)
            conn.execute("ALTER TABLE runs RENAME TO runs_old")
            conn.execute(RUNS_TABLE)
            conn.execute(f"INSERT INTO runs ({kept}) SELECT {kept} FROM runs_old")
            conn.execute("DROP TABLE runs_old")
        for name, kind in _missing_columns(conn):
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


def _used_id(conn: sqlite3.Connection, table: str) -> int:
    """The largest id AUTOINCREMENT ever gave in `table`, deleted rows included (0 if none)."""
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()[0]


def _highest_file(folder: Path) -> int:
    """The largest number naming an entry in `folder` ('7' or '7.json'; 0 if none)."""
    if not folder.is_dir():
        return 0
    stems = (entry.name.removesuffix(".json") for entry in os.scandir(folder))
    return max((int(stem) for stem in stems if stem.isdigit()), default=0)


def write_atomically(folder: Path, name: str, text: str) -> None:
    """Replace folder/name with `text` at once: a reader never sees half a file."""
    # A temp file of its own: two processes writing the same manifest never collide.
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f"{name}.", suffix=".tmp", delete=False) as tmp:
        tmp.write(text)
    try:
        os.replace(tmp.name, folder / name)
    except OSError:
        os.unlink(tmp.name)
        raise


def _restore_studies(conn: sqlite3.Connection, folder: Path) -> int:
    """Index every readable studies/<id>.json again (after a rebuild); returns how many."""
    restored = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            restored += conn.execute(f"INSERT OR IGNORE INTO studies ({', '.join(STUDY_FIELDS)}) VALUES "
                                     f"({', '.join('?' for _ in STUDY_FIELDS)})",
                                     [data[key] for key in STUDY_FIELDS]).rowcount
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            continue  # a damaged file costs only its own study; its runs keep their study_id
    return restored


def spec_or_error(run: Run) -> tuple[Architecture | None, str | None]:
    """A run's architecture, or a message saying why its stored spec cannot be used."""
    try:
        return run.spec, None
    except SpecError as err:
        return None, f"Run {run.id}'s stored architecture is invalid: {err}"
