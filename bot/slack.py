"""The Slack side: one Web API client (rate-limit aware) and the Bolt app that uses it."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings

log = logging.getLogger(__name__)

BOLT = web.AppKey("bolt", AsyncApp)


def create_slack_session(settings: Settings) -> aiohttp.ClientSession:
    """One session for every Slack call. slack_sdk applies its own timeout only to sessions it
    makes itself, so the configured one is set here."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.thunderbot_slack_timeout)
    )


def create_slack_client(settings: Settings, session: aiohttp.ClientSession) -> AsyncWebClient:
    """A Web API client that never re-sends a request: a repeated chat.postMessage whose answer
    was lost would post twice (Slack has no idempotency key). The outbox decides what may be
    tried again; modals and ephemerals are not worth a second try."""
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value() or None,
        base_url=settings.slack_api_url,
        session=session,
        timeout=max(1, round(settings.thunderbot_slack_timeout)),
        retry_handlers=[],
    )


def create_bolt_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    bolt = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
    )
    bolt.error(_on_error)
    return bolt


async def _on_error(error: Exception, body: dict[str, Any], respond: Any, logger: Any) -> None:
    """One place where unexpected failures are logged and told to the person, never swallowed."""
    log.exception("handling a Slack request failed", exc_info=error)
    if body.get("response_url"):
        await respond(
            response_type="ephemeral",
            replace_original=False,
            text="Something went wrong on my side. Try again in a minute: a test call that "
            "already started is never started twice. If it keeps happening, tell whoever runs "
            "thunderbot.",
        )


async def _bolt_request(request: web.Request) -> AsyncBoltRequest:
    bolt_request = await to_bolt_request(request)
    raw = bolt_request.raw_body
    # Bolt reads any form body containing the text "payload" as an interactivity payload, so a
    # command such as `/testcall run agent:12 "payload questions"` would arrive empty.
    if not bolt_request.body and raw and not raw.startswith("{"):
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if "payload" not in form and "command" in form:
            bolt_request.body = form
            bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    return bolt_request


async def handle_slack_events(request: web.Request) -> web.Response:
    bolt = request.app[BOLT]
    response: BoltResponse = await bolt.async_dispatch(await _bolt_request(request))
    return await to_aiohttp_response(response)
