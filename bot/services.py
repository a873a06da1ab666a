"""The long-lived parts the handlers and the core share; built once per app."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlite_utils import Database

from bot.config import Settings
from bot.thunderphone import ThunderPhoneClient


@dataclass
class Services:
    settings: Settings
    db: Database
    thunderphone: ThunderPhoneClient
    slack: AsyncWebClient
    # One lock per run: webhooks, polling and clicks about the same run take turns, so a
    # result is posted once and edits land in order.
    run_locks: defaultdict[int, asyncio.Lock] = field(
        default_factory=lambda: defaultdict(asyncio.Lock)
    )
    # Wakes the inbox worker when a webhook was stored.
    inbox_signal: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def threshold(self) -> float:
        return self.settings.thunderbot_score_threshold


SERVICES = web.AppKey("services", Services)
