"""Group commit of webhook deliveries: the ones that arrive together share one transaction,
and each is answered once that transaction has committed, never before."""

from __future__ import annotations

import asyncio

from sqlite_utils import Database

from storage import inbox

Delivery = tuple[str, str, str]  # key, event type, body


class GroupCommit:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[tuple[Delivery, asyncio.Future[bool]]] = []

    async def store(self, key: str, event_type: str, body: str) -> bool:
        """Store one delivery durably; False when it was stored before (a duplicate)."""
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[bool] = loop.create_future()
        self._waiting.append(((key, event_type, body), stored))
        if len(self._waiting) == 1:
            # After every request already in hand this turn of the loop: they join the group.
            loop.call_soon(self._commit)
        return await stored

    def _commit(self) -> None:
        group, self._waiting = self._waiting, []
        try:
            fresh = inbox.store_events(self._db, [delivery for delivery, _ in group])
        except Exception as error:  # every request of the group gets the failure, so no 2xx
            for _, stored in group:
                if not stored.done():
                    stored.set_exception(error)
            return
        for (_, stored), is_fresh in zip(group, fresh, strict=True):
            if not stored.done():  # a request whose client left is stored all the same
                stored.set_result(is_fresh)
