"""Test files have names unique across tests/unit, tests/functional and tests/e2e: pytest imports them as top-level
modules (no packages), so two files of one name in two scopes make the whole run stop at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_no_two_test_files_share_a_name():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert names["test_test_file_names.py"] == 1  # this file is found: the search looks where the tests are
    assert [name for name, count in names.items() if count > 1] == []
