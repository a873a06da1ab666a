"""Events API: the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext

from bot.blocks.home import home_view
from handlers.context import services_of
from storage import runs as run_store

APP_HOME_OPENED = "app_home_opened"
EVENTS = (APP_HOME_OPENED,)


async def handle_app_home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("tab") != "home":
        return
    services = services_of(context)
    recent = run_store.recent_runs(services.db, context.team_id or "", limit=10)
    rows = [(run, run_store.get_grade(services.db, run.call_id)) for run in recent]
    await services.slack.views_publish(
        user_id=event["user"], view=home_view(rows, services.threshold)
    )


def register(bolt: AsyncApp) -> None:
    bolt.event(APP_HOME_OPENED)(handle_app_home_opened)
