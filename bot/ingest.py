"""Group commit of webhook deliveries: the ones that arrive together share one transaction,
and each is answered once that transaction has committed, never before.

A completion report about a run this bot did not start (the organisation's other test calls
reach the same endpoint) is stored as applied already, so the worker never reads it again;
that is decided as the worker would decide it, while no launch is waiting for its run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from sqlite_utils import Database

from bot.intake import Intake
from storage import batches as batch_store
from storage import inbox, launches
from storage import runs as run_store


@dataclass(frozen=True)
class Delivery:
    key: str
    event_type: str
    body: str
    run_id: int | None = None  # the run a `test-call.completed` report is about


def launches_in_doubt(db: Database) -> bool:
    """Whether a launch or batch is being started or looked for: a report about a run not on
    record may then be about its run."""
    return launches.any_unsettled(db) or batch_store.any_unsettled_parts(db)


def not_ours(db: Database, deliveries: list[Delivery]) -> frozenset[str]:
    """The keys of completion reports about runs this bot did not start, and cannot start
    any more: no launch is in doubt, and the run is not on record."""
    about = [d.run_id for d in deliveries if d.run_id is not None]
    if not about or launches_in_doubt(db):
        return frozenset()
    known = run_store.known_run_ids(db, about)
    return frozenset(d.key for d in deliveries if d.run_id is not None and d.run_id not in known)


class GroupCommit:
    def __init__(
        self, db: Database, intake: Intake | None = None, wake: Callable[[], None] = lambda: None
    ) -> None:
        self._db = db
        self._intake = intake or Intake()
        self._wake = wake  # the worker, when there is something for it to apply
        self._waiting: list[tuple[Delivery, asyncio.Future[bool]]] = []

    async def store(self, delivery: Delivery) -> bool:
        """Store one delivery durably; False when it was stored before (a duplicate)."""
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[bool] = loop.create_future()
        self._waiting.append((delivery, stored))
        if len(self._waiting) == 1:
            # Two turns of the loop later: the requests in hand now, and those whose bytes
            # arrive meanwhile, join the group and share its commit.
            loop.call_soon(loop.call_soon, self._commit)
        return await stored

    def _commit(self) -> None:
        group, self._waiting = self._waiting, []
        deliveries = [delivery for delivery, _ in group]
        try:
            # Decided and stored in one synchronous step: no launch can change between them.
            handled = not_ours(self._db, deliveries)
            fresh = inbox.store_events(
                self._db,
                [(d.key, d.event_type, d.body) for d in deliveries],
                handled=handled,
            )
        except Exception as error:  # every request of the group gets the failure, so no 2xx
            for _, stored in group:
                if not stored.done():
                    stored.set_exception(error)
            return
        to_apply = sum(
            1
            for d, is_fresh in zip(deliveries, fresh, strict=True)
            if is_fresh and d.key not in handled
        )
        if to_apply:
            self._intake.stored(to_apply)
            self._wake()
        for (_, stored), is_fresh in zip(group, fresh, strict=True):
            if not stored.done():  # a request whose client left is stored all the same
                stored.set_result(is_fresh)
