"""Numbers read from a link's query parameters: ASCII digits within a range, or nothing.

`str.isdigit` and `int` accept more than a link should carry ('²', '١٥٠٠٠', '1_000', ' 7 '), and an
id beyond SQLite's integers overflows the query that looks it up, so the pages read their numbers here.
"""

from __future__ import annotations

import re

from .budget import COUNTINGS, DEFAULT_LIMIT, MAX_LIMIT, Budget

MAX_ID = 2**63 - 1  # SQLite's largest integer: no run has a larger id
_DIGITS = re.compile(r"[0-9]{1,19}")  # 19 digits hold MAX_ID; more never convert


def parse_number(text: object, low: int, high: int) -> int | None:
    """The integer `text` spells in ASCII digits when it lies in [low, high], else None."""
    if not isinstance(text, str) or not _DIGITS.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def parse_run_id(text: object) -> int | None:
    """A run's id from a link (`?run=12`, `?model=12`), or None for anything that is not one."""
    return parse_number(text, 1, MAX_ID)


def parse_budget(limit: object, counting: object) -> Budget | None:
    """The budget a link's `budget` and `count` give (each defaults when absent), or None if either is bad."""
    number = DEFAULT_LIMIT if limit is None else parse_number(limit, 1, MAX_LIMIT)
    counting = "total" if counting is None else counting
    if number is None or counting not in COUNTINGS:
        return None
    return Budget(number, counting)
