"""Writes made close together share one commit.

A commit writes the log to disk and costs more than the one insert a `/testcall run` makes
before it is answered. Such writes are queued here and made in one transaction with every other
write queued meanwhile, once the first one has waited its `window`. Each caller resumes once
that transaction has committed. The writes run one after another in a single synchronous step
(`write_each`, which the inbox worker also uses for a chunk of deliveries), so no other task's
writes can slip into the transaction, and no task sees the transaction open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlite_utils import Database

T = TypeVar("T")


class SharedCommit:
    """`window` (seconds): how long the first write of a group waits for others."""

    def __init__(self, db: Database, *, window: float) -> None:
        self._db = db
        self._window = window
        self._queued: list[tuple[Callable[[Database], Any], asyncio.Future[Any]]] = []

    async def write(self, write: Callable[[Database], T]) -> T:
        """`write(db)`, committed together with the writes queued near it; its result once
        committed. Its exception, should it raise (its own changes undone, the others'
        kept); the commit's, should that fail (nothing of the group kept)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        self._queued.append((write, done))
        if len(self._queued) == 1:
            loop.call_later(self._window, self._commit)
        return await done

    def _commit(self) -> None:
        queued, self._queued = self._queued, []
        try:
            outcomes = write_each(self._db, [write for write, _ in queued])
        except Exception as error:  # the commit failed: nobody's write was kept
            for _, done in queued:
                if not done.done():
                    done.set_exception(error)
            return
        for (_, done), (value, failure) in zip(queued, outcomes, strict=True):
            if done.done():
                continue  # its request went away; what it wrote is kept all the same
            if failure is not None:
                done.set_exception(failure)
            else:
                done.set_result(value)


def write_each(
    db: Database, writes: Sequence[Callable[[Database], Any]]
) -> list[tuple[Any, Exception | None]]:
    """Every write in one transaction, each in a savepoint of its own so that one that raises
    is undone alone: (its result, None) or (None, its exception), in order. Raises, with
    nothing kept, when the commit itself fails."""
    outcomes: list[tuple[Any, Exception | None]] = []
    conn = db.conn
    with db.atomic():
        for write in writes:
            conn.execute("SAVEPOINT shared_write")
            try:
                outcomes.append((write(db), None))
            except Exception as error:
                conn.execute("ROLLBACK TO shared_write")
                outcomes.append((None, error))
            conn.execute("RELEASE shared_write")
    return outcomes
