"""The run store: runs and their progress events in the lab's database (db.py), plus one folder per run.

Layout under the lab home:
    runs.sqlite          the database (see db.py), which also holds studies (studies.py) and samples (samples.py)
    runs/<id>/run.json   the run's manifest: spec, recipe, status, results and history; the index is rebuilt from it
    runs/<id>/model.keras
A run's manifest names its study and variant, so a rebuilt index keeps each study whole.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from . import studies, students
from .db import Database, Table, store_problem
from .events import Event
from .files import write_atomically
from .classroom import queue_order, read_settings
from .history import STATUSES, TERMINAL, Run, Study
from .samples import SAMPLES
from .spec import Architecture

FOLDER = "runs"
MIN_FREE_BYTES = 50 * 1024 * 1024  # a run needs a few MB; refuse to start below this
EVENT_FIELDS = ("kind", "epoch", "batch", "step", "lr", "loss", "accuracy", "val_loss", "val_accuracy",
                "elapsed", "eta")
RUN_FIELDS = ("id", "name", "status", "created_at", "started_at", "finished_at", "spec_json", "recipe_json",
              "total_params", "trainable_params", "test_accuracy", "test_loss", "duration", "error",
              "versions_json", "stop_requested", "worker_pid", "submitter_pid", "study_id", "variant", "owner")
# Columns added after release, with their types: older databases get them by ALTER TABLE.
ADDED_RUN_COLUMNS = (("study_id", "INTEGER"), ("variant", "TEXT"), ("owner", "TEXT"))

RUNS_SCHEMA = """
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
    variant TEXT,
    owner TEXT
)"""
EVENTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    run_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    epoch REAL, batch INTEGER, step INTEGER, lr REAL, loss REAL, accuracy REAL,
    val_loss REAL, val_accuracy REAL, elapsed REAL, eta REAL,
    PRIMARY KEY (run_id, seq)
)"""
INSERT_EVENT = (f"INTO events (run_id, seq, {', '.join(EVENT_FIELDS)}) "
                f"VALUES (?, ?, {', '.join('?' for _ in EVENT_FIELDS)})")


def _needs_rebuild(conn: sqlite3.Connection) -> bool:
    """The runs table predates AUTOINCREMENT (ids reused after a delete) or the submitter column."""
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'runs'").fetchone()[0]
    return "AUTOINCREMENT" not in sql or "submitter_pid" not in sql


