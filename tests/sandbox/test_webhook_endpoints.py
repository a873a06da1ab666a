"""The sandbox's webhook endpoints over loopback HTTP: SDK shapes, validation, admin keys, and
test sends that reach a real receiver signed with the endpoint's own secret."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from thunderphone.generated.models import (
    DeveloperWebhookEndpoint,
    DeveloperWebhookTestDelivery,
    WebhookCreated,
)
from thunderphone.webhooks import verify_signature

from bot.sandbox.thunderphone import ThunderPhoneSandbox

ADMIN = {"Authorization": "Bearer sk_test_sandbox"}
MEMBER = {"Authorization": "Bearer sk_test_member"}
ENDPOINTS = "/developer/webhook-endpoints"
GOOD = {
    "label": "thunderbot",
    "url": "https://bot.example.com/webhooks/thunderphone",
    "events": ["test-call.completed", "call.graded"],
}


class Receiver:
    """Answers `status` to every POST and keeps what arrived, with whether it verified."""

    def __init__(self, secret: str, status: int = 202) -> None:
        self.secret = secret
        self.status = status
        self.received: list[tuple[bool, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/webhooks/thunderphone", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/webhooks/thunderphone"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        verified = verify_signature(
            request.headers.get("X-ThunderPhone-Signature-V2"),
            secret=self.secret,
            method=request.method,
            path=request.raw_path,
            body=raw,
        )
        self.received.append((verified, json.loads(raw)))
        return web.Response(status=self.status if verified else 401)


@pytest.fixture
async def sandbox() -> AsyncIterator[ThunderPhoneSandbox]:
    box = ThunderPhoneSandbox(step_seconds=None, member_api_keys=["sk_test_member"])
    yield box
    await box.close()


@pytest.fixture
async def api(sandbox: ThunderPhoneSandbox) -> AsyncIterator[httpx.AsyncClient]:
    base = await sandbox.start()
    async with httpx.AsyncClient(base_url=f"{base}/v1", headers=ADMIN) as client:
        yield client


async def test_created_and_listed_endpoints_parse_with_the_sdk(api: httpx.AsyncClient) -> None:
    created = await api.post(ENDPOINTS, json=GOOD)
    assert created.status_code == 201, created.text
    parsed = WebhookCreated.from_dict(created.json())
    assert parsed.secret.startswith("whsec_") and len(parsed.secret) > 30
    assert parsed.secret_hint == f"whsec_…{parsed.secret[-6:]}"
    assert (parsed.label, parsed.url, parsed.events) == (GOOD["label"], GOOD["url"], GOOD["events"])
    assert parsed.status is not None and parsed.status.value == "active"
    listed = (await api.get(ENDPOINTS)).json()
    assert [DeveloperWebhookEndpoint.from_dict(e).id for e in listed] == [parsed.id]
    assert "secret" not in listed[0], "the secret is shown once, when the endpoint is created"


async def test_no_events_means_every_event(api: httpx.AsyncClient) -> None:
    created = await api.post(ENDPOINTS, json={"label": "all", "url": GOOD["url"]})
    assert created.status_code == 201, created.text
    assert created.json()["events"] == []


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"label": ["This field is required."], "url": ["This field is required."]}),
        ({**GOOD, "label": " "}, {"label": ["This field may not be blank."]}),
        (
            {**GOOD, "label": "x" * 121},
            {"label": ["Ensure this field has no more than 120 characters."]},
        ),
        ({**GOOD, "url": "bot.example.com/hook"}, {"url": ["Enter a valid URL."]}),
        (
            {**GOOD, "url": "http://bot.example.com/webhooks/thunderphone"},
            {"url": ["Webhook URLs must use https (http is allowed only for localhost)."]},
        ),
        (
            {**GOOD, "events": ["test-call.completed", "call.finished"]},
            {"events": ['"call.finished" is not a valid choice.']},
        ),
        (
            {**GOOD, "events": "call.graded"},
            {"events": ['Expected a list of items but got type "str".']},
        ),
    ],
)
async def test_bad_endpoints_get_field_errors_and_nothing_is_created(
    sandbox: ThunderPhoneSandbox,
    api: httpx.AsyncClient,
    body: dict[str, Any],
    errors: dict[str, list[str]],
) -> None:
    answer = await api.post(ENDPOINTS, json=body)
    assert (answer.status_code, answer.json()) == (400, errors)
    assert sandbox.webhook_endpoints == {}


async def test_http_is_allowed_for_localhost(api: httpx.AsyncClient) -> None:
    local = {**GOOD, "url": "http://localhost:3000/webhooks/thunderphone"}
    assert (await api.post(ENDPOINTS, json=local)).status_code == 201


async def test_a_member_key_may_not_manage_endpoints(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    assert (await api.get("/agents", headers=MEMBER)).status_code == 200
    for answer in (
        await api.get(ENDPOINTS, headers=MEMBER),
        await api.post(ENDPOINTS, json=GOOD, headers=MEMBER),
    ):
        assert answer.status_code == 403
        assert answer.json() == {"detail": "You do not have permission to perform this action."}
    assert sandbox.webhook_endpoints == {}
    wrong = await api.get(ENDPOINTS, headers={"Authorization": "Bearer sk_live_nope"})
    assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid API key."})


async def test_a_test_send_is_signed_with_the_endpoints_secret(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    receiver = Receiver(secret="")
    try:
        url = await receiver.start()
        created = await api.post(ENDPOINTS, json={**GOOD, "url": url})
        receiver.secret = created.json()["secret"]
        endpoint = created.json()
        answer = await api.post(f"{ENDPOINTS}/{endpoint['id']}/test")
    finally:
        await receiver.close()
    assert answer.status_code == 200, answer.text
    result = DeveloperWebhookTestDelivery.from_dict(answer.json())
    assert (result.success, result.response_code, result.status, result.error) == (
        True,
        202,
        "delivered",
        "",
    )
    assert result.event_type == "webhook.test"
    [(verified, event)] = receiver.received
    assert verified
    assert event["type"] == "webhook.test" and event["event_id"] == str(result.event_id)
    assert event["data"]["endpoint_id"] == endpoint["id"]


async def test_a_test_send_reports_what_the_receiver_answered(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    receiver = Receiver("whsec_not_the_endpoints")
    try:
        endpoint = sandbox.add_webhook_endpoint(await receiver.start())
        answer = await api.post(
            f"{ENDPOINTS}/{endpoint['id']}/test", json={"event_type": "test-call.completed"}
        )
    finally:
        await receiver.close()
    assert answer.json() | {"event_id": "-"} == {
        "event_id": "-",
        "event_type": "test-call.completed",
        "status": "failed",
        "success": False,
        "response_code": 401,
        "error": "HTTP 401",
    }
    [(verified, event)] = receiver.received
    assert not verified
    assert event["data"]["test_call_run"]["status"] == "completed"


async def test_a_test_send_to_nowhere_has_no_response_code(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    endpoint = sandbox.add_webhook_endpoint("http://127.0.0.1:1/webhooks/thunderphone")
    answer = (await api.post(f"{ENDPOINTS}/{endpoint['id']}/test")).json()
    assert (answer["success"], answer["response_code"], answer["status"]) == (False, None, "failed")
    assert answer["error"].startswith("ClientConnectorError"), answer
    assert [d.event_id for d in sandbox.deliveries] == [answer["event_id"]]


async def test_test_sends_check_the_event_type_and_the_endpoint(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    endpoint = sandbox.add_webhook_endpoint("http://127.0.0.1:1/webhooks/thunderphone")
    bad = await api.post(f"{ENDPOINTS}/{endpoint['id']}/test", json={"event_type": "nope"})
    assert (bad.status_code, bad.json()) == (400, {"event_type": ['"nope" is not a valid choice.']})
    missing = await api.post(f"{ENDPOINTS}/{uuid.uuid4()}/test")
    assert (missing.status_code, missing.json()) == (404, {"detail": "Not found."})
    assert sandbox.deliveries == []
