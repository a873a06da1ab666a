"""The ThunderPhone client against a recording HTTP server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import stamina
from aiohttp import web

from bot.thunderphone import (
    BatchRequest,
    IssueReportRequest,
    TestCallRequest,
    ThunderPhoneAuthError,
    ThunderPhoneBadResponse,
    ThunderPhoneClient,
    ThunderPhoneError,
    ThunderPhoneInvalid,
    ThunderPhoneNotFound,
    ThunderPhonePaymentRequired,
    ThunderPhoneUnavailable,
)
from bot.thunderphone.client import default_http
from bot.thunderphone.errors import extract_detail, field_words

API_KEY = "sk_live_test_0123456789"

RUN: dict[str, Any] = {
    "id": 7110, "target_type": "agent", "target_id": 12, "direction": "outbound",
    "target_number": "", "scenario_prompt": "Ask about refunds.", "mode": "bot",
    "status": "queued", "charge_multiplier": 2, "estimated_cost_cents": 16, "call_id": None,
    "sip_call_id": None, "batch_id": None, "error_message": "", "started_at": None,
    "completed_at": None, "created_at": "2026-04-20T18:24:09.011Z",
    "updated_at": "2026-04-20T18:24:09.011Z",
}  # fmt: skip

CALL: dict[str, Any] = {
    "call_id": 987654321, "agent_id": 12, "direction": "outbound", "status": "completed",
    "end_reason": "caller_hangup", "duration_seconds": 54, "grade_score": 92,
    "is_test_call": True,
}  # fmt: skip


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int
    body: Any = None
    text: str | None = None


@dataclass
class FakeThunderPhone:
    """Answers canned replies per (method, path) and records every request."""

    base_url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    replies: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)

    def reply(
        self, method: str, path: str, status: int, body: Any = None, *, text: str | None = None
    ) -> None:
        self.replies.setdefault((method, path), []).append(Reply(status, body, text))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers={name.lower(): value for name, value in request.headers.items()},
                body=await request.read(),
            )
        )
        queue = self.replies.get((request.method, request.path))
        if not queue:
            return web.json_response({"detail": "no canned reply"}, status=418)
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if reply.text is not None:
            return web.Response(status=reply.status, text=reply.text, content_type="text/html")
        return web.json_response(reply.body, status=reply.status)


@pytest.fixture(autouse=True)
def retries_without_sleeping() -> Iterator[None]:
    with stamina.set_testing(True, attempts=3):
        yield


@pytest.fixture
async def server() -> AsyncIterator[FakeThunderPhone]:
    fake = FakeThunderPhone()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(server: FakeThunderPhone) -> AsyncIterator[ThunderPhoneClient]:
    tp = ThunderPhoneClient(base_url=server.base_url + "/", api_key=API_KEY)
    try:
        yield tp
    finally:
        await tp.aclose()


def only_request(server: FakeThunderPhone) -> Recorded:
    assert len(server.requests) == 1, [r.path for r in server.requests]
    return server.requests[0]


@pytest.mark.parametrize("status", [200, 201])
async def test_create_test_call_sends_exact_request(
    server: FakeThunderPhone, client: ThunderPhoneClient, status: int
) -> None:
    server.reply("POST", "/v1/test-calls", status, RUN)
    run = await client.create_test_call(
        TestCallRequest(
            target_type="agent", target_id=12, consent_to_charge=True, scenario_prompt="Hi"
        )
    )
    assert (run.id, run.status, run.call_id) == (7110, "queued", None)
    sent = only_request(server)
    assert (sent.method, sent.path) == ("POST", "/v1/test-calls")
    assert sent.headers["authorization"] == f"Bearer {API_KEY}"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers["content-type"] == "application/json"
    assert sent.headers["x-thunderphone-client"].startswith("thunderbot/")
    assert sent.json() == {
        "target_type": "agent",
        "target_id": 12,
        "direction": "outbound",
        "consent_to_charge": True,
        "scenario_prompt": "Hi",
        "mode": "bot",
    }


async def test_create_batch(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply(
        "POST",
        "/v1/test-call-batches",
        201,
        {"id": 301, "status": "in_progress", "run_ids": [1, 2], "total_runs": 2},
    )
    batch = await client.create_batch(
        BatchRequest(
            target_type="phone_number",
            target_id=4,
            consent_to_charge=True,
            run_count=2,
            scenario_prompts=["a", "b"],
            target_number="+14155550199",
        )
    )
    assert (batch.id, batch.status, batch.run_ids) == (301, "in_progress", [1, 2])
    sent = only_request(server)
    assert sent.json() == {
        "target_type": "phone_number",
        "target_id": 4,
        "direction": "outbound",
        "consent_to_charge": True,
        "target_number": "+14155550199",
        "run_count": 2,
        "stagger_seconds": 0,
        "scenario_prompts": ["a", "b"],
        "name": "",
    }


async def test_get_batch(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply("GET", "/v1/test-call-batches/301", 200, {"id": 301, "completed_runs": 3})
    batch = await client.get_batch(301)
    assert (batch.id, batch.completed_runs) == (301, 3)
    assert only_request(server).method == "GET"


async def test_field_errors_are_flattened_into_invalid(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply(
        "POST",
        "/v1/test-calls",
        400,
        {
            "target_id": ["Agent 99 is not in this organization."],
            "consent_to_charge": ["Must be true."],
        },
    )
    with pytest.raises(ThunderPhoneInvalid) as caught:
        await client.create_test_call(
            TestCallRequest(target_type="agent", target_id=99, consent_to_charge=False)
        )
    error = caught.value
    # Field names become the words a person uses, each problem one sentence.
    expected = "Target: Agent 99 is not in this organization. Consent to charge: Must be true."
    assert (error.status, error.detail) == (400, expected)
    assert error.user_message == f"ThunderPhone rejected the request (HTTP 400): {expected}"
    assert only_request(server).json()["consent_to_charge"] is False


def test_field_names_are_said_as_words() -> None:
    assert field_words("target_id") == "Target"
    assert field_words("scenario_prompts.2") == "Scenario 3"
    assert field_words("metadata.some_key") == "Metadata Some key"
    assert "_" not in extract_detail({"run_count": ["Ensure this value is <= 20"]}, "")


@pytest.mark.parametrize(
    ("status", "error_type", "message"),
    [
        (
            401,
            ThunderPhoneAuthError,
            "ThunderPhone rejected the API key (HTTP 401). "
            "Ask an admin to check THUNDERPHONE_API_KEY.",
        ),
        (
            402,
            ThunderPhonePaymentRequired,
            "ThunderPhone says the balance is empty (HTTP 402). Top up, then run again.",
        ),
        (
            404,
            ThunderPhoneNotFound,
            "ThunderPhone says that was not found (HTTP 404): Computer says no.",
        ),
    ],
)
async def test_rejections_map_to_typed_errors(
    server: FakeThunderPhone,
    client: ThunderPhoneClient,
    status: int,
    error_type: type[ThunderPhoneError],
    message: str,
) -> None:
    server.reply("POST", "/v1/test-calls", status, {"detail": "Computer says no."})
    with pytest.raises(error_type) as caught:
        await client.create_test_call(
            TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
        )
    assert (caught.value.status, caught.value.detail) == (status, "Computer says no.")
    assert caught.value.user_message == message
    assert caught.value.body == {"detail": "Computer says no."}


async def test_503_on_post_is_not_retried(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("POST", "/v1/test-calls", 503, {"detail": "busy"})
    server.reply("POST", "/v1/test-calls", 201, RUN)
    with pytest.raises(ThunderPhoneUnavailable) as caught:
        await client.create_test_call(
            TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
        )
    assert caught.value.status == 503
    assert caught.value.user_message == (
        "ThunderPhone had a problem on its side (HTTP 503). Nothing was charged if the run "
        "did not start; try again in a minute."
    )
    assert [r.method for r in server.requests] == ["POST"]


async def test_503_on_get_is_retried(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply("GET", "/v1/calls/987654321", 503, {"detail": "busy"})
    server.reply("GET", "/v1/calls/987654321", 200, CALL)
    call = await client.get_call(987654321)
    assert call.call_id == 987654321
    assert call.grade_score == pytest.approx(0.92)
    assert [r.path for r in server.requests] == ["/v1/calls/987654321"] * 2


async def test_get_gives_up_after_three_attempts(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/calls/5", 502, text="<html>" + "bad gateway " * 100 + "</html>")
    with pytest.raises(ThunderPhoneUnavailable) as caught:
        await client.get_call(5)
    assert caught.value.status == 502
    assert caught.value.detail.startswith("<html>bad gateway")
    assert len(caught.value.detail) <= 300
    assert len(server.requests) == 3


async def test_4xx_on_get_is_not_retried(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/calls/5", 404, {"detail": "Not found."})
    with pytest.raises(ThunderPhoneNotFound):
        await client.get_call(5)
    assert len(server.requests) == 1


async def test_non_json_2xx_is_bad_response(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("POST", "/v1/test-calls", 200, text="<html>ok</html>")
    with pytest.raises(ThunderPhoneBadResponse) as caught:
        await client.create_test_call(
            TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
        )
    assert caught.value.status == 200
    assert "not JSON" in caught.value.detail
    assert "may have started" in caught.value.user_message
    assert len(server.requests) == 1


async def test_2xx_missing_needed_field_is_bad_response(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("POST", "/v1/test-calls", 201, {"id": 7110})
    with pytest.raises(ThunderPhoneBadResponse) as caught:
        await client.create_test_call(
            TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
        )
    assert caught.value.status == 201
    assert "status" in caught.value.detail


async def test_get_grade(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply("GET", "/v1/calls/42/grade", 200, {"id": 9, "score": 0.75, "status": "completed"})
    grade = await client.get_grade(42)
    assert grade is not None
    assert (grade.call_id, grade.id, grade.score) == (42, 9, 0.75)


async def test_get_agent_and_phone_number(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/agents/12", 200, {"id": 12, "name": "Support", "product": "spark"})
    server.reply("GET", "/v1/phone-numbers/34", 200, {"id": 34, "label": "Main line"})
    agent = await client.get_agent(12)
    number = await client.get_phone_number(34)
    assert (agent.name, agent.product, number.label) == ("Support", "spark", "Main line")
    assert [r.path for r in server.requests] == ["/v1/agents/12", "/v1/phone-numbers/34"]


async def test_get_agent_404_is_not_found(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/agents/99", 404, {"detail": "Not found."})
    with pytest.raises(ThunderPhoneNotFound):
        await client.get_agent(99)


async def test_get_grade_404_means_not_graded_yet(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/calls/42/grade", 404, {"detail": "Not found."})
    assert await client.get_grade(42) is None
    assert len(server.requests) == 1


@pytest.mark.parametrize("envelope", [False, True], ids=["array", "envelope"])
async def test_list_test_calls(
    server: FakeThunderPhone, client: ThunderPhoneClient, envelope: bool
) -> None:
    runs = [RUN, {**RUN, "id": 7111, "status": "completed", "call_id": 5}]
    body: Any = {"limit": 200, "offset": 0, "total": 2, "results": runs} if envelope else runs
    server.reply("GET", "/v1/test-calls", 200, body)
    listed = await client.list_test_calls(status="completed", agent_id=12)
    assert [(run.id, run.status) for run in listed] == [(7110, "queued"), (7111, "completed")]
    assert only_request(server).query == {
        "limit": "200",
        "offset": "0",
        "status": "completed",
        "agent_id": "12",
    }


async def test_list_test_calls_skips_an_unreadable_row(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/test-calls", 200, [{"id": 1}, RUN, "junk"])
    listed = await client.list_test_calls()
    assert [run.id for run in listed] == [7110]


async def test_list_test_calls_rejects_other_shapes(
    server: FakeThunderPhone, client: ThunderPhoneClient
) -> None:
    server.reply("GET", "/v1/test-calls", 200, {"runs": []})
    with pytest.raises(ThunderPhoneBadResponse, match="list of runs"):
        await client.list_test_calls(limit=5, offset=10)
    assert only_request(server).query == {"limit": "5", "offset": "10"}


async def test_get_transcript(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply(
        "GET",
        "/v1/calls/42/transcript",
        200,
        {"call_id": 42, "transcripts": [{"role": "user", "content": "Hello?"}]},
    )
    transcript = await client.get_transcript(42)
    assert [(e.role, e.content) for e in transcript.entries] == [("user", "Hello?")]


async def test_create_issue_report(server: FakeThunderPhone, client: ThunderPhoneClient) -> None:
    server.reply(
        "POST",
        "/v1/calls/42/issue-reports",
        201,
        {"id": 4321, "call_id": 42, "title": "Paused", "trace_id": "5f9a", "status": "open"},
    )
    issue = await client.create_issue_report(
        42, IssueReportRequest(title="Paused", severity="critical", failing_turn_index=3)
    )
    assert (issue.id, issue.trace_id, issue.status) == (4321, "5f9a", "open")
    assert only_request(server).json() == {
        "title": "Paused",
        "description": "",
        "severity": "critical",
        "source": "user",
        "failing_turn_index": 3,
        "metadata": {},
    }


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_host_is_unavailable() -> None:
    tp = ThunderPhoneClient(base_url=f"http://127.0.0.1:{unused_port()}", api_key=API_KEY)
    try:
        with pytest.raises(ThunderPhoneUnavailable) as caught:
            await tp.create_test_call(
                TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
            )
        with pytest.raises(ThunderPhoneUnavailable):
            await tp.get_call(1)
    finally:
        await tp.aclose()
    assert caught.value.status is None
    assert caught.value.user_message == (
        "I couldn't reach ThunderPhone (the connection failed). Try again in a minute."
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [(False, "the connection dropped"), (True, "the request timed out")],
)
async def test_transport_failures_say_what_happened(answer: bool, reason: str) -> None:
    """The default transport (aiohttp under httpx) names a hang-up and a timeout as such."""
    writers: list[asyncio.StreamWriter] = []
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.readuntil(b"\r\n\r\n")
        if answer:
            await done.wait()  # never answers while the client waits
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = default_http()
    http.timeout = httpx.Timeout(0.3)
    tp = ThunderPhoneClient(base_url=url, api_key=API_KEY, http=http)
    try:
        with pytest.raises(ThunderPhoneUnavailable) as caught:
            await tp.create_test_call(
                TestCallRequest(target_type="agent", target_id=12, consent_to_charge=True)
            )
    finally:
        done.set()
        await http.aclose()
        server.close()
        for writer in writers:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await server.wait_closed()
    assert caught.value.user_message == (
        f"I couldn't reach ThunderPhone ({reason}). Try again in a minute."
    )


async def test_injected_http_client_is_used_and_left_open(server: FakeThunderPhone) -> None:
    async with httpx.AsyncClient(headers={"X-Request-Source": "ci"}) as http:
        tp = ThunderPhoneClient(base_url=server.base_url, api_key=API_KEY, http=http)
        server.reply("GET", "/v1/calls/1", 200, {**CALL, "call_id": 1})
        assert (await tp.get_call(1)).call_id == 1
        await tp.aclose()
        assert not http.is_closed
        assert only_request(server).headers["x-request-source"] == "ci"
