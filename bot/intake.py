"""How fast webhooks are taken in: no faster than the bot can act on them.

A burst of completion reports (a batch finishing together, ThunderPhone's retries after an
outage) would otherwise be stored far faster than its cards can be brought up to date, and
every card would wait behind the whole burst. Instead the webhook route takes a delivery only
while the work in hand is small: requests being taken in, deliveries stored but not yet
applied, and Slack messages ready to go out. Beyond
that a request waits its turn, first come first served, before its body is read; ThunderPhone
sees a slower answer, never a refusal. No request waits longer than `max_wait`: then it is
taken in all the same.

The details of finished calls (cost, end reason, transcript) can wait: their fetching waits for
a calm moment (`calm`), unless so many are deferred that the intake waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable

# Enough to keep every stage busy; small enough that a card waits behind few others.
WORK_LIMIT = 48
# Finished calls whose details may wait for a calm moment before the intake waits for them.
DEFERRED_LIMIT = 1000
MAX_WAIT = 2.0


class Intake:
    def __init__(
        self,
        elsewhere: Callable[[], int] = lambda: 0,
        deferred: Callable[[], int] = lambda: 0,
        *,
        limit: int = WORK_LIMIT,
        deferred_limit: int = DEFERRED_LIMIT,
        max_wait: float = MAX_WAIT,
    ) -> None:
        self._elsewhere = elsewhere  # work in hand past the inbox: Slack messages ready
        self._deferred = deferred  # work that waits for a calm moment: call details
        self._limit = limit
        self._deferred_limit = deferred_limit
        self._max_wait = max_wait
        self._calm = asyncio.Event()
        self._entering = 0
        self._unapplied = 0
        self._queue: deque[asyncio.Future[None]] = deque()

    def in_hand(self) -> int:
        return self._entering + self._unapplied + self._elsewhere()

    def _room(self) -> bool:
        return self.in_hand() < self._limit and self._deferred() < self._deferred_limit

    def busy(self) -> bool:
        """Whether a webhook is waiting, being taken in, or still leads to work in hand."""
        return bool(self._queue) or self.in_hand() > 0

    def _deferred_due(self) -> bool:
        """Whether deferred work should go now: nothing else is in hand, or the intake is
        waiting for it."""
        return not self.busy() or self._deferred() >= self._deferred_limit

    async def calm(self, max_wait: float) -> None:
        """Until deferred work should go (`_deferred_due`), or `max_wait` seconds."""
        if not self._deferred_due():
            self._calm.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max_wait):
                    await self._calm.wait()

    async def enter(self) -> None:
        """Wait for room, then count this request in until `leave`."""
        if not self._queue and self._room():
            self._entering += 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(turn)
        try:
            async with asyncio.timeout(self._max_wait):
                await turn  # counted in by `progress`
        except TimeoutError:
            if not _granted(turn):
                self._entering += 1  # waited long enough: taken in all the same
        except BaseException:
            if _granted(turn):  # let in, but cancelled before it could go on
                self.leave()
            raise
        finally:
            if not turn.done():
                turn.cancel()
            with contextlib.suppress(ValueError):
                self._queue.remove(turn)

    def leave(self) -> None:
        self._entering -= 1
        self.progress()

    def stored(self, count: int) -> None:
        """Deliveries stored for the worker to apply."""
        self._unapplied += count

    def settled(self, count: int) -> None:
        """Deliveries the worker has tried (applied or kept for later)."""
        self._unapplied = max(0, self._unapplied - count)
        self.progress()

    def progress(self) -> None:
        """Some work was done: let waiting requests in, in order, while there is room."""
        while self._queue and self._room():
            turn = self._queue.popleft()
            if not turn.done():
                self._entering += 1
                turn.set_result(None)
        if self._deferred_due():
            self._calm.set()


def _granted(turn: asyncio.Future[None]) -> bool:
    return turn.done() and not turn.cancelled()
