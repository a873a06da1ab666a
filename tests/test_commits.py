"""Writes made close together share one commit, and each caller resumes once it committed."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.commits import SharedCommit
from storage.db import open_db


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = open_db(str(tmp_path / "thunderbot.db"))
    database.execute("create table notes (text text not null)")
    return database


def _insert(text: str | None) -> object:
    def write(db: Database) -> str | None:
        db.execute("insert into notes (text) values (?)", [text])
        return text

    return write


def _stored(path: Path) -> list[str]:
    """What another connection reads: only what was committed."""
    with sqlite3.connect(path) as other:
        return sorted(row[0] for row in other.execute("select text from notes"))


async def test_writes_made_together_share_one_commit_and_are_stored_when_awaited(
    db: Database, tmp_path: Path
) -> None:
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    commits = SharedCommit(db, window=0)
    results = await asyncio.gather(*(commits.write(_insert(f"note {n}")) for n in range(5)))
    assert results == [f"note {n}" for n in range(5)]
    assert _stored(tmp_path / "thunderbot.db") == [f"note {n}" for n in range(5)]
    assert sum(1 for s in statements if s.strip().upper().startswith("COMMIT")) == 1


async def test_a_write_that_fails_is_undone_alone(db: Database, tmp_path: Path) -> None:
    commits = SharedCommit(db, window=0)
    kept, failed = await asyncio.gather(
        commits.write(_insert("kept")), commits.write(_insert(None)), return_exceptions=True
    )
    assert kept == "kept"
    assert isinstance(failed, sqlite3.IntegrityError)
    assert _stored(tmp_path / "thunderbot.db") == ["kept"]


async def test_with_a_window_writes_made_turns_apart_still_share_one_commit(
    db: Database, tmp_path: Path
) -> None:
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)

    async def later(commits: SharedCommit, text: str) -> object:
        for _ in range(5):  # past the one turn a commit with no window waits
            await asyncio.sleep(0)
        return await commits.write(_insert(text))

    def commits_made() -> int:
        return sum(1 for s in statements if s.strip().upper().startswith("COMMIT"))

    at_once = SharedCommit(db, window=0)
    await asyncio.gather(at_once.write(_insert("first")), later(at_once, "second"))
    assert commits_made() == 2

    windowed = SharedCommit(db, window=0.5)
    await asyncio.gather(windowed.write(_insert("third")), later(windowed, "fourth"))
    assert commits_made() == 3
    assert _stored(tmp_path / "thunderbot.db") == ["first", "fourth", "second", "third"]
