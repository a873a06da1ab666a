"""`POST /webhooks/thunderphone`: verify, check the shape, store, answer; the worker applies.

An accepted delivery is in the database before ThunderPhone gets its 2xx, so a crash right
after the answer loses nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging

from aiohttp import web

from bot.bodies import MAX_BODY_BYTES, BodyBroken, BodyTimeout, read_body, too_slow
from bot.ingest import Delivery
from bot.reconcile import HANDLED_EVENTS
from bot.services import SERVICES, Services
from bot.thunderphone import (
    PendingCheck,
    SignatureCheck,
    ThunderPhoneError,
    WebhookEvent,
    start_webhook_check,
)
from bot.thunderphone.models import check_call_graded, check_test_call_completed

log = logging.getLogger(__name__)

ROUTE = "/webhooks/thunderphone"


# The answers to nearly every delivery, encoded once.
_STORED = json.dumps({"ok": True, "duplicate": False}).encode()
_DUPLICATE = json.dumps({"ok": True, "duplicate": True}).encode()


def _reject(status: int, reason: str) -> web.Response:
    return web.json_response({"ok": False, "error": reason}, status=status)


async def handle_thunderphone(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    settings = services.settings
    pending = start_webhook_check(
        request.headers,
        method=request.method,
        path=request.raw_path,
        secrets=settings.webhook_secrets,
        require_v2=settings.thunderphone_require_v2_signature,
    )
    if isinstance(pending, SignatureCheck):  # refused on its headers, the body unread
        log.warning("rejected a webhook: %s", pending.reason)
        return _reject(401, pending.reason)
    # Taken in no faster than the work it leads to gets done (bot.intake).
    await services.intake.enter()
    try:
        return await _take(request, services, pending)
    finally:
        services.intake.leave()


async def _take(
    request: web.Request, services: Services, pending: PendingCheck
) -> web.StreamResponse:
    settings = services.settings
    try:
        received = await read_body(
            request, timeout=settings.thunderbot_body_timeout, digests=pending.digests
        )
    except BodyTimeout as error:
        log.warning("gave up on a webhook: %s", error)
        return await too_slow(request, error)
    except BodyBroken as error:
        log.warning("gave up on a webhook: %s", error)
        return _reject(400, "incomplete body")
    # Every byte went to the signature's HMACs as it came: this is the one signature check.
    if not pending.matches():
        log.warning("rejected a webhook: signature does not match")
        return _reject(401, "signature does not match")
    if received.data is None:
        log.warning("refused a signed webhook of %d bytes", received.size)
        return _reject(413, f"body over {MAX_BODY_BYTES} bytes")
    body = received.data
    try:
        text = body.decode("utf-8")
        event = WebhookEvent.from_body(text)
        # Enough to know whom it is about; the worker reads the rest.
        run_id = None
        if event.type == "test-call.completed":
            run_id = check_test_call_completed(event.data, raw=text)
        elif event.type == "call.graded":
            check_call_graded(event.data, raw=text)
    # UnicodeDecodeError is a ValueError; RecursionError is JSON nested too deep to read.
    except (ThunderPhoneError, ValueError, RecursionError) as error:
        reason = f"unreadable event: {error}"[:300]
        log.warning("refused a signed webhook: %s", reason)
        return _reject(400, reason)
    if event.type not in HANDLED_EVENTS:
        return web.json_response({"ok": True, "ignored": event.type}, status=202)
    key = event.event_id or hashlib.sha256(body).hexdigest()
    fresh = await services.ingest.store(Delivery(key, event.type, text, run_id))
    return web.Response(body=_STORED if fresh else _DUPLICATE, content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app.router.add_post(ROUTE, handle_thunderphone)
