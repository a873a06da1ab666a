"""Random faults of the ThunderPhone sandbox and the fake Slack, over real loopback HTTP: what a
client sees when webhooks are dropped, repeated or shuffled, when the API answers 5xx, 429 or
late, and when Slack answers in 429 bursts, errors, loses answers or hangs. Seeded, so a run
can be repeated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest

from bot.sandbox.slack import FakeSlack, SlackChaos
from bot.sandbox.thunderphone import ApiFaults, ThunderPhoneSandbox, WebhookFaults
from tests.sandbox.test_thunderphone_sandbox import AUTH, BASE_RUN, Receiver, finish, start_run


@pytest.fixture
async def sandbox() -> AsyncIterator[ThunderPhoneSandbox]:
    box = ThunderPhoneSandbox(step_seconds=None, webhook_retry_base_seconds=0.01)
    yield box
    await box.close()


@pytest.fixture
async def api(sandbox: ThunderPhoneSandbox) -> AsyncIterator[httpx.AsyncClient]:
    base = await sandbox.start()
    async with httpx.AsyncClient(base_url=f"{base}/v1", headers=AUTH) as client:
        yield client


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    yield hook
    await hook.close()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


async def post_message(session: aiohttp.ClientSession, fake: FakeSlack) -> tuple[int, str]:
    """One chat.postMessage as a client sends it: the HTTP status and the error, if any."""
    headers = {"Authorization": f"Bearer {fake.token}"}
    body = {"channel": "C0QA", "text": "hello"}
    try:
        async with session.post(
            fake.api_url + "chat.postMessage", json=body, headers=headers
        ) as response:
            if response.content_type != "application/json":
                return response.status, await response.text()
            answer = await response.json()
            return response.status, str(answer.get("error") or "")
    except aiohttp.ClientError as error:
        return 0, type(error).__name__


async def test_dropped_webhooks_are_never_sent(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    sandbox.webhook_faults = WebhookFaults(drop=1.0)
    run = await start_run(api)
    await finish(sandbox, run["id"])
    await sandbox.wait_until_settled()
    assert receiver.received == []
    assert [kind for _, kind in sandbox.webhook_faults.dropped] == [
        "test-call.completed",
        "call.graded",
    ]
    # What was dropped is still there to read: the run is over and graded.
    listed = (await api.get("/test-calls")).json()
    assert listed[0]["status"] == "completed" and listed[0]["grade"]["score"] is not None


async def test_duplicated_webhooks_repeat_the_event_id(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    sandbox.webhook_faults = WebhookFaults(duplicate=1.0)
    run = await start_run(api)
    await finish(sandbox, run["id"])
    ids = [event["event_id"] for event in receiver.received]
    assert len(ids) == 4 and len(set(ids)) == 2
    assert sandbox.webhook_faults.duplicated == 2


async def test_shuffled_webhooks_can_arrive_out_of_order(receiver: Receiver) -> None:
    # Runs move on their own clock; each delivery waits up to 0.3 s and none waits for another.
    sandbox = ThunderPhoneSandbox(step_seconds=0.01, webhook_retry_base_seconds=0.01)
    sandbox.webhook_url = await receiver.start()
    sandbox.webhook_faults = WebhookFaults(shuffle=True, delay=(0.0, 0.3), seed=3)
    base = await sandbox.start()
    try:
        async with httpx.AsyncClient(base_url=f"{base}/v1", headers=AUTH) as api:
            for _ in range(12):
                await start_run(api)
            await sandbox.wait_until_settled()
    finally:
        await sandbox.close()
    orders = set()
    for run_id in sandbox.runs:
        events = [e for e in receiver.received if _run_of(e, sandbox) == run_id]
        orders.add(tuple(event["type"] for event in events))
    assert orders == {
        ("call.graded", "test-call.completed"),
        ("test-call.completed", "call.graded"),
    }


def _run_of(event: dict[str, Any], sandbox: ThunderPhoneSandbox) -> int:
    data = event["data"]
    if "test_call_run" in data:
        return int(data["test_call_run"]["id"])
    return next(r["id"] for r in sandbox.runs.values() if r["call_id"] == data["call_id"])


def test_webhook_faults_with_one_seed_draw_alike() -> None:
    def draws(seed: int) -> list[int]:
        faults = WebhookFaults(drop=0.2, duplicate=0.2, seed=seed)
        return [faults.copies(str(n), "call.graded") for n in range(200)]

    assert draws(5) == draws(5)
    assert draws(5) != draws(6)
    assert {0, 1, 2} <= set(draws(5))


async def test_api_faults_answer_429_with_retry_after(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.api_faults = ApiFaults(rate=1.0, kinds=("rate_limited",), create_kinds=())
    response = await api.get("/test-calls")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    created = await api.post("/test-calls", json=BASE_RUN)
    assert created.status_code == 201, "creates are left alone"
    assert sandbox.api_faults.injected == {("GET", "rate_limited"): 1}


async def test_a_lost_create_answer_still_creates_the_run(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.api_faults = ApiFaults(rate=1.0, create_kinds=("lost",), statuses=(502,))
    response = await api.post("/test-calls", json=BASE_RUN)
    assert response.status_code == 502
    assert len(sandbox.runs) == 1, "ThunderPhone made the run; only its answer was lost"


async def test_a_5xx_create_creates_nothing(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.api_faults = ApiFaults(rate=1.0, create_kinds=("error",), statuses=(503,))
    response = await api.post("/test-call-batches", json={**BASE_RUN, "run_count": 2})
    assert response.status_code == 503
    assert sandbox.runs == {} and sandbox.batches == {}


async def test_slow_api_answers_are_right_but_late(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.api_faults = ApiFaults(rate=1.0, kinds=("slow",), slow_seconds=(0.2, 0.2))
    loop = asyncio.get_running_loop()
    began = loop.time()
    response = await api.get("/agents/12")
    assert response.status_code == 200 and response.json()["id"] == 12
    assert loop.time() - began >= 0.2


async def test_api_faults_hit_about_their_rate(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.api_faults = ApiFaults(rate=0.1, kinds=("error", "rate_limited"), seed=11)
    statuses = [(await api.get("/agents")).status_code for _ in range(200)]
    failed = sum(status != 200 for status in statuses)
    assert 8 <= failed <= 35, failed
    assert failed == sum(sandbox.api_faults.injected.values())
    assert {status for status in statuses if status != 200} <= {429, 500, 502, 503}


async def test_a_slack_429_burst_refuses_several_calls_then_lets_them_through(
    fake: FakeSlack,
) -> None:
    fake.chaos = SlackChaos(rate=1.0, kinds=("burst",), burst=(3, 3))
    async with aiohttp.ClientSession() as session:
        first = [await post_message(session, fake) for _ in range(3)]
        fake.chaos = None
        after = await post_message(session, fake)
    assert first == [(429, "ratelimited")] * 3
    assert after == (200, "")
    assert [m.text for m in fake.messages["C0QA"]] == ["hello"]


async def test_slack_errors_lost_answers_and_hangs(fake: FakeSlack) -> None:
    async with aiohttp.ClientSession() as session:
        fake.chaos = SlackChaos(rate=1.0, kinds=("error",), seed=1)
        errors = {await post_message(session, fake) for _ in range(8)}
        fake.chaos = SlackChaos(rate=1.0, kinds=("lost",))
        lost = await post_message(session, fake)
        fake.chaos = SlackChaos(rate=1.0, kinds=("hang",), hang_seconds=(0.05, 0.05), seed=2)
        hung = [await post_message(session, fake) for _ in range(4)]
    assert errors == {(503, "upstream connect error"), (500, "fatal_error")}
    assert nothing_posted_by(errors)
    assert lost[0] == 0, "the connection dropped without an answer"
    assert hung == [(200, "")] * 4, "a hang only delays the answer"
    # The lost post and every hung one reached the channel.
    assert len(fake.messages["C0QA"]) == 5


def nothing_posted_by(answers: set[tuple[int, str]]) -> bool:
    return all(status >= 500 for status, _ in answers)


async def test_slack_chaos_keeps_to_its_methods(fake: FakeSlack) -> None:
    fake.chaos = SlackChaos(rate=1.0, methods={"chat.update"})
    async with aiohttp.ClientSession() as session:
        assert await post_message(session, fake) == (200, "")
    assert fake.chaos.injected == {}


def test_slack_chaos_with_one_seed_draws_alike() -> None:
    def draws(seed: int) -> list[str]:
        chaos = SlackChaos(rate=0.3, seed=seed)
        faults = [chaos.draw("chat.postMessage", {"channel": "C0QA"}) for _ in range(100)]
        return [repr(fault) for fault in faults]

    assert draws(9) == draws(9)
    assert draws(9) != draws(10)
