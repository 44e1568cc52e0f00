"""Writing a file so that a reader sees the old copy or the new one, never half of one.

A write is staged in a temp file of its own beside the target (two processes writing the same file never
collide), then `place`d over the target at once. A failure at either step leaves no temp file behind: half a
file on a full disk would keep the space the next try needs. Temp names start with a dot, so scans for
numbered files ('7.json', '7.png') skip them.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def write_atomically(path: Path, data: bytes | str) -> None:
    """Replace `path` with `data` (text is written as UTF-8) at once."""
    place(staged(path.parent, path.name, data), path)


def staged(folder: Path, name: str, data: bytes | str = b"", suffix: str = ".tmp") -> Path:
    """A new temp file in `folder`, named after `name`, holding `data`; `place` moves it where it belongs.

    Staging first lets a caller write slowly, then place files quickly while it holds a lock.
    """
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data.encode() if isinstance(data, str) else data)
    except BaseException:
        os.unlink(temp)
        raise
    return Path(temp)


def place(temp: Path, path: Path) -> None:
    """Move a staged file to `path` at once, replacing what was there; the temp file is removed if it fails."""
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


@contextmanager
def replaced_at_once(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """An empty staged file for the block to fill (for writers that only take a path, as Keras does; `suffix`
    gives it the ending such a writer may need), placed over `path` when the block ends well."""
    temp = staged(path.parent, path.name, suffix=suffix)
    try:
        yield temp
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    place(temp, path)
