"""The lab's SQLite database: one file under the lab home, holding the tables its clients declare.

    runs.sqlite     the index (WAL, so the UI reads while a worker writes)

Each client (runs, studies, samples) declares a `Table`: its schema, how an older copy of it is brought up
to date, and how it is filled again from the durable files it keeps in its own folder under the lab home.
The files are the durable copy: a damaged database is moved aside and rebuilt from them, and a deleted one
made again, so a broken database file never loses a run, a study or a sample. Ids are never reused, not even
after a delete (`next_id`), so files a failed delete left behind can never attach to a new row.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .words import plural

DB_NAME = "runs.sqlite"
NOTICE_SECONDS = 600  # how long pages say that the history was rebuilt or made again


class StoreError(RuntimeError):
    """The run store cannot do what was asked; the message says why and what to do."""


def store_problem(message: str, where: Path) -> StoreError:
    """A StoreError saying `message`, which names no server path (students read it); the folder `where` goes
    to the server's log instead, for whoever runs the server."""
    print(f"{message} The folder: {where}", file=sys.stderr, flush=True)
    return StoreError(f"{message} The folder is named in the app's log (the terminal that started it).")


@dataclass(frozen=True)
class Table:
    """One table of the lab's database, and what the database does for it."""

    name: str
    schema: str  # CREATE TABLE IF NOT EXISTS ...
    folder: str | None = None  # its durable files under the lab home, named by id: '7', '7.json', '7.png'
    migrate: Callable[[sqlite3.Connection], None] | None = None  # brings an older copy of the table up to date
    restore: Callable[[sqlite3.Connection, Path], int] | None = None  # refills it from `folder`; says how many
    restored_what: str = ""  # what `restore` counts, for the notice: 'run folder'
    said_if_none: bool = True  # the notice names its count even when it is 0


class Database:
    """The database at `home`, with `tables` made, migrated and restored in their order.

    Every `connect` opens its own short connection (thread-safe).
    """

    def __init__(self, home: Path, tables: Sequence[Table]):
        self.home = Path(home)
        self.path = self.home / DB_NAME
        self.tables = {table.name: table for table in tables}
        self.notice: str | None = None  # set when the database had to be rebuilt or made again
        self.notice_at = 0.0  # when: pages say it only for a while (NOTICE_SECONDS)
        self._open_or_recover()

    @property
    def recent_notice(self) -> str | None:
        """`notice` while it is news: a visitor arriving an hour after a rebuild is not told their runs are gone."""
        return self.notice if time.time() - self.notice_at < NOTICE_SECONDS else None

    @contextmanager
    def connect(self, wait: float = 5.0) -> Iterator[sqlite3.Connection]:
        """A short connection; `wait` seconds for another writer's lock before the store counts as busy. SQLite's
        errors come out as StoreError with a sentence for the user, which names no server path: students on a
        class server read it."""
        self.remake_if_deleted()
        try:
            conn = sqlite3.connect(self.path, timeout=wait, isolation_level=None)
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

    def next_id(self, conn: sqlite3.Connection, table: str) -> int:
        """The id for a new row of `table`: higher than any it ever gave (deleted rows included) and than any
        number naming a file in its folder. Call it inside the transaction that inserts the row."""
        used = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM sqlite_sequence WHERE name = ?", (table,)).fetchone()[0]
        folder = self.tables[table].folder
        return max(used, _highest_number(self.home / folder) if folder else 0) + 1

    def remake_if_deleted(self) -> None:
        """If the database file is gone (its folder deleted while the app ran), make it again from whatever files
        are left and say so in `notice`, so every process goes on without a restart. One stat when it is there."""
        if self.path.exists():
            return
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            restored = self._restore_files()
        except (OSError, sqlite3.Error) as err:
            raise store_problem(f"The run history was deleted and cannot be made again: {err}.", self.home) from None
        self.notice_at = time.time()
        self.notice = ("The run history was deleted while the app ran; it was made again"
                       + (f" from {restored}." if restored else ", empty: earlier runs are gone."))

    def _open_or_recover(self) -> None:
        try:
            with closing(sqlite3.connect(self.path, timeout=5, isolation_level=None)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
                self._create_tables(conn)
                for table in self.tables.values():
                    if table.migrate:
                        table.migrate(conn)
            return
        except sqlite3.OperationalError as err:
            if "locked" in str(err) or "busy" in str(err):
                return  # a writer holds it; reads will work once it is done
            if not os.access(self.home, os.W_OK) or "readonly" in str(err) or "unable to open" in str(err):
                raise store_problem(f"The run store is not writable ({err}). Set MNIST_LAB_HOME to a writable "
                                    f"folder.", self.home) from None
            damage = err
        except sqlite3.DatabaseError as err:
            damage = err
        self._rebuild(damage)

    def _create_tables(self, conn: sqlite3.Connection) -> None:
        for table in self.tables.values():
            conn.execute(table.schema)

    def _rebuild(self, damage: Exception) -> None:
        """Move a damaged database aside (never delete it) and rebuild it from the tables' files."""
        aside = self.path.with_name(f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{self.path}{suffix}")
            if part.exists():
                part.replace(Path(f"{aside}{suffix}"))
        restored = self._restore_files()
        self.notice_at = time.time()
        self.notice = (f"The run history was damaged ({damage}); it was moved to {aside.name} and "
                       f"rebuilt from {restored or 'no files'}.")

    def _restore_files(self) -> str:
        """Make a fresh database and fill each table from its files; says what it restored ('' for nothing),
        e.g. '4 run folders and 0 sample files, with 1 study file'."""
        with closing(sqlite3.connect(self.path, isolation_level=None)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            self._create_tables(conn)
            counts = [(table, table.restore(conn, self.home / table.folder))
                      for table in self.tables.values() if table.restore and table.folder]
        if not any(count for _, count in counts):
            return ""
        said = [plural(count, table.restored_what) for table, count in counts if table.said_if_none]
        extra = [plural(count, table.restored_what) for table, count in counts if count and not table.said_if_none]
        return " and ".join(said) + (f", with {' and '.join(extra)}" if extra else "")


def add_owner_column(conn: sqlite3.Connection, table: str) -> None:
    """Give a table made before classes (runs, studies, samples) its `owner` column; its rows are the lab
    user's (NULL)."""
    if "owner" in {row[1] for row in conn.execute(f"PRAGMA table_info({table})").fetchall()}:
        return
    try:
        conn.execute(f"ALTER TABLE {table} ADD COLUMN owner TEXT")
    except sqlite3.OperationalError as err:
        if "duplicate column" not in str(err):  # another process added it first
            raise


def _highest_number(folder: Path) -> int:
    """The largest number naming an entry in `folder` ('7', '7.json' or '7.png'; 0 if none)."""
    if not folder.is_dir():
        return 0
    stems = (entry.name.partition(".")[0] for entry in os.scandir(folder))
    return max((int(stem) for stem in stems if stem.isdigit()), default=0)
