"""My handwriting: the user's own labelled digits, kept in the run store to judge every model on.

A sample is the 28x28 image a model saw (uint8 0-255), its label (0-9, the user's word for it),
its source ('canvas' or 'photo') and when it was saved. Samples are indexed in the runs database
(table `samples`, see db.py) and, like runs, have a durable copy that a damaged database is rebuilt from:
    samples/<id>.png     28x28 greyscale PNG; label, source and created_at in its text chunks
"""

from __future__ import annotations

import io
import os
import sqlite3
import time
import zlib
import zipfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

import numpy as np
from PIL import Image, PngImagePlugin

from .classroom import LAB_USER, Visitor
from .db import Database, Table, add_owner_column
from .files import place, staged


class OpenDatabase(Protocol):
    """What samples need of the run store (`runs.RunStore`): the lab's database, which it opens with this
    module's table among its own, so that it is made, migrated and rebuilt with them."""

    db: Database


SIZE = 28
SOURCES = ("canvas", "photo")
FOLDER = "samples"
# In the whole set: 200 a digit judge a model to about half a point, and the set's page, an import
# (about 2 s) and judging every model on it (a batched pass, under a second a model) stay quick.
MAX_SAMPLES = 2_000
MAX_IMPORT_BYTES = 5 * 2**20  # 2,000 digits saved by export_npz take about 0.3 MB, as float64 up to 12 MB zipped
MAX_ARRAY_BYTES = MAX_SAMPLES * SIZE * SIZE * 8  # 2,000 float64 images: the largest honest array
READ_FAULTS = (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zipfile.BadZipFile, zlib.error)

INSERT = "INSERT INTO samples (id, label, source, created_at, image, owner) VALUES (?, ?, ?, ?, ?, ?)"


class SampleError(ValueError):
    """A sample or a sample file cannot be used; the message says why, and nothing was saved."""


@dataclass(frozen=True, eq=False)  # eq=False: an array field has no single truth value
class Sample:
    """One labelled digit of the user's own."""

    id: int
    label: int
    source: str
    created_at: float
    image: np.ndarray  # (28, 28) uint8, read-only

    @property
    def digit28(self) -> np.ndarray:
        """The image as float32 0-1, the form `Predictor.probabilities` takes."""
        return self.image.astype(np.float32) / 255.0


@dataclass(frozen=True)
class Imported:
    """What an import added, and how many of the file's samples the set already held."""

    ids: list[int]
    already_held: int


