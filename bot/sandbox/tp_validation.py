"""Request checks for the ThunderPhone sandbox: the API key, then the JSON body.

Bodies are checked the way the real API's serializers check them: errors are keyed by
field name in the order found, and missing optional fields get their defaults filled in.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from bot.sandbox import tp_scenarios as sc
from bot.sandbox.tp_scenarios import JSON

CONSENT_MESSAGE = (
    "Test calls are billed at 2x the normal rate. Set consent_to_charge to true to confirm."
)
E164_MESSAGE = "Enter a valid phone number in E.164 format, like +14155550123."
REQUIRED = "This field is required."
PERMISSION_MESSAGE = "You do not have permission to perform this action."
HTTPS_MESSAGE = "Webhook URLs must use https (http is allowed only for localhost)."
# The event types an endpoint may subscribe to (the SDK's enum); `webhook.test` only for tests.
EVENT_TYPES = (
    "alert.triggered",
    "call.data_extracted",
    "call.graded",
    "call.transfer_completed",
    "campaign.completed",
    "issue.escalated",
    "issue.reported",
    "sms.failed",
    "sms.received",
    "sms.sent",
    "telephony.complete",
    "telephony.incoming",
    "telephony.tool",
    "telephony.turn",
    "test-call.completed",
    "web.complete",
    "web.incoming",
    "web.tool",
    "web.turn",
)
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class ParsedBody:
    """A request body as read once by the middleware."""

    malformed: bool = False
    value: Any = None

    @classmethod
    def parse(cls, raw: bytes) -> ParsedBody:
        parsed = cls()
        if raw.strip():
            try:
                parsed.value = json.loads(raw)
            except ValueError:
                parsed.malformed = True
        return parsed


PARSED_BODY = web.RequestKey("tp_parsed_body", ParsedBody)


def object_body(request: web.Request) -> JSON | web.Response:
    """The JSON object body, or the 400 response a malformed body deserves."""
    if request[PARSED_BODY].malformed:
        return web.json_response({"detail": "JSON parse error"}, status=400)
    body = request[PARSED_BODY].value
    if body is None:
        return {}
    if not isinstance(body, dict):
        got = type(body).__name__
        msg = f"Invalid data. Expected a dictionary, but got {got}."
        return web.json_response({"non_field_errors": [msg]}, status=400)
    return dict(body)


def unauthorized(request: web.Request, api_keys: str | Collection[str]) -> web.Response | None:
    """The 401 response for a missing or wrong API key, or None when the key is one of these."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not token.strip():
        return _unauthorized("Authentication credentials were not provided.")
    keys = [api_keys] if isinstance(api_keys, str) else api_keys
    if not any(holds_key(request, key) for key in keys):
        return _unauthorized("Invalid API key.")
    return None


