"""Who is in a channel or a user group, as Slack says, remembered for a minute.

When Slack cannot say (an error, a missing scope, no answer), the lookup says why and the
caller fails closed; that is remembered for a few seconds only, so a page that names many
channels does not ask again for each one at once, and a fixed scope is noticed soon.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack_errors import SLACK_EXCEPTIONS, classify

CACHE_SECONDS = 60.0
FAILURE_SECONDS = 15.0
MAX_ENTRIES = 10_000
MAX_PAGES = 20  # 20 000 members: past that, a channel is treated as unknown
PAGE_SIZE = 1000
# A lookup may run before a slash command's ack, which Slack awaits for 3 s: one that takes
# longer counts as Slack not saying.
LOOKUP_SECONDS = 2.0


@dataclass(frozen=True)
class Members:
    """The people in a channel or group; `problem` (Slack's error code) when Slack couldn't
    say, and then `ids` is empty."""

    ids: frozenset[str] = frozenset()
    problem: str | None = None

    @property
    def known(self) -> bool:
        return self.problem is None


@dataclass
class PeopleCache:
    seconds: float = CACHE_SECONDS
    failure_seconds: float = FAILURE_SECONDS
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], tuple[float, Members]] = field(default_factory=dict)

    async def channel_members(self, slack: AsyncWebClient, channel: str) -> Members:
        """The people in `channel` (conversations.members)."""

        async def fetch() -> frozenset[str]:
            found: set[str] = set()
            cursor = ""
            for _ in range(MAX_PAGES):
                page = await slack.conversations_members(
                    channel=channel, limit=PAGE_SIZE, cursor=cursor or None
                )
                found.update(str(member) for member in page.get("members") or [])
                cursor = _next_cursor(page)
                if not cursor:
                    return frozenset(found)
            raise ValueError("too many members to list")

        return await self._look_up(("channel", channel), fetch)

    async def group_members(
        self, slack: AsyncWebClient, group: str, *, seconds: float = LOOKUP_SECONDS
    ) -> Members:
        """The people in user group `group` (usergroups.users.list); Slack not answering
        within `seconds` counts as not saying."""

        async def fetch() -> frozenset[str]:
            answer = await slack.usergroups_users_list(usergroup=group)
            return frozenset(str(user) for user in answer.get("users") or [])

        return await self._look_up(("group", group), fetch, seconds)

    def forget(self) -> None:
        self._entries.clear()

    async def _look_up(
        self,
        key: tuple[str, str],
        fetch: Callable[[], Awaitable[frozenset[str]]],
        seconds: float = LOOKUP_SECONDS,
    ) -> Members:
        now = self.clock()
        cached = self._entries.get(key)
        if cached is not None:
            at, members = cached
            if now - at < (self.seconds if members.known else self.failure_seconds):
                return members
        try:
            async with asyncio.timeout(seconds):
                found = Members(await fetch())
        except SLACK_EXCEPTIONS as error:
            code = classify(error).code if not isinstance(error, ValueError) else str(error)
            found = Members(problem=code or "no answer")
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[key] = (now, found)
        return found


def _next_cursor(page: Any) -> str:
    metadata = page.get("response_metadata") or {}
    return str(metadata.get("next_cursor") or "")
