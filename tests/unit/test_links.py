"""Numbers from a link's query parameters: ASCII digits in range, anything else is no number."""

import pytest

from mnist_core.budget import Budget
from mnist_core.links import MAX_ID, parse_budget, parse_run_id


@pytest.mark.parametrize("text, expected", [("12", 12), ("1", 1), (str(MAX_ID), MAX_ID), ("007", 7)])
def test_a_run_id_is_ascii_digits(text, expected):
    assert parse_run_id(text) == expected


@pytest.mark.parametrize("text", ["²", "١٢", "１２", "1_000", " 7", "7 ", "-3", "+3", "0", "", "3.0", "0x10",
                                  str(MAX_ID + 1), "9" * 23, "9" * 5_000, None, ["1"]])
def test_anything_else_is_no_run_id(text):
    """'²'.isdigit() is True and int('²') fails; int('١٢') is 12; 23 digits overflow SQLite: all are None."""
    assert parse_run_id(text) is None


def test_a_link_budget_is_read_or_refused_whole():
    assert parse_budget(None, None) == Budget()
    assert parse_budget("16000", "trainable") == Budget(16_000, "trainable")
    for limit, counting in (("²", None), ("١٥٠٠٠", None), ("0", None), ("10000001", None), ("-5", None),
                            ("15000", "all"), ("9" * 5_000, None)):
        assert parse_budget(limit, counting) is None, (limit, counting)
