"""The studies table: each ablation study's manifest, indexed in the lab's database (see db.py).

    studies/<id>.json   an ablation study's manifest: name, baseline spec, recipe, seeds (see study.py)
A study never changes after creation (its progress lives in its runs, which name it), so its manifest is
written once. `runs.RunStore` opens the database with this table and offers these functions as its methods.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from .db import Database, Table, add_owner_column
from .files import write_atomically
from .history import Study
from .spec import Architecture

FOLDER = "studies"
STUDY_FIELDS = ("id", "name", "created_at", "spec_json", "recipe_json", "seeds_json", "owner")
INTO = f"INTO studies ({', '.join(STUDY_FIELDS)}) VALUES ({', '.join('?' for _ in STUDY_FIELDS)})"


def restore_studies(conn: sqlite3.Connection, folder: Path) -> int:
    """Index every readable studies/<id>.json again (after a rebuild); returns how many."""
    restored = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            values = [data.get("owner") if key == "owner" else data[key] for key in STUDY_FIELDS]  # owner came later
            restored += conn.execute(f"INSERT OR IGNORE {INTO}", values).rowcount
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            continue  # a damaged file costs only its own study; its runs keep their study_id
    return restored


STUDIES = Table("studies", """
CREATE TABLE IF NOT EXISTS studies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    spec_json TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    seeds_json TEXT NOT NULL,
    owner TEXT
)""", FOLDER, migrate=lambda conn: add_owner_column(conn, "studies"), restore=restore_studies,
    restored_what="study file", said_if_none=False)


def create_study(db: Database, name: str, spec: Architecture, recipe: dict[str, Any], seeds: list[int],
                 owner: str | None = None) -> int:
    """Record a new study (its runs are created after) and write studies/<id>.json; returns its id."""
    folder = db.home / FOLDER
    folder.mkdir(exist_ok=True)
    with db.connect() as conn:
        conn.execute("BEGIN IMMEDIATE")
        study_id = db.next_id(conn, STUDIES.name)
        values = (study_id, name, time.time(), json.dumps(spec.to_dict()), json.dumps(recipe), json.dumps(seeds),
                  owner)
        conn.execute(f"INSERT {INTO}", values)
        conn.execute("COMMIT")
    write_atomically(folder / f"{study_id}.json", json.dumps(dict(zip(STUDY_FIELDS, values))))
    return study_id


def get_study(db: Database, study_id: int) -> Study | None:
    with db.connect() as conn:
        row = conn.execute("SELECT * FROM studies WHERE id = ?", (study_id,)).fetchone()
    return Study(**dict(row)) if row else None


def list_studies(db: Database) -> list[Study]:
    """Studies, newest first."""
    with db.connect() as conn:
        rows = conn.execute("SELECT * FROM studies ORDER BY id DESC").fetchall()
    return [Study(**dict(row)) for row in rows]
