"""The bot as production runs it (`thunderbot serve` in its own process) against the fake Slack
and the ThunderPhone sandbox, both served from the benchmark's process on loopback."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

from benchmarks.common import Options
from bot.config import Settings
from bot.sandbox.served import ServedBot

# The bot's own defaults, so what is measured is what production runs.
POLL_SECONDS = float(Settings.model_fields["thunderbot_poll_seconds"].default)
THRESHOLD = float(Settings.model_fields["thunderbot_score_threshold"].default)


@contextlib.asynccontextmanager
async def served_bot(options: Options, name: str) -> AsyncIterator[ServedBot]:
    """A fresh bot on a fresh database in `options.workdir / name`. The sandbox's clock is
    manual (runs move only when told), so nothing but the benchmark's own load reaches the bot."""
    workdir = options.workdir / name
    workdir.mkdir(parents=True, exist_ok=True)
    async with ServedBot(workdir, step_seconds=None, poll_seconds=POLL_SECONDS) as bot:
        yield bot


def thunderphone_url(bot: ServedBot) -> str:
    return bot.variables["THUNDERPHONE_BASE_URL"]


class Inbox:
    """Reads the bot's webhook inbox from another connection (the database is in WAL mode, so
    reading never blocks the bot's writes)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def backlog(self) -> int:
        """Deliveries stored and not yet applied."""
        row = self._db.execute(
            "select count(*) from webhook_events where processed_at is null"
        ).fetchone()
        return int(row[0])

    def applied(self) -> int:
        """Deliveries the worker has applied, ever."""
        row = self._db.execute(
            "select count(*) from webhook_events where processed_at is not null"
        ).fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
