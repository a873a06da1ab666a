"""The ThunderPhone sandbox over loopback HTTP: SDK conformance, validation, lifecycle, webhooks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from aiohttp import web
from thunderphone.generated.models import (
    Agent,
    Call,
    CallGrade,
    CallIssueReport,
    CallTranscript,
    PhoneNumber,
    SimulationBatch,
    SimulationRun,
)
from thunderphone.webhooks import verify_signature

from bot.sandbox import tp_scenarios
from bot.sandbox.thunderphone import ThunderPhoneSandbox

AUTH = {"Authorization": "Bearer sk_test_sandbox"}
SECRET = "whsec_sandbox"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
ORDER_PROMPT = "Roleplay as a customer asking about a refund for order 123456."
BASE_RUN: dict[str, Any] = {"target_type": "agent", "target_id": 12, "consent_to_charge": True}


class Receiver:
    """A webhook endpoint that checks both signatures and can fail first attempts."""

    def __init__(self, fail_first: bool = False) -> None:
        self.fail_first = fail_first
        self.received: list[dict[str, Any]] = []
        self.rejected = 0
        self._seen: set[str] = set()
        self._runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hooks/tp", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self._runner.addresses[0][1]}/hooks/tp?source=sandbox"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        v2_ok = verify_signature(
            request.headers.get("X-ThunderPhone-Signature-V2"),
            secret=SECRET,
            method=request.method,
            path=request.raw_path,
            body=raw,
        )
        expected_v1 = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        v1_ok = hmac.compare_digest(
            expected_v1, request.headers.get("X-ThunderPhone-Signature", "")
        )
        if not (v1_ok and v2_ok):
            self.rejected += 1
            return web.Response(status=401)
        event = json.loads(raw)
        self.received.append(event)
        if self.fail_first and event["event_id"] not in self._seen:
            self._seen.add(event["event_id"])
            return web.Response(status=500)
        return web.Response(status=204)

    def accepted(self) -> list[dict[str, Any]]:
        """Events in the order they were answered with 2xx (first attempts may have failed)."""
        if not self.fail_first:
            return self.received
        counts: dict[str, int] = {}
        result = []
        for event in self.received:
            counts[event["event_id"]] = counts.get(event["event_id"], 0) + 1
            if counts[event["event_id"]] == 2:
                result.append(event)
        return result


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


async def start_run(
    api: httpx.AsyncClient, prompt: str = "Ask about refunds.", **extra: Any
) -> Any:
    response = await api.post("/test-calls", json={**BASE_RUN, "scenario_prompt": prompt, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def finish(sandbox: ThunderPhoneSandbox, run_id: int) -> None:
    for _ in range(3):
        await sandbox.advance(run_id)


# -- (1) SDK conformance ---------------------------------------------------------------------


async def test_every_endpoint_parses_with_the_sdk(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sdk_body = {
        **BASE_RUN,
        "direction": "outbound",
        "scenario_mode": "manual",
        "scenario_prompt": "",
        "simulator_product": "testing",
        "target_number": "",
    }
    created = (await api.post("/test-calls", json=sdk_body)).json()
    assert SimulationRun.from_dict(created).status.value == "queued"
    assert created["call_id"] is None and created["transcript"] == []
    await finish(sandbox, created["id"])
    run = (await api.get("/test-calls")).json()[0]
    parsed = SimulationRun.from_dict(run)
    assert parsed.status.value == "completed" and parsed.agent_name == "Support agent"
    for key in ("created_at", "updated_at", "started_at", "completed_at"):
        assert TIMESTAMP.match(run[key]), run[key]

    call = Call.from_dict((await api.get(f"/calls/{run['call_id']}")).json())
    assert call.is_test_call is True and call.direction.value == "outbound"
    assert isinstance(call.grade_score, int) and 0 <= call.grade_score <= 100
    transcript = CallTranscript.from_dict(
        (await api.get(f"/calls/{run['call_id']}/transcript")).json()
    )
    assert transcript.call_id == run["call_id"] and len(transcript.transcripts) >= 5
    grade = CallGrade.from_dict((await api.get(f"/calls/{run['call_id']}/grade")).json())
    assert grade.score == call.grade_score and grade.status.value == "completed"

    report = await api.post(
        f"/calls/{run['call_id']}/issue-reports",
        json={"title": "Agent paused too long", "description": "", "severity": "warning"},
    )
    assert report.status_code == 201
    issue = CallIssueReport.from_dict(report.json())
    assert isinstance(issue.trace_id, uuid.UUID) and issue.agent_id == 12
    listed = (await api.get(f"/calls/{run['call_id']}/issue-reports")).json()
    assert [CallIssueReport.from_dict(i).title for i in listed] == ["Agent paused too long"]

    batch_body = {**BASE_RUN, "name": "", "run_count": 2, "stagger_seconds": 0}
    batch = (await api.post("/test-call-batches", json=batch_body)).json()
    assert SimulationBatch.from_dict(batch).status.value == "in_progress"
    fetched = (await api.get(f"/test-call-batches/{batch['id']}")).json()
    assert SimulationBatch.from_dict(fetched).run_ids == batch["run_ids"]
    listing = (await api.get("/test-call-batches")).json()
    assert [SimulationBatch.from_dict(b).id for b in listing] == [batch["id"]]


async def test_webhook_payloads_parse_with_the_sdk(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    run = await start_run(api, ORDER_PROMPT)
    await finish(sandbox, run["id"])
    types = [event["type"] for event in receiver.received]
    assert types == ["test-call.completed", "call.graded"]
    completed, graded = receiver.received
    # The shape of ThunderPhone's guide: the run under data.test_call_run.
    assert SimulationRun.from_dict(completed["data"]["test_call_run"]).id == run["id"]
    assert completed["data"]["test_call_run"]["status"] == "completed"
    grade = CallGrade.from_dict(graded["data"]["grade"])
    assert (
        grade.call_id == graded["data"]["call_id"] == completed["data"]["test_call_run"]["call_id"]
    )
    assert graded["data"]["agent_name"] == "Support agent"
    assert receiver.rejected == 0


# -- (2) validation --------------------------------------------------------------------------

CONSENT = ["Test calls are billed at 2x the normal rate. Set consent_to_charge to true to confirm."]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/test-calls", {"target_type": "agent", "target_id": 12}, {"consent_to_charge": CONSENT}),
        ("/test-calls", {**BASE_RUN, "consent_to_charge": False}, {"consent_to_charge": CONSENT}),
        (
            "/test-calls",
            {**BASE_RUN, "target_type": "robot"},
            {"target_type": ['"robot" is not a valid choice.']},
        ),
        (
            "/test-calls",
            {**BASE_RUN, "target_id": 99},
            {"target_id": ["No agent with id 99 in this organization."]},
        ),
        (
            "/test-calls",
            {**BASE_RUN, "target_type": "phone_number", "target_id": 12},
            {"target_id": ["No phone number with id 12 in this organization."]},
        ),
        (
            "/test-calls",
            {**BASE_RUN, "direction": "sideways"},
            {"direction": ['"sideways" is not a valid choice.']},
        ),
        ("/test-calls", {**BASE_RUN, "mode": "fax"}, {"mode": ['"fax" is not a valid choice.']}),
        (
            "/test-calls",
            {**BASE_RUN, "target_number": "4155550123"},
            {"target_number": ["Enter a valid phone number in E.164 format, like +14155550123."]},
        ),
        (
            "/test-call-batches",
            {**BASE_RUN, "run_count": 21},
            {"run_count": ["Ensure this value is less than or equal to 20."]},
        ),
        (
            "/test-call-batches",
            {**BASE_RUN, "run_count": 0},
            {"run_count": ["Ensure this value is greater than or equal to 1."]},
        ),
        (
            "/test-call-batches",
            {**BASE_RUN, "stagger_seconds": 61},
            {"stagger_seconds": ["Ensure this value is less than or equal to 60."]},
        ),
        (
            "/test-call-batches",
            {**BASE_RUN, "stagger_seconds": -1},
            {"stagger_seconds": ["Ensure this value is greater than or equal to 0."]},
        ),
    ],
)
async def test_invalid_run_requests_get_field_errors(
    sandbox: ThunderPhoneSandbox,
    api: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    response = await api.post(path, json=body)
    assert response.status_code == 400
    assert response.json() == expected
    assert sandbox.runs == {}


async def test_every_field_error_is_reported_at_once(api: httpx.AsyncClient) -> None:
    response = await api.post("/test-calls", json={"direction": "up"})
    assert response.status_code == 400
    assert set(response.json()) == {"target_type", "target_id", "direction", "consent_to_charge"}
    assert response.json()["target_id"] == ["This field is required."]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"title": ""}, {"title": ["This field may not be blank."]}),
        ({"title": "x" * 256}, {"title": ["Ensure this field has no more than 255 characters."]}),
        ({}, {"title": ["This field is required."]}),
        ({"title": "ok", "severity": "fatal"}, {"severity": ['"fatal" is not a valid choice.']}),
    ],
)
async def test_invalid_issue_reports_get_field_errors(
    sandbox: ThunderPhoneSandbox,
    api: httpx.AsyncClient,
    body: dict[str, Any],
    expected: dict[str, list[str]],
) -> None:
    run = await start_run(api)
    await sandbox.advance(run["id"])
    call_id = sandbox.runs[run["id"]]["call_id"]
    response = await api.post(f"/calls/{call_id}/issue-reports", json=body)
    assert (response.status_code, response.json()) == (400, expected)
    assert sandbox.issue_reports == {}


async def test_malformed_json_and_low_balance(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    response = await api.post(
        "/test-calls", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (400, {"detail": "JSON parse error"})
    sandbox.balance_cents = 0
    response = await api.post("/test-calls", json=BASE_RUN)
    assert response.status_code == 402
    assert response.json() == {
        "detail": "Insufficient balance. Top up your account to place test calls."
    }


async def test_agents_and_numbers_parse_with_the_sdk(api: httpx.AsyncClient) -> None:
    agent = Agent.from_dict((await api.get("/agents/13")).json())
    assert (agent.name, str(agent.product)) == ("Support XL", "storm-base")
    listed = [Agent.from_dict(a).id for a in (await api.get("/agents")).json()]
    assert listed == [12, 13, 14]
    number = PhoneNumber.from_dict((await api.get("/phone-numbers/34")).json())
    assert (number.label, number.inbound_agent_id) == ("Main line", 12)
    assert [n["id"] for n in (await api.get("/phone-numbers")).json()] == [34]


async def test_unknown_ids_are_not_found(api: httpx.AsyncClient) -> None:
    for path in (
        "/agents/99",
        "/phone-numbers/12",
        "/calls/5",
        "/calls/5/transcript",
        "/calls/5/grade",
        "/calls/5/issue-reports",
        "/test-call-batches/5",
        "/no-such-route",
    ):
        response = await api.get(path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."}), path


# -- (3) auth --------------------------------------------------------------------------------


async def test_auth_errors(sandbox: ThunderPhoneSandbox) -> None:
    base = await sandbox.start()
    async with httpx.AsyncClient(base_url=f"{base}/v1") as client:
        missing = await client.get("/test-calls")
        assert missing.status_code == 401
        assert missing.json() == {"detail": "Authentication credentials were not provided."}
        wrong = await client.get("/test-calls", headers={"Authorization": "Bearer sk_live_nope"})
        assert (wrong.status_code, wrong.json()) == (401, {"detail": "Invalid API key."})
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"ok": True})
    assert [r.path for r in sandbox.requests] == ["/v1/test-calls"] * 2 + ["/v1/healthz"]
    assert sandbox.requests[1].headers["Authorization"] == "Bearer sk_live_nope"


# -- (4) lifecycle ---------------------------------------------------------------------------


async def test_manual_lifecycle_step_by_step(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    balance = sandbox.balance_cents
    run = await start_run(api, "Ask about opening hours.", target_number="+14155550100")
    assert sandbox.requests[-1].json["target_number"] == "+14155550100"
    run_id = run["id"]

    await sandbox.advance(run_id)
    current = sandbox.runs[run_id]
    assert current["status"] == "in_progress" and current["started_at"]
    call_id = current["call_id"]
    call = (await api.get(f"/calls/{call_id}")).json()
    assert (call["status"], call["end_time"], call["from_number"]) == (
        "in_progress",
        None,
        "+14155550100",
    )
    assert (await api.get(f"/calls/{call_id}/grade")).status_code == 404

    await sandbox.advance(run_id)
    call = (await api.get(f"/calls/{call_id}")).json()
    assert call["status"] == "completed" and call["end_reason"] in {"caller_hangup", "agent_end"}
    minutes = -(-call["duration_seconds"] // 60)
    assert call["billable_minutes"] == minutes
    assert call["billing_total_cents"] == 8 * minutes * 2
    assert sandbox.balance_cents == balance - call["billing_total_cents"]
    assert sandbox.runs[run_id]["status"] == "completed"
    assert (await api.get(f"/calls/{call_id}/grade")).status_code == 404

    await sandbox.advance(run_id)
    grade = (await api.get(f"/calls/{call_id}/grade")).json()
    call = (await api.get(f"/calls/{call_id}")).json()
    assert call["grade_score"] == grade["score"] and call["grade_status"] == "completed"
    assert grade["call_outcome"] == ("success" if grade["score"] >= 70 else "failure")
    assert "opening hours" in grade["summary"]
    await sandbox.wait_until_settled(timeout=1)


async def test_bolt_agent_is_billed_at_its_rate(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    run = await start_run(api, "Ask for a quote.", target_id=14)
    assert run["agent_name"] == "Sales agent"
    await finish(sandbox, run["id"])
    call = sandbox.calls[sandbox.runs[run["id"]]["call_id"]]
    assert call["product"] == "bolt"
    assert call["billing_total_cents"] == 10 * call["billable_minutes"] * 2


async def test_unsettled_manual_run_times_out(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    await start_run(api)
    with pytest.raises(TimeoutError):
        await sandbox.wait_until_settled(timeout=0.05)


async def test_batch_cycles_prompts_and_completes(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    body = {**BASE_RUN, "run_count": 3, "stagger_seconds": 2, "scenario_prompts": ["A", "B"]}
    batch = (await api.post("/test-call-batches", json=body)).json()
    prompts = [sandbox.runs[i]["scenario_prompt"] for i in batch["run_ids"]]
    assert prompts == ["A", "B", "A"]
    assert {sandbox.runs[i]["batch_id"] for i in batch["run_ids"]} == {batch["id"]}
    for run_id in batch["run_ids"]:
        await finish(sandbox, run_id)
    done = (await api.get(f"/test-call-batches/{batch['id']}")).json()
    assert (done["status"], done["completed_runs"], done["failed_runs"]) == ("completed", 3, 0)
    assert done["completed_at"] is not None


async def test_run_list_filters_and_pages(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    first = await start_run(api, "one")
    second = await start_run(api, "two", target_id=14)
    third = await start_run(api, "three", target_type="phone_number", target_id=34)
    await sandbox.advance(first["id"])
    ids = [r["id"] for r in (await api.get("/test-calls")).json()]
    assert ids == [third["id"], second["id"], first["id"]]
    paged = (await api.get("/test-calls", params={"limit": 1, "offset": 1})).json()
    assert [r["id"] for r in paged] == [second["id"]]
    by_status = (await api.get("/test-calls", params={"status": "in_progress"})).json()
    assert [r["id"] for r in by_status] == [first["id"]]
    by_agent = (await api.get("/test-calls", params={"agent_id": 12})).json()
    assert [r["id"] for r in by_agent] == [third["id"], first["id"]]
    phone = (await api.get("/test-calls", params={"target_type": "phone_number"})).json()
    assert [(r["id"], r["target_name"]) for r in phone] == [(third["id"], "Main line")]


async def test_automatic_mode_runs_to_graded(receiver: Receiver) -> None:
    box = ThunderPhoneSandbox(step_seconds=0.01, webhook_url=await receiver.start())
    try:
        base = await box.start()
        async with httpx.AsyncClient(base_url=f"{base}/v1", headers=AUTH) as api:
            body = {**BASE_RUN, "run_count": 2, "stagger_seconds": 0}
            batch = (await api.post("/test-call-batches", json=body)).json()
            single = await start_run(api, "Ask about refunds [fail]")
            await box.wait_until_settled(timeout=5)
            done = (await api.get(f"/test-call-batches/{batch['id']}")).json()
        assert done["status"] == "completed" and done["completed_runs"] == 2
        for run_id in batch["run_ids"]:
            run = box.runs[run_id]
            assert run["grade"]["score"] == box.calls[run["call_id"]]["grade_score"]
        assert box.runs[single["id"]]["status"] == "failed"
        types = sorted(event["type"] for event in receiver.received)
        assert types == ["call.graded"] * 2 + ["test-call.completed"] * 3
    finally:
        await box.close()


# -- (5) webhooks ----------------------------------------------------------------------------


async def test_failed_delivery_is_retried_with_the_same_event_id(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    hook = Receiver(fail_first=True)
    sandbox.webhook_url = await hook.start()
    try:
        run = await start_run(api)
        await finish(sandbox, run["id"])
        await sandbox.wait_until_settled(timeout=5)
    finally:
        await hook.close()
    assert hook.rejected == 0
    first, retry, *_ = sandbox.deliveries
    assert (first.attempt, first.status, retry.attempt, retry.status) == (1, 500, 2, 204)
    assert first.event_id == retry.event_id and first.body == retry.body
    v2 = "X-ThunderPhone-Signature-V2"
    assert first.headers[v2].startswith("t=") and retry.headers[v2].startswith("t=")
    assert [e["type"] for e in hook.accepted()] == ["test-call.completed", "call.graded"]


async def test_unreachable_endpoint_gives_up(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    hook = Receiver()
    url = await hook.start()
    await hook.close()  # the port is now closed: every attempt fails to connect
    sandbox.webhook_url = url
    sandbox.webhook_max_attempts = 3
    run = await start_run(api, "x [fail]")
    await sandbox.advance(run["id"])
    await sandbox.wait_until_settled(timeout=5)
    assert [(d.attempt, d.status) for d in sandbox.deliveries] == [(1, None), (2, None), (3, None)]
    assert all(d.error for d in sandbox.deliveries)
    assert len({d.event_id for d in sandbox.deliveries}) == 1


async def test_grade_before_complete_ordering(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    sandbox.grade_before_complete = True
    run = await start_run(api)
    await sandbox.advance(run["id"])
    await sandbox.advance(run["id"])
    assert receiver.received == []
    await sandbox.advance(run["id"])
    assert [e["type"] for e in receiver.received] == ["call.graded", "test-call.completed"]
    assert (
        receiver.received[1]["data"]["test_call_run"]["grade"]["score"]
        == sandbox.runs[run["id"]]["grade"]["score"]
    )


async def test_duplicate_webhooks_repeat_the_event_id(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    sandbox.duplicate_webhooks = True
    run = await start_run(api)
    await finish(sandbox, run["id"])
    types = [e["type"] for e in receiver.received]
    assert types == ["test-call.completed"] * 2 + ["call.graded"] * 2
    assert receiver.received[0] == receiver.received[1]
    assert receiver.received[0]["event_id"] != receiver.received[2]["event_id"]


async def test_body_is_compact_sorted_json(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    run = await start_run(api, "y [fail]")
    await sandbox.advance(run["id"])
    (delivery,) = sandbox.deliveries
    event = json.loads(delivery.body)
    assert delivery.body == json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
    assert uuid.UUID(event["event_id"]).version == 4
    assert delivery.headers["Content-Type"] == "application/json"


# -- (6) determinism and scenario tags -------------------------------------------------------


async def test_same_prompt_gives_same_call(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    results = []
    for _ in range(2):
        run = await start_run(api, ORDER_PROMPT)
        await finish(sandbox, run["id"])
        call_id = sandbox.runs[run["id"]]["call_id"]
        transcript = (await api.get(f"/calls/{call_id}/transcript")).json()["transcripts"]
        grade = (await api.get(f"/calls/{call_id}/grade")).json()
        results.append((transcript, grade["score"], sandbox.calls[call_id]["duration_seconds"]))
    assert results[0] == results[1]
    other = tp_scenarios.plan("Ask about a different thing entirely.")
    assert tp_scenarios.transcript(other, "Support agent", "outbound") != results[0][0]


async def test_order_number_adds_tool_turns(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    run = await start_run(api, ORDER_PROMPT)
    await finish(sandbox, run["id"])
    entries = sandbox.transcripts[sandbox.runs[run["id"]]["call_id"]]
    assert 5 <= len(entries) <= 9
    assert entries[0]["role"] == "assistant"
    assert entries[0]["content"].startswith("Thanks for calling, this is the support agent.")
    tool = next(e for e in entries if e["role"] == "tool_call")
    assert tool["content"] == {"name": "lookup_order", "arguments": {"order": "123456"}}
    assert tool["content_type"] == "application/json" and tool["start_ms"] == tool["end_ms"]
    result = next(e for e in entries if e["role"] == "tool_response")
    assert result["content"]["status"] == "shipped"
    speech = [e for e in entries if e["content_type"] == "text/plain"]
    assert all(e["start_ms"] < e["end_ms"] for e in speech)
    starts = [e["start_ms"] for e in entries]
    assert starts == sorted(starts)
    caller = " ".join(e["content"] for e in speech if e["role"] == "user")
    assert "refund" in caller and "123456" in caller


def test_outcomes_stay_in_range_for_many_prompts() -> None:
    for index in range(300):
        plain = tp_scenarios.plan(f"Caller {index} asks about invoices")
        low = tp_scenarios.plan(f"Caller {index} asks about invoices [low]")
        assert 35 <= plain.duration_seconds <= 170 and 62 <= plain.score <= 98
        assert 35 <= low.score <= 60 and low.call_outcome == "failure"
        turns = tp_scenarios.transcript(plain, "Support agent", "inbound")
        assert 5 <= len(turns) <= 9 and turns[0]["role"] == "user"
        assert turns[-1]["end_ms"] <= plain.duration_seconds * 1000
        assert all(t["role"] != "tool_call" for t in turns)


async def test_fail_tag_fails_before_a_call_exists(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    run = await start_run(api, "Ask about refunds [fail]")
    await sandbox.advance(run["id"])
    failed = sandbox.runs[run["id"]]
    assert (failed["status"], failed["call_id"]) == ("failed", None)
    assert failed["error_message"] == tp_scenarios.FAILED_CALL_MESSAGE
    assert sandbox.calls == {} and sandbox.grades == {}
    (event,) = receiver.received
    assert event["type"] == "test-call.completed"
    assert event["data"]["test_call_run"]["status"] == "failed"
    await sandbox.advance(run["id"])  # nothing further happens to a finished run
    assert len(receiver.received) == 1
    await sandbox.wait_until_settled(timeout=1)


async def test_low_tag_gives_a_failing_grade(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    run = await start_run(api, "Complain about late delivery [low]")
    await finish(sandbox, run["id"])
    (grade,) = sandbox.grades.values()
    assert 35 <= grade["score"] <= 60
    assert grade["call_outcome"] == "failure" and grade["goal_achievement"] == "missed"
    assert "late delivery" in grade["outcome_reasoning"]


async def test_no_grade_tag_completes_the_call_but_never_grades_it(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, receiver: Receiver
) -> None:
    sandbox.webhook_url = await receiver.start()
    run = await start_run(api, "Ask about refunds [no-grade]")
    for _ in range(5):  # as many steps as you like: no grade ever comes
        await sandbox.advance(run["id"])
    finished = sandbox.runs[run["id"]]
    assert finished["status"] == "completed" and finished["grade"] is None
    call_id = finished["call_id"]
    assert (await api.get(f"/calls/{call_id}/grade")).status_code == 404
    call = (await api.get(f"/calls/{call_id}")).json()
    assert (call["grade_status"], call["grade_score"]) == ("pending", None)
    assert (await api.get(f"/calls/{call_id}/transcript")).json()["transcripts"]
    assert [event["type"] for event in receiver.received] == ["test-call.completed"]
    assert sandbox.grades == {}
    await sandbox.wait_until_settled(timeout=1)
    assert "no" not in tp_scenarios.topic_of("Ask about refunds [No-Grade]")


# -- (7) fault injection ---------------------------------------------------------------------


async def test_fail_next_is_one_shot_and_matches_prefixes(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    sandbox.fail_next("POST", "/v1/test-calls", 500, {"detail": "Internal server error."})
    response = await api.post("/test-calls", json=BASE_RUN)
    assert (response.status_code, response.json()) == (500, {"detail": "Internal server error."})
    assert sandbox.runs == {}
    run = await start_run(api)
    await sandbox.advance(run["id"])
    call_id = sandbox.runs[run["id"]]["call_id"]
    sandbox.fail_next("get", "/v1/calls", 503, {"detail": "busy"})
    assert (await api.get(f"/calls/{call_id}/transcript")).status_code == 503
    assert (await api.get(f"/calls/{call_id}/transcript")).status_code == 200


# -- (8) batches: stagger, progress, listing by batch ------------------------------------------


async def wait_for(check: Callable[[], bool], timeout: float = 5) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


async def run_statuses(api: httpx.AsyncClient, batch_id: int) -> dict[int, str]:
    listed = (await api.get("/test-calls", params={"batch_id": batch_id})).json()
    return {run["id"]: run["status"] for run in listed}


async def test_batch_runs_are_created_at_once_and_start_in_stagger_order() -> None:
    ticks = itertools.count(1_776_700_000)  # a clock that moves one second per reading
    box = ThunderPhoneSandbox(step_seconds=0.01, stagger_scale=0.01, clock=lambda: next(ticks))
    try:
        base = await box.start()
        async with httpx.AsyncClient(base_url=f"{base}/v1", headers=AUTH) as api:
            prompts = ["Ask about refunds.", "Ask about opening hours [fail]"]
            body = {
                **BASE_RUN,
                "name": "nightly regression",
                "run_count": 3,
                "stagger_seconds": 5,
                "scenario_prompts": prompts,
            }
            created = await api.post("/test-call-batches", json=body)
            assert created.status_code == 201
            batch = created.json()
            run_ids = batch["run_ids"]
            assert len(run_ids) == 3 and run_ids == sorted(run_ids)
            # every run exists, queued, before the answer is even read
            assert await run_statuses(api, batch["id"]) == dict.fromkeys(run_ids, "queued")
            assert [box.runs[i]["scenario_prompt"] for i in run_ids] == [*prompts, prompts[0]]
            assert (batch["status"], batch["completed_runs"], batch["failed_runs"]) == (
                "in_progress",
                0,
                0,
            )
            assert batch["total_runs"] == 3 and batch["name"] == "nightly regression"

            await box.wait_until_settled(timeout=5)
            started = [box.runs[i]["started_at"] for i in run_ids]
            assert started == sorted(started) and len(set(started)) == 3, started
            done = (await api.get(f"/test-call-batches/{batch['id']}")).json()
        assert SimulationBatch.from_dict(done).status.value == "completed"
        assert (done["completed_runs"], done["failed_runs"], done["total_runs"]) == (2, 1, 3)
        assert done["name"] == "nightly regression" and done["run_ids"] == run_ids
        assert done["completed_at"] is not None and done["completed_at"] >= done["started_at"]
        assert done["updated_at"] == done["completed_at"]
        assert [box.runs[i]["status"] for i in run_ids] == ["completed", "failed", "completed"]
    finally:
        await box.close()


async def test_staggered_run_waits_its_turn() -> None:
    box = ThunderPhoneSandbox(step_seconds=0.01)  # stagger_scale 1.0: the next run is 60 s away
    try:
        base = await box.start()
        async with httpx.AsyncClient(base_url=f"{base}/v1", headers=AUTH) as api:
            body = {**BASE_RUN, "run_count": 3, "stagger_seconds": 60}
            batch = (await api.post("/test-call-batches", json=body)).json()
            first, *later = batch["run_ids"]
            await wait_for(lambda: box.runs[first]["grade"] is not None)
            statuses = await run_statuses(api, batch["id"])
            assert statuses == {first: "completed", **dict.fromkeys(later, "queued")}
            progress = (await api.get(f"/test-call-batches/{batch['id']}")).json()
        assert (progress["status"], progress["completed_runs"], progress["failed_runs"]) == (
            "in_progress",
            1,
            0,
        )
        assert progress["completed_at"] is None
    finally:
        await box.close()


async def test_manual_clock_batch_moves_only_on_advance(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    body = {**BASE_RUN, "run_count": 2, "stagger_seconds": 0}
    batch = (await api.post("/test-call-batches", json=body)).json()
    first, second = batch["run_ids"]
    await asyncio.sleep(0.05)  # a timer-driven sandbox would have moved by now
    assert await run_statuses(api, batch["id"]) == {first: "queued", second: "queued"}
    assert sandbox.calls == {}
    await sandbox.advance(second)  # any run can be moved, in any order
    assert await run_statuses(api, batch["id"]) == {first: "queued", second: "in_progress"}


async def test_batch_progress_counts_a_failed_run(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    body = {**BASE_RUN, "run_count": 2, "scenario_prompts": ["Ask about refunds.", "x [FAIL]"]}
    batch = (await api.post("/test-call-batches", json=body)).json()
    good, bad = batch["run_ids"]
    path = f"/test-call-batches/{batch['id']}"

    await sandbox.advance(bad)
    progress = (await api.get(path)).json()
    assert (progress["status"], progress["completed_runs"], progress["failed_runs"]) == (
        "in_progress",
        0,
        1,
    )
    await sandbox.advance(good)  # in progress: not counted yet
    assert (await api.get(path)).json()["completed_runs"] == 0
    await sandbox.advance(good)
    done = (await api.get(path)).json()
    assert (done["status"], done["completed_runs"], done["failed_runs"]) == ("completed", 1, 1)
    assert done["completed_at"] is not None

    all_bad = {**BASE_RUN, "run_count": 2, "scenario_prompts": ["y [fail]"]}
    failed = (await api.post("/test-call-batches", json=all_bad)).json()
    for run_id in failed["run_ids"]:
        await sandbox.advance(run_id)
    result = (await api.get(f"/test-call-batches/{failed['id']}")).json()
    assert (result["status"], result["failed_runs"]) == ("failed", 2)
    assert SimulationBatch.from_dict(result).status.value == "failed"


async def test_runs_listed_by_batch(sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient) -> None:
    single = await start_run(api)
    first = (await api.post("/test-call-batches", json={**BASE_RUN, "run_count": 3})).json()
    second = (await api.post("/test-call-batches", json={**BASE_RUN, "run_count": 2})).json()
    listed = (await api.get("/test-calls", params={"batch_id": first["id"]})).json()
    assert [r["id"] for r in listed] == first["run_ids"][::-1]  # newest first, like the full list
    assert [SimulationRun.from_dict(r).id for r in listed] == first["run_ids"][::-1]
    assert {r["batch_id"] for r in listed} == {first["id"]}
    paged = await api.get("/test-calls", params={"batch_id": first["id"], "limit": 1, "offset": 1})
    assert [r["id"] for r in paged.json()] == [first["run_ids"][1]]
    others = (await api.get("/test-calls", params={"batch_id": second["id"]})).json()
    assert [r["id"] for r in others] == second["run_ids"][::-1]
    everything = (await api.get("/test-calls")).json()
    assert len(everything) == 6 and everything[-1]["id"] == single["id"]
    assert (await api.get("/test-calls", params={"batch_id": 999})).json() == []
    wrong = await api.get("/test-calls", params={"batch_id": "abc"})
    assert (wrong.status_code, wrong.json()) == (
        400,
        {"batch_id": ["A valid integer is required."]},
    )


async def test_batch_names_are_kept_and_listed_newest_first(api: httpx.AsyncClient) -> None:
    for name in ("suite smoke #1", "suite smoke #2"):
        response = await api.post("/test-call-batches", json={**BASE_RUN, "name": name})
        assert response.status_code == 201 and response.json()["name"] == name
    listing = (await api.get("/test-call-batches")).json()
    assert [b["name"] for b in listing] == ["suite smoke #2", "suite smoke #1"]
    assert [SimulationBatch.from_dict(b).name for b in listing] == [
        "suite smoke #2",
        "suite smoke #1",
    ]
    fetched = (await api.get(f"/test-call-batches/{listing[1]['id']}")).json()
    assert fetched["name"] == "suite smoke #1"
    for missing in ("/test-call-batches/1", "/test-call-batches/abc"):
        response = await api.get(missing)
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."})


# -- (9) scenario directives -----------------------------------------------------------------


async def graded(sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient, prompt: str) -> Any:
    """Run `prompt` to its grade; return run, call, transcript entries and grade (over HTTP)."""
    run = await start_run(api, prompt)
    await finish(sandbox, run["id"])
    call_id = sandbox.runs[run["id"]]["call_id"]
    call = (await api.get(f"/calls/{call_id}")).json()
    transcript = (await api.get(f"/calls/{call_id}/transcript")).json()
    grade = (await api.get(f"/calls/{call_id}/grade")).json()
    return sandbox.runs[run["id"]], call, transcript["transcripts"], grade


async def test_score_directive_sets_the_exact_score(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    for prompt, score, outcome in [
        ("[score: 62] Ask about refunds.", 62, "failure"),
        ("Ask about refunds. [SCORE:91]", 91, "success"),
        ("Ask about refunds [low] [score: 70%]", 70, "success"),
        ("Ask about refunds [score: 69]", 69, "failure"),
    ]:
        run, call, _, grade = await graded(sandbox, api, prompt)
        parsed = CallGrade.from_dict(grade)
        assert (parsed.score, parsed.call_outcome.value) == (score, outcome), prompt
        assert call["grade_score"] == score and call["call_outcome"] == outcome
        assert run["grade"]["score"] == score
        assert "refunds" in grade["summary"] and "score" not in grade["summary"]


async def test_say_directive_puts_the_phrase_in_an_agent_turn(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    phrase = "Refunds take 5 days, and you keep the receipt."
    _, _, entries, grade = await graded(sandbox, api, f"Ask about refunds [Say: {phrase}]")
    CallTranscript.from_dict({"call_id": 1, "transcripts": entries})
    assert [e["role"] for e in entries if e["content"] == phrase] == ["assistant"]
    assert "Say" not in grade["summary"] and "receipt" not in grade["summary"]
    _, _, plain, _ = await graded(sandbox, api, "Ask about refunds")
    assert all("5 days" not in str(e["content"]) for e in plain)

    phrases = ["first line", "second line", "third line", "fourth line"]
    prompt = "Ask about hours " + " ".join(f"[say: {p}]" for p in phrases)
    _, _, entries, _ = await graded(sandbox, api, prompt)
    agent = [e["content"] for e in entries if e["role"] == "assistant"]
    assert [line for line in agent if line in phrases] == phrases
    assert "goodbye" in entries[-1]["content"] or entries[-1]["role"] == "user"
    starts = [e["start_ms"] for e in entries]
    assert starts == sorted(starts)


async def test_tool_directives_add_tool_calls_with_arguments(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    prompt = (
        "Ask where the parcel is [tool: lookup_order order=12345] "
        '[TOOL: create_ticket priority=high note="call back"]'
    )
    _, _, entries, _ = await graded(sandbox, api, prompt)
    CallTranscript.from_dict({"call_id": 1, "transcripts": entries})
    tools = [(e["role"], e["content"]) for e in entries if e["content_type"] == "application/json"]
    assert tools == [
        ("tool_call", {"name": "lookup_order", "arguments": {"order": "12345"}}),
        ("tool_response", {"status": "shipped", "order": "12345", "carrier": "UPS", "eta_days": 2}),
        (
            "tool_call",
            {"name": "create_ticket", "arguments": {"priority": "high", "note": "call back"}},
        ),
        (
            "tool_response",
            {"status": "ok", "tool": "create_ticket", "priority": "high", "note": "call back"},
        ),
    ]
    assert all(e["start_ms"] == e["end_ms"] for e in entries if e["role"].startswith("tool"))
    starts = [e["start_ms"] for e in entries]
    assert starts == sorted(starts)
    speech = " ".join(e["content"] for e in entries if e["content_type"] == "text/plain")
    assert "12345" not in speech and "tool" not in speech  # directives are not the topic

    # a directive replaces the default lookup of an order number mentioned in the prompt
    _, _, entries, _ = await graded(sandbox, api, f"{ORDER_PROMPT} [tool: transfer to=billing]")
    calls = [e["content"] for e in entries if e["role"] == "tool_call"]
    assert calls == [{"name": "transfer", "arguments": {"to": "billing"}}]


async def test_directives_shape_the_call_but_are_never_spoken(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    prompt = (
        "[low] You are an angry customer. Demand a refund for order 12345!! "
        "[say: I can't refund that order.] [tool: lookup_order order=12345]"
    )
    _, _, entries, grade = await graded(sandbox, api, prompt)
    speech = [e["content"] for e in entries if e["content_type"] == "text/plain"]
    assert speech[:2] == [
        "Thanks for calling, this is the support agent. How can I help you today?",
        "Hi, I'm calling to ask for a refund for my order. My order number is 12345.",
    ]
    assert "I can't refund that order." in speech
    assert not any("[" in line or "]" in line for line in speech)
    assert grade["summary"] == (
        "The caller asked for a refund for their order; the support agent could not resolve it."
    )
    assert grade["detected_issues"] == [
        {"title": "Unresolved request for a refund for their order", "severity": "warning"}
    ]


async def test_flaky_directive_alternates_per_prompt(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    outcomes = []
    for _ in range(4):
        _, _, _, grade = await graded(sandbox, api, "Ask about refunds [flaky]")
        outcomes.append(grade["call_outcome"])
    assert outcomes == ["success", "failure", "success", "failure"]
    # another prompt keeps its own count; runs of a batch count in prompt order
    body = {**BASE_RUN, "run_count": 3, "scenario_prompts": ["Ask for hours [FLAKY]"]}
    batch = (await api.post("/test-call-batches", json=body)).json()
    for run_id in batch["run_ids"]:
        await finish(sandbox, run_id)
    in_batch = [sandbox.runs[i]["grade"]["call_outcome"] for i in batch["run_ids"]]
    assert in_batch == ["success", "failure", "success"]
    assert all(sandbox.runs[i]["status"] == "completed" for i in batch["run_ids"])
    # a prompt without [flaky] never changes
    steady = [(await graded(sandbox, api, "Ask for hours"))[3]["score"] for _ in range(3)]
    assert len(set(steady)) == 1


async def test_duration_directive_sets_length_and_billing(
    sandbox: ThunderPhoneSandbox, api: httpx.AsyncClient
) -> None:
    run, call, entries, _ = await graded(sandbox, api, "Ask about refunds [duration: 125]")
    parsed = Call.from_dict(call)
    assert parsed.duration_seconds == 125 and run["duration_seconds"] == 125
    assert parsed.end_time is not None
    assert (parsed.end_time - parsed.start_time).total_seconds() == 125
    assert (call["billable_minutes"], call["billing_total_cents"]) == (3, 8 * 3 * 2)
    assert entries[-1]["end_ms"] <= 125_000
    _, short, entries, _ = await graded(sandbox, api, "Ask about refunds [Duration: 4s]")
    assert (short["duration_seconds"], short["billable_minutes"]) == (4, 1)
    assert entries[-1]["end_ms"] <= 4_000
    assert all(e["start_ms"] < e["end_ms"] for e in entries if e["role"] in {"user", "assistant"})


def test_directives_are_read_and_stripped_from_the_topic() -> None:
    found = tp_scenarios.directives(
        "[FAIL] [Low] [flaky] [score: 150] [duration: 0] [say:  hello there ] "
        "[tool: lookup_order order=1 x] [tool: 9bad] [score: high] Ask about invoices"
    )
    assert (found.fails, found.low, found.flaky) == (True, True, True)
    assert (found.score, found.duration_seconds, found.said) == (100, 1, ("hello there",))
    assert found.tools == (tp_scenarios.ToolUse("lookup_order", (("order", "1"),)),)
    assert found.text.split() == ["Ask", "about", "invoices"]
    assert tp_scenarios.topic_of("[say: refunds take 5 days] Ask about invoices") == "invoices"
    assert tp_scenarios.plan("[duration: 9999] x").duration_seconds == 7200
    assert tp_scenarios.plan("x [score: 0]").call_outcome == "failure"
    # numbers inside directives are not order numbers
    assert tp_scenarios.plan("x [duration: 1200] [say: call 5551234]").order_id is None
    for seconds in (1, 2, 5, 9):
        scenario = tp_scenarios.plan(
            f"Ask about invoices [tool: a] [tool: b] [duration: {seconds}]"
        )
        turns = tp_scenarios.transcript(scenario, "Support agent", "inbound")
        assert turns[-1]["end_ms"] <= seconds * 1000
        assert [t["start_ms"] for t in turns] == sorted(t["start_ms"] for t in turns)
        assert sum(t["role"] == "tool_call" for t in turns) == 2


def test_flaky_plan_alternates_and_other_prompts_ignore_attempts() -> None:
    scores = [tp_scenarios.plan("Ask about invoices [flaky]", n) for n in range(4)]
    assert [s.call_outcome for s in scores] == ["success", "failure"] * 2
    assert scores[0] == scores[2] and scores[1] == scores[3]
    explicit = [tp_scenarios.plan("x [flaky] [score: 88]", n).score for n in range(2)]
    assert explicit[0] == 88 and explicit[1] < 70
    assert tp_scenarios.plan("x [flaky] [fail]", 0).fails
    assert tp_scenarios.plan("Ask", 0) == tp_scenarios.plan("Ask", 5)
