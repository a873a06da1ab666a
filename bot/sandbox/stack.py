"""The whole product on loopback: the fake Slack Web API, the ThunderPhone sandbox and the
bot between them, wired as they are in production. Used by `thunderbot demo` and the tests."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.config import Settings
from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_user import SlackUser
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from bot.server import SLACK_ROUTE, create_app
from bot.services import SERVICES, Services
from handlers.webhooks import ROUTE as WEBHOOK_ROUTE

SIGNING_SECRET = "sandbox-signing-secret"
API_KEY = "sk_test_sandbox"
WEBHOOK_SECRET = "whsec_sandbox"


class LocalStack:
    """Start with `async with LocalStack() as stack:`; everything stops on exit."""

    def __init__(
        self,
        *,
        step_seconds: float | None = 0.2,
        poll_seconds: float = 0.5,
        db_path: str | None = None,
        **settings: Any,
    ) -> None:
        self.fake = FakeSlack()
        self.sandbox = ThunderPhoneSandbox(
            api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, step_seconds=step_seconds
        )
        self._poll_seconds = poll_seconds
        self._db_path = db_path
        self._settings_overrides = settings
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runner: web.AppRunner | None = None
        self._users: list[SlackUser] = []
        self.bot_url = ""
        self.settings: Settings | None = None

    async def __aenter__(self) -> LocalStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self.fake.start()
        thunderphone_url = await self.sandbox.start()
        if self._db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="thunderbot-")
            self._db_path = str(Path(self._tmp.name) / "thunderbot.db")
        self.settings = Settings.model_validate(
            {
                "slack_bot_token": self.fake.token,
                "slack_signing_secret": SIGNING_SECRET,
                "slack_api_url": self.fake.api_url,
                "thunderphone_api_key": API_KEY,
                "thunderphone_base_url": thunderphone_url,
                "thunderphone_webhook_secret": WEBHOOK_SECRET,
                "thunderbot_db": self._db_path,
                "thunderbot_poll_seconds": self._poll_seconds,
                # A short call timeout keeps the wait before a lost post is looked for short.
                "thunderbot_slack_timeout": 2.0,
                # The sandbox grades a call moments after it ends.
                "thunderbot_grade_grace": 3.0,
                **self._settings_overrides,
            }
        )
        await self.start_bot()

    async def start_bot(self) -> None:
        """Start (or, after `stop_bot`, restart) the bot on the same database."""
        assert self.settings is not None
        self.app = create_app(self.settings)
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.bot_url = f"http://127.0.0.1:{port}"
        self.sandbox.webhook_url = self.bot_url + WEBHOOK_ROUTE

    async def stop_bot(self) -> None:
        for user in self._users:
            await user.close()
        self._users.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def close(self) -> None:
        await self.stop_bot()
        await self.sandbox.close()
        await self.fake.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    @property
    def events_url(self) -> str:
        return self.bot_url + SLACK_ROUTE

    @property
    def webhook_url(self) -> str:
        return self.bot_url + WEBHOOK_ROUTE

    def user(self, user_id: str = "U0MARIA", channel_id: str = "C0QA") -> SlackUser:
        """A person in the fake workspace whose actions reach the bot signed as Slack signs."""
        user = signed_user(self.fake, self.events_url, user_id, channel_id)
        self._users.append(user)
        return user


def signed_user(fake: FakeSlack, events_url: str, user_id: str, channel_id: str) -> SlackUser:
    """A person in the fake workspace whose requests reach the bot at `events_url` signed with
    the sandbox's signing secret."""
    return SlackUser(
        fake=fake,
        events_url=events_url,
        signing_secret=SIGNING_SECRET,
        user_id=user_id,
        channel_id=channel_id,
    )
