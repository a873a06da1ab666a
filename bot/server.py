"""The one aiohttp server: Slack on /slack/events, ThunderPhone on /webhooks/thunderphone,
and /healthz. Clients, the database and the background worker live and die with the app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

import handlers
from bot.config import Settings
from bot.outbox import Outbox
from bot.reconcile import fetch_details_forever, run_forever
from bot.services import SERVICES, Services
from bot.slack import (
    BOLT,
    create_bolt_app,
    create_slack_client,
    create_slack_session,
    handle_slack_events,
)
from bot.thunderphone import ThunderPhoneClient
from handlers import webhooks
from storage.db import open_db

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
SLACK_ROUTE = "/slack/events"


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_post(SLACK_ROUTE, handle_slack_events)
    webhooks.setup_routes(app)
    app.router.add_get("/healthz", handle_healthz)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = open_db(settings.thunderbot_db)
    session = create_slack_session(settings)
    thunderphone = ThunderPhoneClient(
        base_url=settings.thunderphone_base_url,
        api_key=settings.thunderphone_api_key.get_secret_value(),
    )
    slack = create_slack_client(settings, session)
    outbox = Outbox(
        db,
        slack,
        post_interval=settings.thunderbot_post_interval,
        call_timeout=settings.thunderbot_slack_timeout,
    )
    services = Services(
        settings=settings, db=db, thunderphone=thunderphone, slack=slack, outbox=outbox
    )
    bolt = create_bolt_app(settings, slack)
    handlers.register_all(bolt)
    app[SERVICES] = services
    app[BOLT] = bolt
    outbox.start()
    worker = asyncio.create_task(run_forever(services), name="thunderbot-worker")
    details = asyncio.create_task(fetch_details_forever(services), name="thunderbot-details")
    try:
        yield
    finally:
        # Stop taking on work first; what Slack has not received stays stored for next time.
        for task in (worker, details):
            task.cancel()
        for task in (worker, details):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await outbox.close()
        await thunderphone.aclose()
        await session.close()
        db.close()


async def handle_healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    services.db.execute("select 1").fetchone()
    return web.json_response({"ok": True})
