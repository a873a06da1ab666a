"""Events API: the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.home import publish_home
from handlers.context import services_of

APP_HOME_OPENED = "app_home_opened"
EVENTS = (APP_HOME_OPENED,)


async def handle_app_home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("tab") == "home":
        await publish_home(
            services_of(context), team_id=context.team_id or "", user_id=event["user"]
        )


def register(bolt: AsyncApp) -> None:
    bolt.event(APP_HOME_OPENED)(handle_app_home_opened)