def _missing_columns(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Columns added since the runs table was made (study membership), with their types."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
    return [(name, kind) for name, kind in ADDED_RUN_COLUMNS if name not in have]


def migrate_runs(conn: sqlite3.Connection) -> None:
    """Bring an older runs table to the current schema, keeping every row and id.

    A table without AUTOINCREMENT is copied into a new one; columns added later are ALTERed in.
    """
    if not (_needs_rebuild(conn) or _missing_columns(conn)):
        return
    conn.execute("BEGIN IMMEDIATE")  # outside the try: a lock held elsewhere means "migrate next time"
    try:
        if _needs_rebuild(conn):  # another process may have migrated while this one waited
            old = {row[1] for row in conn.execute("PRAGMA table_info(runs)").fetchall()}
            kept = ", ".join(field for field in RUN_FIELDS if field in old)
            conn.execute("ALTER TABLE runs RENAME TO runs_old")
            conn.execute(RUNS_SCHEMA)
            conn.execute(f"INSERT INTO runs ({kept}) SELECT {kept} FROM runs_old")
            conn.execute("DROP TABLE runs_old")
        for name, kind in _missing_columns(conn):
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
        conn.execute("COMMIT")
    except sqlite3.Error:
        conn.execute("ROLLBACK")
        raise


def restore_runs(conn: sqlite3.Connection, folder: Path) -> int:
    """Index every readable runs/<id>/run.json again, with its events (after a rebuild); returns how many.

    A run that was queued or running is restored as interrupted: no worker holds it any more.
    """
    restored = 0
    for manifest in sorted(folder.glob("*/run.json")):
        try:
            data = json.loads(manifest.read_text())
            run = {key: data.get(key) for key in RUN_FIELDS}
            if run["status"] in ("queued", "running"):
                run["status"], run["error"] = "interrupted", "The app stopped before this run finished."
            run["stop_requested"] = run["stop_requested"] or 0
            conn.execute(f"INSERT INTO runs ({', '.join(RUN_FIELDS)}) VALUES "
                         f"({', '.join('?' for _ in RUN_FIELDS)})", [run[key] for key in RUN_FIELDS])
            conn.executemany(f"INSERT {INSERT_EVENT}", [(run["id"], seq, *[event.get(key) for key in EVENT_FIELDS])
                                                        for seq, event in enumerate(data.get("events", []))])
            restored += 1
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            continue  # a damaged manifest costs only its own run
    return restored


RUNS = Table("runs", RUNS_SCHEMA, FOLDER, migrate=migrate_runs, restore=restore_runs, restored_what="run folder")
EVENTS = Table("events", EVENTS_SCHEMA)
# Every table of the lab's database, in the order a rebuild restores them and its notice names them.
TABLES = (RUNS, EVENTS, SAMPLES, studies.STUDIES, students.STUDENTS)


class RunStore:
    """The run history at `home`: runs, their events and studies; every method opens its own short connection
    (thread-safe). `db` is the lab's database, which samples.SampleStore uses too."""

    def __init__(self, home: str | Path):
        self.home = Path(home)
        self.runs_dir = self.home / FOLDER
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise store_problem(f"Cannot create the run store: {err.strerror or err}. Set MNIST_LAB_HOME to a "
                                f"writable folder.", self.home) from None
        self.db = Database(self.home, TABLES)
        self.db_path = self.db.path

    @property
    def notice(self) -> str | None:
        """Set when the database had to be rebuilt or made again (see `db.Database.notice`)."""
        return self.db.notice

    @property
    def recent_notice(self) -> str | None:
        """`notice` while it is news (see `db.Database.recent_notice`)."""
        return self.db.recent_notice

    def connect(self, wait: float = 5.0) -> AbstractContextManager[sqlite3.Connection]:
        """A short connection to the lab's database, with its errors as StoreError (see `db.Database.connect`)."""
        return self.db.connect(wait)

    def remake_if_deleted(self) -> None:
        """Make the database again if its file was deleted (see `db.Database.remake_if_deleted`)."""
        self.db.remake_if_deleted()

    # -- writes ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise StoreError unless a run can be stored now (folder writable, disk not full)."""
        probe = self.runs_dir / f".probe-{os.getpid()}-{threading.get_ident()}"  # the server's sessions are threads
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)  # gone if the lab home was deleted while the app ran
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            raise store_problem(f"The run store is not writable ({err.strerror or err}); nothing was started. "
                                f"Set MNIST_LAB_HOME to a writable folder.", self.runs_dir) from None
        free = shutil.disk_usage(self.runs_dir).free
        if free < MIN_FREE_BYTES:
            raise store_problem(f"Only {free / 2**20:.0f} MB free for the run store; free some disk space before "
                                f"training.", self.runs_dir)

    def create_run(self, name: str, spec: Architecture, recipe: dict[str, Any], total_params: int,
                   trainable_params: int, submitter_pid: int | None = None, study_id: int | None = None,
                   variant: str | None = None, owner: str | None = None,
                   admit: Callable[[list[Run], str, str, str], None] | None = None) -> int:
        """Queue a new run for `owner` and return its id: higher than any id used before or found under runs/.

        `admit(own_active, name, spec_json, recipe_json)` sees the owner's queued and running runs inside the
        transaction that inserts the run, and raises to refuse it: two Starts at once cannot both pass.
        The name is kept as one line of printable characters (a CLI `--name` may hold newlines or controls).
        """
        name = " ".join("".join(char if char.isprintable() else " " for char in name).split())[:80] or spec.name
        self.check_writable()
        spec_json, recipe_json = json.dumps(spec.to_dict()), json.dumps(recipe)
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if admit is not None:
                    admit(self._own_active(conn, owner), name, spec_json, recipe_json)
            except ValueError:
                conn.execute("ROLLBACK")
                raise
            run_id = self.db.next_id(conn, RUNS.name)
            conn.execute(
                "INSERT INTO runs (id, name, status, created_at, spec_json, recipe_json, total_params, "
                "trainable_params, submitter_pid, study_id, variant, owner) "
                "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, name, time.time(), spec_json, recipe_json, total_params,
                 trainable_params, submitter_pid, study_id, variant, owner))
            conn.execute("COMMIT")
        self.write_manifest(run_id)
        return run_id

    def owner_active(self, owner: str | None) -> list[Run]:
        """`owner`'s queued and running runs, oldest first (None: the lab user's)."""
        with self.connect() as conn:
            return self._own_active(conn, owner)

    def _own_active(self, conn: sqlite3.Connection, owner: str | None) -> list[Run]:
        rows = conn.execute("SELECT * FROM runs WHERE owner IS ? AND status IN ('queued', 'running') ORDER BY id",
                            (owner,)).fetchall()
        return [Run(**dict(row)) for row in rows]

    @property
    def roster(self) -> students.Roster:
        """The class's students and their names."""
        return students.Roster(self.db)

    def create_study(self, name: str, spec: Architecture, recipe: dict[str, Any], seeds: list[int],
                     owner: str | None = None) -> int:
        """Record a new study (its runs are created after) and write studies/<id>.json; returns its id."""
        self.check_writable()
        return studies.create_study(self.db, name, spec, recipe, seeds, owner)

    def claim_next(self, worker_pid: int) -> Run | None:
        """Atomically move the next queued run (`classroom.queue_order`) to 'running' for this worker; None
        while the queue is empty or the teacher paused it."""
        if read_settings(self.home).paused:
            return None
        with self.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute("SELECT * FROM runs WHERE status IN ('queued', 'running')").fetchall()
            order = queue_order([Run(**dict(row)) for row in rows])
            if not order:
                conn.execute("COMMIT")
                return None
            conn.execute("UPDATE runs SET status = 'running', started_at = ?, worker_pid = ? WHERE id = ?",
                         (time.time(), worker_pid, order[0].id))
            conn.execute("COMMIT")
        return self.get(order[0].id)

    def add_event(self, run_id: int, seq: int, event: Event) -> None:
        """Append one progress event."""
        values = asdict(event)
        with self.connect() as conn:
            conn.execute(f"INSERT OR REPLACE {INSERT_EVENT}", (run_id, seq, *[values[key] for key in EVENT_FIELDS]))

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
                "test_accuracy = ?, test_loss = ?, error = COALESCE(?, error), versions_json = COALESCE(?, versions_json) "
                "WHERE id = ? AND (? IS NULL OR worker_pid = ?)",
                (status, now, now, now, test_accuracy, test_loss, error,
                 json.dumps(versions) if versions else None, run_id, worker_pid, worker_pid))
        self.write_manifest(run_id)

    def request_stop(self, run_id: int, reason: str | None = None) -> None:
        """Ask the worker to stop this run, for `reason` if not the user's ('time limit'); a run still
        queued is stopped at once."""
        with self.connect() as conn:
            conn.execute("UPDATE runs SET stop_requested = 1, error = COALESCE(?, error) WHERE id = ?",
                         (reason, run_id))
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
            write_atomically(folder / "run.json", json.dumps(data))
        except OSError as err:  # a full disk: the caller retries, as for a locked database
            raise store_problem(f"Cannot write run {run_id}'s manifest: {err.strerror or err}.", folder) from None

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
        return studies.get_study(self.db, study_id)

    def list_studies(self) -> list[Study]:
        """Studies, newest first."""
        return studies.list_studies(self.db)

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
