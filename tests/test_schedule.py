"""The longest-first list (tests/fixtures/schedule.py) names files that exist."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.schedule import LONGEST_FIRST

ROOT = Path(__file__).resolve().parent.parent


def test_every_listed_file_exists_once() -> None:
    assert [name for name in LONGEST_FIRST if not (ROOT / name).is_file()] == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)
