"""The one owner of the messages the bot posts in Slack: stored, paced per channel, exactly once.

Core code says what a message should show (`show`) and moves on; the outbox stores it and a lane
per channel delivers it. Slack has no idempotency key, so a post is never re-sent blindly: a
post is recorded as `posting` before it goes out, every message carries its id in Slack message
metadata, and a post whose answer was lost (or that a restart interrupted) is looked for in the
channel before it is sent again. Edits are idempotent and coalesced: only the latest payload of
a message is sent. A rate-limited or hung channel holds up only its own lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import stamina
from slack_sdk.web.async_client import AsyncWebClient
from sqlite_utils import Database

from bot.blocks.notices import is_shortened, shortened, undeliverable
from bot.slack_errors import SLACK_EXCEPTIONS, Problem, SlackFailure, classify, failure_of
from storage import messages
from storage.db import now_iso
from storage.models import MessageKey, MessageRecord

log = logging.getLogger(__name__)

METADATA_EVENT = "thunderbot_message"
# Rounds of attempts (each a few quick tries) before a message still failing transiently is
# given up: about 20 minutes of Slack trouble with the backoff below.
MAX_ROUNDS = 8
# A message Slack refuses for where it goes (channel gone, bot not in it) is tried this often.
MAX_REFUSALS = 2
HISTORY_PAGES = 3


class SlackCallFailed(Exception):
    def __init__(self, failure: SlackFailure) -> None:
        super().__init__(failure.code)
        self.failure = failure


@dataclass
class _Pace:
    """When a channel may be sent to next (loop times): Slack allows about one post per
    second per channel, and edits of one message are coalesced at the same rate."""

    paused_until: float = 0.0  # Retry-After
    next_post: float = 0.0
    next_edit: dict[int, float] = field(default_factory=dict)

    def forget_before(self, now: float) -> None:
        self.next_edit = {key: at for key, at in self.next_edit.items() if at > now}


@dataclass(frozen=True)
class Delivery:
    """Where a message stands: shown at `ts`, given up (`failed` with Slack's error), or
    neither yet."""

    ts: str | None
    failed: str | None = None


def encoded(payload: dict[str, Any]) -> tuple[str, str]:
    """The payload as stored, and its digest: one encoding serves both."""
    text = json.dumps(payload, sort_keys=True)
    return text, hashlib.sha256(text.encode()).hexdigest()


def digest(payload: dict[str, Any]) -> str:
    return encoded(payload)[1]


def _transient(error: Exception) -> bool:
    return isinstance(error, SlackCallFailed) and error.failure.problem is Problem.TRANSIENT


class Outbox:
    def __init__(
        self,
        db: Database,
        client: AsyncWebClient,
        *,
        post_interval: float = 1.0,
        call_timeout: float = 10.0,
    ) -> None:
        self._db = db
        self._client = client
        self._post_interval = post_interval
        self._call_timeout = call_timeout
        # How long after a post whose answer was lost Slack must have finished with it.
        self._look_grace = timedelta(seconds=2 * call_timeout)
        self._lanes: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._pace: dict[str, _Pace] = {}
        self._changed = asyncio.Condition()
        self._closed = False
        # Messages ready to go out now, by channel (not those Slack's pace holds back).
        self._ready: dict[str, set[int]] = {}
        self._ready_count = 0
        # Called when messages went out: the webhook intake may take more in.
        self.on_progress: Callable[[], None] = lambda: None

    # ------------------------------------------------------------ what core code calls

    def start(self) -> None:
        """Resume the work a previous process left (it survives a restart)."""
        for channel in messages.channels_with_work(self._db):
            self._kick(channel)

    async def close(self) -> None:
        """Stop the lanes; what is not delivered stays stored for the next start."""
        self._closed = True
        lanes = list(self._lanes.values())
        for lane in lanes:
            lane.cancel()
        for lane in lanes:
            with contextlib.suppress(asyncio.CancelledError):
                await lane

    def show(
        self,
        key: MessageKey,
        channel: str,
        payload: dict[str, Any],
        *,
        thread_of: MessageKey | None = None,
        notify_user: str | None = None,
    ) -> None:
        """Make the message `key` show `payload` (posted the first time, edited after), as a
        reply in the thread of `thread_of` when given. `notify_user` is told if it can never be
        delivered."""
        parent = messages.get_message(self._db, thread_of) if thread_of else None
        if thread_of is not None and parent is None:
            raise KeyError(thread_of)
        text, payload_digest = encoded(payload)
        row = messages.want_shown(
            self._db,
            key,
            channel=channel,
            payload=text,
            digest=payload_digest,
            parent_id=parent.id if parent else None,
            notify_user=notify_user,
        )
        if row.state in messages.WORK_STATES:
            self._now_ready(row.channel, {row.id})
            self._kick(row.channel)

    def ready_count(self) -> int:
        """How many messages are ready to go out now."""
        return self._ready_count

    def withdraw(self, key: MessageKey) -> None:
        """The message should not be in Slack: deleted if it got there, never posted if not."""
        row = messages.withdraw(self._db, key)
        if row is not None:
            self._now_ready(row.channel, {row.id})
            self._kick(row.channel)

    def transfer(self, old: MessageKey, new: MessageKey, *, notify_user: str | None) -> None:
        messages.transfer(self._db, old, new, notify_user=notify_user)

    def ts_of(self, key: MessageKey) -> str | None:
        row = messages.get_message(self._db, key)
        return row.ts if row else None

    def channel_of(self, key: MessageKey) -> str | None:
        row = messages.get_message(self._db, key)
        return row.channel if row else None

    async def wait(self, key: MessageKey, timeout: float) -> Delivery:
        """Wait until the message is shown (or deleted, when withdrawn) or given up."""

        def settled() -> Delivery | None:
            row = messages.get_message(self._db, key)
            if row is None:
                return Delivery(None)
            if row.state == "failed":
                return Delivery(row.ts, failed=row.error or "failed")
            if row.state == "sent":
                return Delivery(row.ts)
            return None

        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait_for(settled)
        return settled() or Delivery(None)

    # ------------------------------------------------------------ lanes

    def _now_ready(self, channel: str, ids: set[int]) -> None:
        self._only_ready(channel, self._ready.get(channel, set()) | ids)

    def _only_ready(self, channel: str, ids: set[int]) -> None:
        """The messages of `channel` ready to go out are now `ids`."""
        before = self._ready.pop(channel, set())
        if ids:
            self._ready[channel] = ids
        self._ready_count += len(ids) - len(before)
        if len(ids) < len(before):
            self.on_progress()

    def _kick(self, channel: str) -> None:
        if self._closed:
            return
        self._wake.setdefault(channel, asyncio.Event()).set()
        lane = self._lanes.get(channel)
        if lane is None or lane.done():
            self._lanes[channel] = asyncio.create_task(
                self._lane(channel), name=f"slack-lane-{channel}"
            )

    async def _lane(self, channel: str) -> None:
        """Deliver one channel's messages, paced, until none is left; an unexpected error
        (the database busy, say) pauses the lane instead of ending it."""
        while True:
            try:
                await self._run_lane(channel)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the Slack lane of %s hit an unexpected error", channel)
                await asyncio.sleep(1.0)

    async def _run_lane(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        wake = self._wake.setdefault(channel, asyncio.Event())
        # Kept beyond this task: a lane that ran dry and starts again keeps its pace.
        pace = self._pace.setdefault(channel, _Pace())
        while True:
            wake.clear()
            now = loop.time()
            work = messages.lane_work(self._db, channel)
            if not work:
                pace.forget_before(now)
                del self._lanes[channel]
                self._only_ready(channel, set())
                return
            ready: list[tuple[float, messages.LaneItem]] = []
            for row in work:
                if row.waits_for_parent:
                    continue
                due = max(pace.paused_until, _seconds_until(row.next_attempt_at, now))
                if row.state == "pending" and row.ts is None:
                    due = max(due, pace.next_post)
                elif row.state == "pending":
                    due = max(due, pace.next_edit.get(row.id, 0.0))
                ready.append((due, row))
            self._only_ready(channel, {row.id for due, row in ready if due <= now})
            if not ready:  # replies whose thread's first message is still on its way
                await wake.wait()
                continue
            # Cards first among equals: someone may be waiting on one to start a run.
            due, row = min(ready, key=lambda pair: (pair[0], pair[1].role != "card", pair[1].id))
            if due > now:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(due - now):
                        await wake.wait()
                continue
            try:
                posted = await self._deliver(row.id)
            except SlackCallFailed as error:
                full = messages.get_message_by_id(self._db, row.id)
                if full is not None:
                    pause = self._failed(full, error.failure, now=loop.time())
                    pace.paused_until = pause or pace.paused_until
            except Exception:
                log.exception("delivering Slack message %s failed", row.id)
                full = messages.get_message_by_id(self._db, row.id)
                if full is not None:
                    self._retry_later(full, "unexpected error")
            else:
                if posted:
                    pace.next_post = loop.time() + self._post_interval
                else:
                    pace.next_edit[row.id] = loop.time() + self._post_interval
            self._only_ready(channel, self._ready.get(channel, set()) - {row.id})
            async with self._changed:
                self._changed.notify_all()

    async def _deliver(self, message_id: int) -> bool:
        """One delivery step, retried quickly while Slack gives no clear answer: every retry
        starts again from the stored state, so a post is looked for before it is re-sent.
        Returns whether something was posted."""
        # The first try is made outside the retry loop, which costs more than the step.
        try:
            return await self._step(message_id)
        except SlackCallFailed as error:
            if not _transient(error):
                raise
            failed: SlackCallFailed | None = error
        async for attempt in stamina.retry_context(
            on=_transient, attempts=3, wait_initial=0.5, wait_max=5.0, timeout=60.0
        ):
            with attempt:
                if failed is not None:
                    # The first try's failure, so the loop backs off as after any try.
                    first, failed = failed, None
                    raise first
                return await self._step(message_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _step(self, message_id: int) -> bool:
        row = messages.get_message_by_id(self._db, message_id)
        if row is None or row.state not in messages.WORK_STATES:
            return False
        parent = messages.get_message_by_id(self._db, row.parent_id) if row.parent_id else None
        if row.parent_id is not None and (parent is None or parent.ts is None):
            if parent is not None and parent.state != "failed":
                return False  # the thread's first message is not up yet
            # The thread never made it into Slack, so neither can its replies (for now: they
            # are tried again if it does).
            failed = parent.error if parent is not None else None
            raise SlackCallFailed(failure_of(failed or "thread_not_found"))
        thread_ts = parent.ts if parent else None
        if row.state == "posting" or (row.state == "withdrawn" and row.maybe_posted):
            settled_at = _after(row.posted_at, self._look_grace)
            if settled_at > now_iso():
                # Slack may still be working on a request the bot gave up waiting for: look
                # only once it must have finished, or the look could miss it.
                messages.postpone(self._db, row.id, until=settled_at)
                return False
            found = await self._look_for(row, thread_ts)
            if found is None:
                messages.mark_not_posted(self._db, row.id)
                if row.state == "withdrawn":
                    messages.delete_message(self._db, row.id)
                    return False
            else:
                messages.mark_shown(self._db, row.id, ts=found, digest=row.shown_digest or "")
            row = messages.get_message_by_id(self._db, row.id)
            assert row is not None
        if row.state == "withdrawn":
            await self._delete(row)
            return False
        if row.state != "pending":
            return False
        payload: dict[str, Any] = json.loads(row.payload)
        metadata = {
            "event_type": METADATA_EVENT,
            "event_payload": {
                "message_id": row.id,
                "owner": f"{row.owner_kind}:{row.owner_id}",
                "role": row.role,
            },
        }
        if row.ts is None:
            messages.mark_posting(self._db, row.id, row.digest)
            try:
                response = await self._call(
                    "chat_postMessage",
                    channel=row.channel,
                    thread_ts=thread_ts,
                    metadata=metadata,
                    unfurl_links=False,
                    unfurl_media=False,
                    **payload,
                )
            except SlackCallFailed as error:
                if not error.failure.unclear:  # a clear refusal: nothing was posted
                    messages.mark_not_posted(self._db, row.id)
                raise
            messages.mark_shown(self._db, row.id, ts=str(response["ts"]), digest=row.digest)
            return True
        await self._call(
            "chat_update", channel=row.channel, ts=row.ts, metadata=metadata, **payload
        )
        messages.mark_shown(self._db, row.id, ts=row.ts, digest=row.digest)
        return False

    async def _delete(self, row: MessageRecord) -> None:
        try:
            await self._call("chat_delete", channel=row.channel, ts=row.ts)
        except SlackCallFailed as error:
            if error.failure.problem is not Problem.NO_CHANNEL:
                raise
        messages.delete_message(self._db, row.id)

    async def _look_for(self, row: MessageRecord, thread_ts: str | None) -> str | None:
        """The ts of a message whose post may have reached Slack, found by its metadata.

        Reading needs the bot in the channel: it joins public channels. Where it still cannot
        read, the message counts as not found: a rare duplicate beats a lost result. A join
        that fails for now (rate limited, no clear answer) is no such case: it raises, and the
        look is made again later."""
        for joined in (False, True):
            try:
                return await self._search(row, thread_ts)
            except SlackCallFailed as error:
                failure = error.failure
                if failure.problem not in (Problem.NO_CHANNEL, Problem.AUTH):
                    raise
                if failure.code == "not_in_channel" and not joined:
                    try:
                        await self._call("conversations_join", channel=row.channel)
                    except SlackCallFailed as join_error:
                        if join_error.failure.problem in (Problem.RATE_LIMITED, Problem.TRANSIENT):
                            raise
                    continue
                log.warning(
                    "cannot read %s to look for message %s (%s); posting it again",
                    row.channel,
                    row.id,
                    failure.code,
                )
                return None
        return None

    async def _search(self, row: MessageRecord, thread_ts: str | None) -> str | None:
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            args: dict[str, Any] = {
                "channel": row.channel,
                "include_all_metadata": True,
                "limit": 100,
                "cursor": cursor,
            }
            if thread_ts is None:
                response = await self._call("conversations_history", **args)
            else:
                response = await self._call("conversations_replies", ts=thread_ts, **args)
            for message in response.get("messages") or []:
                payload = (message.get("metadata") or {}).get("event_payload") or {}
                if payload.get("message_id") == row.id and message.get("ts") != thread_ts:
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def _call(self, method: str, **args: Any) -> Any:
        """One Web API call under a real timeout, its failure classified."""
        try:
            async with asyncio.timeout(self._call_timeout):
                return await getattr(self._client, method)(**args)
        except SLACK_EXCEPTIONS as error:
            failure = classify(error)
            log.warning("Slack %s failed: %s (%s)", method, failure.code, failure.problem.value)
            raise SlackCallFailed(failure) from error

    # ------------------------------------------------------------ when Slack says no

    def _failed(self, row: MessageRecord, failure: SlackFailure, *, now: float) -> float | None:
        """Decide what a failure means for the message; returns a pause for the whole lane."""
        current = messages.get_message_by_id(self._db, row.id)
        if current is None:
            return None
        if failure.problem is Problem.RATE_LIMITED:
            return now + (failure.retry_after or 1.0)
        if failure.problem is Problem.TRANSIENT:
            self._retry_later(current, failure.code)
        elif failure.problem is Problem.TOO_LONG and not is_shortened(json.loads(current.payload)):
            text, short_digest = encoded(shortened(json.loads(current.payload), failure.code))
            messages.replace_payload(self._db, row.id, payload=text, digest=short_digest)
        elif failure.problem is Problem.NO_CHANNEL and current.attempts + 1 < MAX_REFUSALS:
            messages.schedule_retry(self._db, row.id, error=failure.code, retry_at=now_iso())
        else:
            self._give_up(current, failure)
        return None

    def _retry_later(self, row: MessageRecord, error: str) -> None:
        delay = min(5 * 2**row.attempts, 300)
        rounds = messages.schedule_retry(
            self._db, row.id, error=error, retry_at=now_iso(-timedelta(seconds=delay))
        )
        if rounds >= MAX_ROUNDS:
            self._give_up(row, SlackFailure(Problem.TRANSIENT, error))

    def _give_up(self, row: MessageRecord, failure: SlackFailure) -> None:
        """Stop trying, and tell the person concerned once, where they can still read it."""
        messages.mark_failed(self._db, row.id, failure.code)
        log.error(
            "gave up on the %s of %s %s in %s: %s",
            row.role,
            row.owner_kind,
            row.owner_id,
            row.channel,
            failure.code,
        )
        if row.notify_user and row.role != "notice" and failure.problem is not Problem.AUTH:
            # One note per thread: a batch whose channel is gone tells its person once.
            root = messages.get_message_by_id(self._db, row.parent_id) if row.parent_id else None
            owner = root if root is not None else row
            notice = (owner.owner_kind, owner.owner_id, "notice")
            if messages.get_message(self._db, notice) is None:
                self.show(
                    notice,
                    row.notify_user,
                    undeliverable(owner.owner_kind, owner.owner_id, row.role, row.channel, failure),
                )


def _after(iso: str | None, delta: timedelta) -> str:
    """An ISO time plus `delta`, as stored (an unknown time counts as long ago)."""
    if not iso:
        return ""
    return (datetime.fromisoformat(iso) + delta).isoformat(timespec="milliseconds")


def _seconds_until(iso: str | None, now: float) -> float:
    """A stored ISO time as a loop time (now if it has passed)."""
    if not iso:
        return now
    delta = (datetime.fromisoformat(iso) - datetime.now(UTC)).total_seconds()
    return now + max(0.0, delta)