class SampleStore:
    """`visitor`'s samples, in the run store's database and folder; reads work while others write (WAL).

    In a class each student's set is their own (their samples, their MAX_SAMPLES); the teacher and a lab of
    one see every sample. Bad input raises SampleError; deleting another student's sample raises NotAllowed;
    a database that cannot be used raises the database's StoreError.
    """

    def __init__(self, runs: OpenDatabase, visitor: Visitor = LAB_USER):
        self.runs = runs  # opened first: it creates the table and rebuilds a damaged database
        self.db = runs.db
        self.folder = self.db.home / FOLDER
        self.visitor = visitor
        # The rows this visitor's set holds: a student's own; every row for the teacher or a lab of one.
        self._where, self._args = ("owner IS ?", (visitor.owner,)) if visitor.capped else ("1", ())

    def add(self, image: np.ndarray, label: int, source: str) -> int:
        """Save one digit (uint8 0-255 or float 0-1, 28x28) with its label and source; returns its id.

        Raises SampleError for a bad sample, or when the set already holds MAX_SAMPLES.
        """
        image = np.asarray(image)
        if image.shape != (SIZE, SIZE):
            raise SampleError(f"A sample is a 28x28 image, not {image.shape}.")
        images = _as_uint8(image[None], "The image")
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label <= 9:
            raise SampleError(f"A label is a digit 0-9, not {label!r}.")
        if source not in SOURCES:
            raise SampleError(f"A sample's source is 'canvas' or 'photo', not {source!r}.")
        return self._save(images, [int(label)], [source])[0]

    def get(self, sample_id: int) -> Sample | None:
        """The sample with this id, or None if there is none (never was, or deleted)."""
        with self.db.connect() as conn:
            row = conn.execute(f"SELECT * FROM samples WHERE id = ? AND {self._where}",
                               (sample_id, *self._args)).fetchone()
        return _sample(row) if row else None

    def list(self, label: int | None = None) -> list[Sample]:
        """Samples, newest first; only those labelled `label` when given."""
        return [_sample(row) for row in self._rows(label, "DESC")]

    def count(self, label: int | None = None) -> int:
        """How many samples there are; only those labelled `label` when given."""
        where, args = ("AND label = ?", (label,)) if label is not None else ("", ())
        with self.db.connect() as conn:
            return conn.execute(f"SELECT COUNT(*) FROM samples WHERE {self._where} {where}",
                                (*self._args, *args)).fetchone()[0]

    def delete(self, sample_id: int) -> None:
        """Remove a sample from the index and its file from disk; NotAllowed for another student's sample."""
        with self.db.connect() as conn:
            row = conn.execute("SELECT owner FROM samples WHERE id = ?", (sample_id,)).fetchone()
            if row is None:
                return
            self.visitor.check_may_manage(row["owner"], f"sample {sample_id}")
            conn.execute("DELETE FROM samples WHERE id = ?", (sample_id,))
        with suppress(OSError):  # a leftover file keeps its id, which is never reused
            self.path(sample_id).unlink(missing_ok=True)

    def path(self, sample_id: int) -> Path:
        """Where the sample's durable copy lives: samples/<id>.png."""
        return self.folder / f"{sample_id}.png"

    def export_npz(self) -> bytes:
        """Every sample, oldest first, as a compressed .npz: images (N, 28, 28) and labels (N,) uint8, sources."""
        rows = self._rows(None, "ASC")
        images = np.frombuffer(b"".join(row["image"] for row in rows), np.uint8).reshape(-1, SIZE, SIZE)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=images, labels=np.array([row["label"] for row in rows], np.uint8),
                            sources=np.array([row["source"] for row in rows], dtype=str))
        return buffer.getvalue()

    def import_npz(self, data: bytes) -> Imported:
        """Add every sample of a .npz file that the set does not hold yet (same label, same pixels), or none:
        raises SampleError naming the first fault found, or saying how many fit when the set would pass
        MAX_SAMPLES. Importing a file twice adds nothing the second time."""
        images, labels, sources = _read_npz(data)
        with self.db.connect() as conn:
            held = {(row["label"], row["image"]) for row in
                    conn.execute(f"SELECT label, image FROM samples WHERE {self._where}", self._args)}
        new = []
        for index, (image, label) in enumerate(zip(images, labels.tolist())):
            key = (label, image.tobytes())
            if key not in held:
                held.add(key)  # a sample repeated inside the file is added once too
                new.append(index)
        _check_room(self.count(), len(new))  # before writing a file; `_save` checks again, in its transaction
        ids = self._save(images[new], [labels[i].item() for i in new], [sources[i] for i in new]) if new else []
        return Imported(ids, len(labels) - len(new))

    def _rows(self, label: int | None, order: str) -> list[sqlite3.Row]:
        where, args = ("AND label = ?", (label,)) if label is not None else ("", ())
        with self.db.connect() as conn:
            return conn.execute(f"SELECT * FROM samples WHERE {self._where} {where} ORDER BY id {order}",
                                (*self._args, *args)).fetchall()

    def _save(self, images: np.ndarray, labels: list[int], sources: list[str]) -> list[int]:
        """Write the PNGs first, outside the lock (slow), then index and place them in one transaction."""
        now = time.time()
        staged_pngs, ids = [], []
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            owner = self.visitor.owner
            staged_pngs = [staged(self.folder, "new", _png(*item, now, owner), ".png")
                           for item in zip(images, labels, sources)]
            with self.db.connect() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    _check_room(conn.execute(f"SELECT COUNT(*) FROM samples WHERE {self._where}",
                                             self._args).fetchone()[0], len(staged_pngs))
                    first = self.db.next_id(conn, SAMPLES.name)
                    ids = list(range(first, first + len(staged_pngs)))
                    conn.executemany(INSERT, [(sample_id, label, source, now, image.tobytes(), owner) for
                                              sample_id, image, label, source in zip(ids, images, labels, sources)])
                    for sample_id, temp in zip(ids, staged_pngs):
                        place(temp, self.path(sample_id))
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:  # some errors (a full disk) have rolled it back already
                        conn.execute("ROLLBACK")
                    raise
        except BaseException as err:
            for path in [*staged_pngs, *map(self.path, ids)]:
                with suppress(OSError):
                    path.unlink(missing_ok=True)
            if isinstance(err, OSError):
                raise SampleError(f"Cannot save samples in {self.folder} ({err.strerror or err}); "
                                  f"nothing was added.") from None
            raise
        return ids


