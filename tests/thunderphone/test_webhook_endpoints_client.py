"""The client's webhook-endpoint calls against the ThunderPhone sandbox on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.sandbox.thunderphone import ThunderPhoneSandbox
from bot.thunderphone import (
    ThunderPhoneAuthError,
    ThunderPhoneClient,
    ThunderPhoneInvalid,
    ThunderPhoneUnavailable,
    WebhookEndpoint,
    WebhookEndpointRequest,
)

URL = "https://bot.example.com/webhooks/thunderphone"
EVENTS = ["test-call.completed", "call.graded"]


@pytest.fixture
async def sandbox() -> AsyncIterator[ThunderPhoneSandbox]:
    box = ThunderPhoneSandbox(step_seconds=None, member_api_keys=["sk_test_member"])
    yield box
    await box.close()


@pytest.fixture
async def client(sandbox: ThunderPhoneSandbox) -> AsyncIterator[ThunderPhoneClient]:
    base_url = await sandbox.start()
    async with ThunderPhoneClient(base_url=base_url, api_key=sandbox.api_key) as tp:
        yield tp


async def test_create_then_list(sandbox: ThunderPhoneSandbox, client: ThunderPhoneClient) -> None:
    created = await client.create_webhook_endpoint(
        WebhookEndpointRequest(label="thunderbot", url=URL, events=EVENTS)
    )
    assert created.secret == sandbox.endpoint_secrets[created.id]
    assert created.secret_hint.endswith(created.secret[-6:])
    [listed] = await client.list_webhook_endpoints()
    assert (listed.id, listed.url, listed.events, listed.status) == (
        created.id,
        URL,
        EVENTS,
        "active",
    )
    sent = [r for r in sandbox.requests if r.method == "POST"]
    assert [(r.path, r.json) for r in sent] == [
        (
            "/v1/developer/webhook-endpoints",
            {"label": "thunderbot", "url": URL, "events": EVENTS},
        )
    ]


async def test_a_create_is_never_retried(
    sandbox: ThunderPhoneSandbox, client: ThunderPhoneClient
) -> None:
    sandbox.fail_next("POST", "/v1/developer/webhook-endpoints", 503, {"detail": "down"})
    with pytest.raises(ThunderPhoneUnavailable):
        await client.create_webhook_endpoint(WebhookEndpointRequest(label="x", url=URL))
    assert [r.method for r in sandbox.requests] == ["POST"]


async def test_field_errors_and_a_members_key(sandbox: ThunderPhoneSandbox) -> None:
    base_url = await sandbox.start()
    async with ThunderPhoneClient(base_url=base_url, api_key=sandbox.api_key) as admin:
        with pytest.raises(ThunderPhoneInvalid, match="URL: Enter a valid URL"):
            await admin.create_webhook_endpoint(WebhookEndpointRequest(label="x", url="nope"))
    async with ThunderPhoneClient(base_url=base_url, api_key="sk_test_member") as member:
        assert [agent.id for agent in await member.list_agents()] == [12, 13, 14]
        with pytest.raises(ThunderPhoneAuthError) as refused:
            await member.list_webhook_endpoints()
    assert refused.value.status == 403
    assert sandbox.webhook_endpoints == {}


async def test_a_test_send_to_nowhere_says_so(
    sandbox: ThunderPhoneSandbox, client: ThunderPhoneClient
) -> None:
    endpoint = sandbox.add_webhook_endpoint("http://127.0.0.1:1/webhooks/thunderphone")
    result = await client.test_webhook_endpoint(endpoint["id"], "test-call.completed")
    assert (result.success, result.response_code, result.event_type) == (
        False,
        None,
        "test-call.completed",
    )
    assert result.error
    [sent] = [r for r in sandbox.requests if r.method == "POST"]
    assert sent.path == f"/v1/developer/webhook-endpoints/{endpoint['id']}/test"
    assert sent.json == {"event_type": "test-call.completed"}


def test_endpoints_parse_tolerantly() -> None:
    endpoint = WebhookEndpoint.parse({"id": 7, "url": URL, "events": None, "status": 3})
    assert (endpoint.id, endpoint.events, endpoint.status) == ("7", [], "")
    assert endpoint.receives("call.graded"), "no events listed means every event"
    narrow = WebhookEndpoint.parse({"id": "e", "url": URL, "events": ["call.graded"]})
    assert narrow.receives("call.graded") and not narrow.receives("test-call.completed")
