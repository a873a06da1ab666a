"""The Slack side: one Web API client (rate-limit aware) and the Bolt app that uses it."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.bodies import (
    BodyBroken,
    BodyTimeout,
    may_spell_lone_surrogates,
    read_body,
    too_slow,
    whole_characters,
)
from bot.config import Settings
from bot.services import SERVICES, SERVICES_KEY

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
        logger=client_logger(),
    )


def client_logger() -> logging.Logger:
    """slack_sdk's client logger with its own level set to the one in force. Whenever that
    logger's own level is unset, slack_sdk formats a debug line with every request's and
    response's whole content, which logging then drops; with the level set, it skips that
    work, and the same lines are logged as before."""
    logger = logging.getLogger("slack_sdk.web.async_client")
    if logger.level == logging.NOTSET:
        logger.setLevel(logger.getEffectiveLevel())
    return logger


def create_bolt_app(settings: Settings, client: AsyncWebClient) -> AsyncApp:
    bolt = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # Every request is verified before Bolt sees it, as its bytes arrive and before any
        # parsing (`handle_slack_events`); Bolt's own check would hash the same bytes again.
        request_verification_enabled=False,
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


SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_WINDOW = 300  # seconds, as Slack and Bolt allow
_TIMESTAMP_DIGITS = 15


def _unsigned(reason: str) -> web.Response:
    """Bolt's own answer to a request that is not Slack's; the reason goes only to the log."""
    log.warning("rejected a request to the Slack route: %s", reason)
    return web.json_response({"error": "invalid request"}, status=401)


def _header_problem(headers: Mapping[str, str], now: float) -> str | None:
    """Why the signature headers alone show the request is not Slack's, if they do."""
    timestamp = headers.get(TIMESTAMP_HEADER)
    signature = headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        return "no signature"
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= _TIMESTAMP_DIGITS):
        return "unreadable signature timestamp"
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW:
        return f"signature timestamp outside the {SIGNATURE_WINDOW} s window"
    if not signature.startswith("v0="):
        return "unknown signature version"
    return None


async def _verified_body(request: web.Request, settings: Settings) -> str | web.StreamResponse:
    """The body as text, once its signature is known to be Slack's; otherwise the answer.

    The headers are checked before anything is read, and the body is hashed as it arrives, so
    whatever a forger sends (huge, not UTF-8, deeply nested) is refused with 401 without being
    parsed or held. It is the one signature check on this route."""
    problem = _header_problem(request.headers, time.time())
    if problem is not None:
        return _unsigned(problem)
    secret = settings.slack_signing_secret.get_secret_value().encode()
    base = f"v0:{request.headers[TIMESTAMP_HEADER]}:".encode()
    digest = hmac.new(secret, base, hashlib.sha256)
    try:
        body = await read_body(request, timeout=settings.thunderbot_body_timeout, digests=[digest])
    except BodyTimeout as error:
        log.warning("gave up on a request to the Slack route: %s", error)
        return await too_slow(request, error)
    except BodyBroken as error:
        log.warning("gave up on a request to the Slack route: %s", error)
        return web.json_response({"error": "incomplete request"}, status=400)
    expected = ("v0=" + digest.hexdigest()).encode()
    received = request.headers[SIGNATURE_HEADER].encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected, received):
        return _unsigned("signature does not match")
    if body.data is None:
        log.warning("refused a signed Slack request of %d bytes", body.size)
        return web.json_response({"error": "request too large"}, status=413)
    try:
        return body.data.decode("utf-8")
    except UnicodeDecodeError:
        log.warning("refused a signed Slack request whose body is not UTF-8")
        return web.json_response({"error": "body is not UTF-8"}, status=400)


def _bolt_request(request: web.Request, raw: str) -> AsyncBoltRequest:
    bolt_request = AsyncBoltRequest(
        body=raw,
        query=request.query_string,
        headers=request.headers,  # type: ignore[arg-type]
    )
    # Bolt reads any form body containing the text "payload" as an interactivity payload, so a
    # command such as `/testcall run agent:12 "payload questions"` would arrive empty.
    if not bolt_request.body and raw and not raw.startswith("{"):
        form = dict(parse_qsl(raw, keep_blank_values=True))
        if "payload" not in form and "command" in form:
            bolt_request.body = form
            bolt_request.context = build_async_context(AsyncBoltContext({}), form)
    # JSON may spell half of a surrogate pair (`\ud800`), which no UTF-8 can hold: SQLite and
    # every JSON client would fail on it later. It becomes U+FFFD, as undecodable bytes do.
    if may_spell_lone_surrogates(raw):
        bolt_request.body = whole_characters(bolt_request.body)
        bolt_request.context = build_async_context(AsyncBoltContext({}), bolt_request.body)
    return bolt_request


async def handle_slack_events(request: web.Request) -> web.StreamResponse:
    raw = await _verified_body(request, request.app[SERVICES].settings)
    if not isinstance(raw, str):
        return raw
    try:
        bolt_request = _bolt_request(request, raw)
    # Bolt's parser expects a JSON object: `[]`, `null` or `payload=1` fail in it.
    except (ValueError, RecursionError, AttributeError, TypeError) as error:
        log.warning("refused a signed Slack request Bolt cannot read: %s", type(error).__name__)
        return web.json_response({"error": "unreadable request"}, status=400)
    # The listeners find the services here: set once per request, no middleware needed.
    bolt_request.context[SERVICES_KEY] = request.app[SERVICES]
    bolt = request.app[BOLT]
    response: BoltResponse = await bolt.async_dispatch(bolt_request)
    return await to_aiohttp_response(response)
