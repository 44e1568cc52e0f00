"""The students table: each browser's display name in a class, indexed in the lab's database (see db.py).

    students/<id>.json   one student: the token their browser's cookie holds (`classroom.Visitor.owner`),
                         their display name and when they joined; the table is rebuilt from these files
A token is never shown to anyone: pages show names. `runs.RunStore` opens the database with this table.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from pathlib import Path

from .db import Database, StoreError, Table
from .files import write_atomically

FOLDER = "students"
NAME_LENGTH = 30
FIELDS = ("id", "owner", "name", "joined_at")
ADJECTIVES = ("Brave", "Bright", "Calm", "Clever", "Curious", "Eager", "Gentle", "Happy", "Keen", "Kind", "Lively",
              "Lucky", "Merry", "Nimble", "Patient", "Quick", "Quiet", "Steady", "Swift", "Witty")
ANIMALS = ("Badger", "Bear", "Beaver", "Crane", "Dolphin", "Falcon", "Fox", "Hare", "Heron", "Koala", "Lynx",
           "Otter", "Owl", "Panda", "Puffin", "Robin", "Seal", "Swan", "Tiger", "Wren")


class RosterError(ValueError):
    """A display name cannot be used; the message says why."""


def restore_students(conn: sqlite3.Connection, folder: Path) -> int:
    """Index every readable students/<id>.json again (after a rebuild); returns how many."""
    restored = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
            restored += conn.execute(f"INSERT OR IGNORE INTO students ({', '.join(FIELDS)}) VALUES (?, ?, ?, ?)",
                                     [data[key] for key in FIELDS]).rowcount
        except (OSError, ValueError, KeyError, TypeError, sqlite3.Error):
            continue  # a damaged file costs only that student's name; their runs keep their owner
    return restored


STUDENTS = Table("students", """
CREATE TABLE IF NOT EXISTS students (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    joined_at REAL NOT NULL
)""", FOLDER, restore=restore_students, restored_what="student file", said_if_none=False)


def clean_name(text: str) -> str:
    """A display name as stored: one line of printable characters, 1 to 30 of them; raises RosterError."""
    name = " ".join("".join(char if char.isprintable() else " " for char in str(text)).split())
    if not name:
        raise RosterError("A name needs at least one letter or digit.")
    if len(name) > NAME_LENGTH:
        raise RosterError(f"A name is at most {NAME_LENGTH} characters; this one has {len(name)}.")
    return name


class Roster:
    """The class's students in the lab's database `db`: who joined under which name."""

    def __init__(self, db: Database):
        self.db = db
        self.folder = db.home / FOLDER

    def names(self) -> dict[str, str]:
        """owner token -> display name, for every student who joined."""
        with self.db.connect() as conn:
            return {row["owner"]: row["name"] for row in conn.execute("SELECT owner, name FROM students")}

    def name_of(self, owner: str) -> str | None:
        with self.db.connect() as conn:
            row = conn.execute("SELECT name FROM students WHERE owner = ?", (owner,)).fetchone()
        return row["name"] if row else None

    def join(self, owner: str, name: str | None = None) -> str:
        """The student's name: theirs if they joined before, else `name` (or a friendly one) recorded now."""
        known = self.name_of(owner)
        if known is not None:
            return known
        return self._save(owner, clean_name(name) if name else None)

    def rename(self, owner: str, name: str) -> str:
        """Give a student a new display name; raises RosterError for a bad one or one a classmate has."""
        self.join(owner)
        return self._save(owner, clean_name(name))

    def _save(self, owner: str, name: str | None) -> str:
        """Record `owner` under `name` (None: a free friendly name) in one transaction, then its file."""
        with self.db.connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            taken = {row["name"].casefold(): row["owner"] for row in conn.execute("SELECT owner, name FROM students")}
            if name is not None and taken.get(name.casefold(), owner) != owner:
                conn.execute("ROLLBACK")
                raise RosterError("Someone in this class already has that name; pick another.")
            name = name or _friendly_name(set(taken))
            row = conn.execute("SELECT id, joined_at FROM students WHERE owner = ?", (owner,)).fetchone()
            student_id, joined = (row["id"], row["joined_at"]) if row else (self.db.next_id(conn, STUDENTS.name),
                                                                           time.time())
            conn.execute("INSERT OR REPLACE INTO students (id, owner, name, joined_at) VALUES (?, ?, ?, ?)",
                         (student_id, owner, name, joined))
            conn.execute("COMMIT")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{student_id}.json", json.dumps(dict(zip(FIELDS, (student_id, owner,
                                                                                               name, joined)))))
        except OSError as err:
            raise StoreError(f"Cannot keep the name {name}: {err.strerror or err}.") from None
        return name


def _friendly_name(taken: set[str]) -> str:
    """'Curious Otter', or with a number once the class has used up the pairs."""
    for _ in range(100):
        name = f"{random.choice(ADJECTIVES)} {random.choice(ANIMALS)}"
        if name.casefold() not in taken:
            return name
    return f"{name} {len(taken) + 1}"