def holds_key(request: web.Request, api_key: str) -> bool:
    """Whether the request's bearer token is this key."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme == "Bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


def _unauthorized(detail: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="api"'}
    return web.json_response({"detail": detail}, status=401, headers=headers)


@dataclass
class Errors:
    """Field errors in the order they were found."""

    fields: dict[str, list[str]] = field(default_factory=dict)

    def add(self, name: str, message: str) -> None:
        self.fields.setdefault(name, []).append(message)


def _as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _choice(
    body: JSON, name: str, choices: tuple[str, ...], default: str | None, errs: Errors
) -> None:
    if name not in body:
        if default is None:
            errs.add(name, REQUIRED)
        else:
            body[name] = default
    elif body[name] not in choices:
        errs.add(name, f'"{body[name]}" is not a valid choice.')


def _bounded(body: JSON, name: str, low: int, high: int, default: int, errs: Errors) -> None:
    value = _as_int(body.setdefault(name, default))
    if value is None:
        errs.add(name, "A valid integer is required.")
    elif value < low:
        errs.add(name, f"Ensure this value is greater than or equal to {low}.")
    elif value > high:
        errs.add(name, f"Ensure this value is less than or equal to {high}.")


def _string(body: JSON, name: str, errs: Errors, default: str = "") -> None:
    if not isinstance(body.setdefault(name, default), str):
        errs.add(name, "Not a valid string.")


def _target(body: JSON, errs: Errors) -> sc.Target | None:
    _choice(body, "target_type", ("agent", "phone_number"), None, errs)
    _choice(body, "direction", ("outbound", "inbound"), "outbound", errs)
    _choice(body, "mode", ("bot", "sip"), "bot", errs)
    if body.get("consent_to_charge") is not True:
        errs.add("consent_to_charge", CONSENT_MESSAGE)
    _string(body, "target_number", errs)
    number = body["target_number"]
    if isinstance(number, str) and number and not _E164.match(number):
        errs.add("target_number", E164_MESSAGE)
    for name in ("language", "primary_language", "scenario_mode", "simulator_product"):
        if name in body:
            _string(body, name, errs)
    target: sc.Target | None = None
    if "target_id" not in body:
        errs.add("target_id", REQUIRED)
    elif (target_id := _as_int(body["target_id"])) is None:
        errs.add("target_id", "A valid integer is required.")
    elif "target_type" not in errs.fields:
        target = sc.find_target(body["target_type"], target_id)
        if target is None:
            noun = body["target_type"].replace("_", " ")
            errs.add("target_id", f"No {noun} with id {target_id} in this organization.")
    return target


def run_request(body: JSON) -> tuple[Errors, sc.Target | None]:
    """Check and default a POST /v1/test-calls body; the target is None when invalid."""
    errs = Errors()
    _string(body, "scenario_prompt", errs)
    return errs, _target(body, errs)


def batch_request(body: JSON) -> tuple[Errors, sc.Target | None]:
    """Check and default a POST /v1/test-call-batches body."""
    errs = Errors()
    target = _target(body, errs)
    _bounded(body, "run_count", 1, 20, 3, errs)
    _bounded(body, "stagger_seconds", 0, 60, 5, errs)
    _string(body, "name", errs)
    prompts = body.setdefault("scenario_prompts", [])
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        errs.add("scenario_prompts", 'Expected a list of items but got type "str".')
    return errs, target


def issue_request(body: JSON) -> Errors:
    """Check and default a POST /v1/calls/{id}/issue-reports body."""
    errs = Errors()
    title = body.get("title")
    if not isinstance(title, str):
        errs.add("title", REQUIRED if title is None else "Not a valid string.")
    elif not title.strip():
        errs.add("title", "This field may not be blank.")
    elif len(title) > 255:
        errs.add("title", "Ensure this field has no more than 255 characters.")
    _string(body, "description", errs)
    _choice(body, "severity", ("info", "warning", "critical"), "warning", errs)
    _choice(body, "source", ("user", "system"), "user", errs)
    for name in ("timestamp_seconds", "failing_turn_index"):
        if body.setdefault(name, None) is not None and _as_int(body[name]) is None:
            errs.add(name, "A valid integer is required.")
    if not isinstance(body.setdefault("metadata", {}), dict):
        errs.add("metadata", 'Expected a dictionary of items but got type "str".')
    return errs


def endpoint_request(body: JSON) -> Errors:
    """Check and default a POST /v1/developer/webhook-endpoints body."""
    errs = Errors()
    label = body.get("label")
    if not isinstance(label, str):
        errs.add("label", REQUIRED if label is None else "Not a valid string.")
    elif not label.strip():
        errs.add("label", "This field may not be blank.")
    elif len(label) > 120:
        errs.add("label", "Ensure this field has no more than 120 characters.")
    url = body.get("url")
    if not isinstance(url, str):
        errs.add("url", REQUIRED if url is None else "Not a valid string.")
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or " " in url:
            errs.add("url", "Enter a valid URL.")
        elif parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1"):
            errs.add("url", HTTPS_MESSAGE)
    events = body.setdefault("events", [])
    if not isinstance(events, list):
        errs.add("events", f'Expected a list of items but got type "{type(events).__name__}".')
    else:
        for event in events:
            if event not in EVENT_TYPES:
                errs.add("events", f'"{event}" is not a valid choice.')
    _choice(body, "status", ("active", "disabled", "failing"), "active", errs)
    agent_id = body.setdefault("agent_id", None)
    if agent_id is not None and (_as_int(agent_id) is None or agent_id not in sc.AGENTS):
        errs.add("agent_id", f'Invalid pk "{agent_id}" - object does not exist.')
    return errs


def endpoint_test_request(body: JSON) -> Errors:
    """Check and default a POST /v1/developer/webhook-endpoints/{id}/test body."""
    errs = Errors()
    event_type = body.setdefault("event_type", "webhook.test")
    if event_type != "webhook.test" and event_type not in EVENT_TYPES:
        errs.add("event_type", f'"{event_type}" is not a valid choice.')
    return errs