def _check_room(held: int, adding: int) -> None:
    """Refuse to take a set holding `held` samples past MAX_SAMPLES, saying how many still fit."""
    room = max(MAX_SAMPLES - held, 0)
    if adding <= room:
        return
    if room == 0:
        raise SampleError(f"Your set is full: it holds {held:,} samples, the most a set can; delete some first.")
    # Only an import adds more than one sample, so only an import gets here.
    raise SampleError(f"Only {room:,} more samples fit, not {adding:,}: a set holds at most {MAX_SAMPLES:,} and yours "
                      f"has {held:,}; delete some, or import a smaller file.")


def _read_npz(data: bytes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validated images (N, 28, 28) uint8, labels (N,) and sources from .npz bytes; raises SampleError.

    Each array's declared shape and dtype are read from its .npy header before any data is
    unpacked, so a small file that would unpack to gigabytes is refused without unpacking it.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise SampleError(f"The file is {len(data) / 2**20:.1f} MB; at most {MAX_IMPORT_BYTES // 2**20} MB "
                          f"can be imported.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            keys = [key for key in ("images", "labels", "sources") if f"{key}.npy" in names]
            for key in ("images", "labels"):
                if key not in keys:
                    raise SampleError(f"The file has no '{key}' array; a sample set needs 'images' and 'labels'.")
            declared = {key: _declared(archive, key) for key in keys}
    except zipfile.BadZipFile:
        raise SampleError("The file is not a .npz archive (as numpy.savez writes).") from None
    _check_declared(declared)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in keys}
    except READ_FAULTS as err:
        raise SampleError(f"The file's arrays cannot be read ({err}).") from None
    images = _as_uint8(arrays["images"], "'images'")
    labels = arrays["labels"]
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if bad.size:
        raise SampleError(f"Labels are digits 0-9; sample {bad[0]} is labelled {labels[bad[0]]}.")
    sources = arrays["sources"].tolist() if "sources" in arrays else ["canvas"] * len(labels)
    unknown = [index for index, source in enumerate(sources) if source not in SOURCES]
    if unknown:
        raise SampleError(f"Sources are 'canvas' or 'photo'; sample {unknown[0]} has {sources[unknown[0]]!r:.40}.")
    return images, labels.astype(np.uint8), sources


def _declared(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """An array's shape and dtype from its .npy header, unpacking only the header."""
    try:
        with archive.open(f"{key}.npy") as member:
            version = np.lib.format.read_magic(member)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
    except READ_FAULTS as err:
        raise SampleError(f"'{key}' is not a readable .npy array ({err}).") from None
    return shape, dtype


def _check_declared(declared: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Refuse pickles, wrong shapes or dtypes, too many samples and oversized arrays, before loading."""
    for key, (shape, dtype) in declared.items():
        if dtype.hasobject:
            raise SampleError(f"'{key}' holds Python objects (a pickle), which are never loaded; "
                              f"save plain numeric arrays.")
    shape, _ = declared["images"]
    if len(shape) != 3 or shape[1:] != (SIZE, SIZE):
        raise SampleError(f"'images' has shape {shape}; expected (N, 28, 28), one 28x28 digit per sample.")
    _check_image_dtype(declared["images"][1], "'images'")
    count = shape[0]
    if count == 0:
        raise SampleError("The file holds no samples.")
    if count > MAX_SAMPLES:
        raise SampleError(f"The file holds {count:,} samples; a set holds at most {MAX_SAMPLES:,}.")
    for key, kinds, expected in (("labels", "iu", "integers"), ("sources", "U", "text ('canvas' or 'photo')")):
        if key not in declared:
            continue
        shape, dtype = declared[key]
        if shape != (count,):
            raise SampleError(f"'{key}' has shape {shape}; expected ({count},), one entry per image.")
        if dtype.kind not in kinds:
            raise SampleError(f"'{key}' must be {expected}, not {dtype}.")
    for key, (shape, dtype) in declared.items():
        size = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
        if size > MAX_ARRAY_BYTES:
            raise SampleError(f"'{key}' declares {size / 2**20:,.0f} MB of data; at most "
                              f"{MAX_ARRAY_BYTES / 2**20:.0f} MB is unpacked, so the file is refused.")


def _as_uint8(images: np.ndarray, what: str) -> np.ndarray:
    """(N, 28, 28) uint8 from uint8 0-255 or float 0-1 images; raises SampleError otherwise."""
    _check_image_dtype(images.dtype, what)
    if images.dtype == np.uint8:
        return images
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise SampleError(f"{what} holds floats outside 0-1; use uint8 0-255 or floats 0-1.")
    return np.rint(images * 255).astype(np.uint8)


def _check_image_dtype(dtype: np.dtype, what: str) -> None:
    if dtype != np.uint8 and dtype.kind != "f":
        raise SampleError(f"{what} must be uint8 0-255 or float 0-1, not {dtype}.")


def _sample(row: sqlite3.Row) -> Sample:
    image = np.frombuffer(row["image"], np.uint8).reshape(SIZE, SIZE)
    return Sample(row["id"], row["label"], row["source"], row["created_at"], image)


def _png(image: np.ndarray, label: int, source: str, created_at: float, owner: str | None) -> bytes:
    """A sample's durable copy: a greyscale PNG with its label, source, time and owner in text chunks."""
    info = PngImagePlugin.PngInfo()
    for key, value in (("label", str(label)), ("source", source), ("created_at", repr(created_at)),
                       *((("owner", owner),) if owner else ())):
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def _files(folder: Path) -> Iterator[tuple[int, Path]]:
    """(id, path) of every samples/<id>.png."""
    if folder.is_dir():
        for entry in os.scandir(folder):
            stem, dot, suffix = entry.name.partition(".")
            if stem.isdigit() and dot and suffix == "png":
                yield int(stem), Path(entry.path)


def restore_samples(conn: sqlite3.Connection, folder: Path) -> int:
    """Index every readable samples/<id>.png in `folder` again (after a rebuild); returns how many."""
    rows = []
    for sample_id, path in sorted(_files(folder)):
        try:
            with Image.open(path) as png:
                png.load()  # text chunks after the pixels are only read here
                if png.mode != "L" or png.size != (SIZE, SIZE):
                    raise ValueError(f"a {png.mode} {png.size} image")
                image, text = np.asarray(png, np.uint8), dict(png.text)
            label, source = int(text["label"]), text["source"]
            if not 0 <= label <= 9 or source not in SOURCES:
                raise ValueError(f"label {label}, source {source!r}")
            rows.append((sample_id, label, source, float(text["created_at"]), image.tobytes(), text.get("owner")))
        except (OSError, ValueError, KeyError, SyntaxError, Image.DecompressionBombError):
            continue  # a damaged file costs only its own sample
    conn.execute("BEGIN")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    return len(rows)


SAMPLES = Table("samples", """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at REAL NOT NULL,
    image BLOB NOT NULL,
    owner TEXT
)""", FOLDER, migrate=lambda conn: add_owner_column(conn, "samples"), restore=restore_samples,
    restored_what="sample file")
