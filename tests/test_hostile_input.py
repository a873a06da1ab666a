"""Hostile and unusual input, with a clear answer every time and nothing half-stored.

Requests on both routes are refused with a clear status before anything is parsed or stored and
are never allowed to hold a connection; ids beyond ThunderPhone's, in commands, buttons, forms and
webhooks, are named; transcripts, suite files and ThunderPhone's answers of any shape are shown or
refused. Never a traceback in the log."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx
import pytest
from aiohttp import web
from thunderphone.webhooks import compute_signature

from bot import ids
from bot.blocks.modals import flag_modal
from bot.bodies import MAX_BODY_BYTES
from bot.sandbox.stack import SIGNING_SECRET, WEBHOOK_SECRET, LocalStack
from bot.suites import SuiteError, parse_suite
from bot.thunderphone import ThunderPhoneBadResponse, ThunderPhoneClient, sign_v1
from handlers.webhooks import ROUTE
from storage.runs import save_transcript
from tests.helpers import (
    confirm,
    rows,
    shown,
    start_run,
    wait_for_card,
    wait_for_graded_result,
)
from tests.test_blocks import make_run

NOT_UTF8 = b"command=%2Ftestcall&text=\xff\xfe\xfd run agent:12 \xc3\x28"
DEEP = b"[" * 200_000 + b"]" * 200_000
HUGE = b"text=" + b"a" * (2 * MAX_BODY_BYTES)
BODIES = {"not utf-8": NOT_UTF8, "deeply nested": DEEP, "huge": HUGE, "empty": b""}
BODY_TIMEOUT = 0.5


@pytest.fixture
async def guarded() -> AsyncIterator[LocalStack]:
    """The stack with a short body timeout, so a stalled client is given up on quickly."""
    async with LocalStack(step_seconds=None, thunderbot_body_timeout=BODY_TIMEOUT) as running:
        yield running


def slack_signature(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """As Slack signs: v0= and the hex HMAC-SHA256 of `v0:<timestamp>:<raw body>`."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_headers(body: bytes, *, secret: str = SIGNING_SECRET, age: int = 0) -> dict[str, str]:
    stamp = str(int(time.time()) - age)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": slack_signature(body, stamp, secret),
    }


def v2_headers(body: bytes, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = int(time.time())
    signature = compute_signature(secret, timestamp=stamp, method="POST", path=ROUTE, body=body)
    return {
        "Content-Type": "application/json",
        "X-ThunderPhone-Signature-V2": f"t={stamp},v1={signature}",
    }


async def post(url: str, body: bytes, headers: Mapping[str, str | bytes]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=headers)


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == [], [r.getMessage() for r in errors]


def nothing_stored(stack: LocalStack) -> None:
    assert rows(stack, "webhook_events") == []
    assert rows(stack, "launches") == []
    posted = {"chat.postMessage", "chat.update", "views.open", "files.completeUploadExternal"}
    assert [c.method for c in stack.fake.calls if c.method in posted] == []


# ------------------------------------------------------------------ POST /slack/events


@pytest.mark.parametrize("kind", list(BODIES))
async def test_an_unsigned_slack_request_gets_401_whatever_its_body(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    caplog.set_level(logging.INFO)
    body = BODIES[kind]
    stamp = str(int(time.time()))
    cases = {
        "no signature": {"Content-Type": "application/x-www-form-urlencoded"},
        "wrong secret": slack_headers(body, secret="not-the-secret"),
        "stale": slack_headers(body, age=301),
        "garbled": {
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": "v0=zz\u00e9".encode(),
        },
        "odd timestamp": {"X-Slack-Request-Timestamp": "9" * 40, "X-Slack-Signature": "v0=00"},
    }
    for case, headers in cases.items():
        response = await post(stack.events_url, body, headers)
        assert (case, response.status_code) == (case, 401)
        assert response.json() == {"error": "invalid request"}
    assert (
        sum("rejected a request to the Slack route" in r.getMessage() for r in caplog.records) == 5
    )
    no_errors_logged(caplog)
    nothing_stored(stack)


async def test_a_signed_slack_request_over_the_limit_gets_413(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    response = await post(stack.events_url, HUGE, slack_headers(HUGE))
    assert response.status_code == 413
    assert response.json() == {"error": "request too large"}
    no_errors_logged(caplog)
    nothing_stored(stack)


@pytest.mark.parametrize(
    "kind", ["not utf-8", "deeply nested", "a JSON list", "null", "payload=1", "payload=[]"]
)
async def test_a_signed_but_unreadable_slack_request_gets_400(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    body = BODIES.get(kind) or {"a JSON list": b"[]", "null": b"null"}.get(kind) or kind.encode()
    headers = slack_headers(body)
    if not kind.startswith(("payload", "not utf-8")):
        headers["Content-Type"] = "application/json"
    response = await post(stack.events_url, body, headers)
    assert response.status_code == 400
    no_errors_logged(caplog)
    nothing_stored(stack)


async def test_a_signed_slack_command_still_works_after_the_checks(stack: LocalStack) -> None:
    reply = await stack.user().slash('run agent:12 "Ask about <refunds> & returns"')
    assert reply.status == 200
    assert reply.ephemeral is not None
    assert reply.ephemeral.text.startswith("Start a test call on Support agent (agent 12)?")
    assert "Ask about &lt;refunds&gt; &amp; returns" in shown(reply.ephemeral)


# ------------------------------------------------------------------ POST /webhooks/thunderphone


@pytest.mark.parametrize("kind", list(BODIES))
async def test_an_unsigned_webhook_gets_401_whatever_its_body(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    body = BODIES[kind]
    cases = {
        "no signature": {"Content-Type": "application/json"},
        "wrong v2 secret": v2_headers(body, secret="whsec_other"),
        "wrong v1 secret": {"X-ThunderPhone-Signature": sign_v1("whsec_other", body)},
        "malformed v2": {"X-ThunderPhone-Signature-V2": "t=\u00e9,v1=".encode()},
        "stale v2": {"X-ThunderPhone-Signature-V2": "t=1000,v1=" + "0" * 64},
    }
    for case, headers in cases.items():
        response = await post(stack.webhook_url, body, headers)
        assert (case, response.status_code) == (case, 401)
        assert response.json()["ok"] is False
    no_errors_logged(caplog)
    nothing_stored(stack)


@pytest.mark.parametrize("scheme", ["v2", "v1"])
async def test_a_signed_webhook_over_the_limit_gets_413(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, scheme: str
) -> None:
    headers = (
        v2_headers(HUGE)
        if scheme == "v2"
        else {"X-ThunderPhone-Signature": sign_v1(WEBHOOK_SECRET, HUGE)}
    )
    response = await post(stack.webhook_url, HUGE, headers)
    assert response.status_code == 413
    no_errors_logged(caplog)
    nothing_stored(stack)


@pytest.mark.parametrize("kind", ["not utf-8", "deeply nested"])
async def test_a_signed_but_unreadable_webhook_gets_400(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    body = BODIES[kind]
    response = await post(stack.webhook_url, body, v2_headers(body))
    assert response.status_code == 400
    assert response.json()["error"].startswith("unreadable event")
    no_errors_logged(caplog)
    nothing_stored(stack)


@pytest.mark.parametrize(
    ("event_type", "data", "named"),
    [
        ("test-call.completed", {"id": 2**70, "status": "completed"}, f"run {2**70}"),
        ("test-call.completed", {"test_call_run": {"id": str(2**64)}}, f"run {2**64}"),
        ("call.graded", {"call_id": 2**70, "grade": {"score": 90}}, f"call {2**70}"),
        (
            "test-call.completed",
            {"id": 7, "call_id": 2**70, "status": "completed"},
            f"data.call_id = {2**70}",
        ),
        (
            "call.graded",
            {"call_id": 42, "grade": {"score": 90, "scores": [1, -(2**64)]}},
            f"data.grade.scores[1] = {-(2**64)}",
        ),
    ],
)
async def test_a_webhook_naming_an_id_beyond_thunderphones_is_refused_by_name(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, event_type: str, data: object, named: str
) -> None:
    body = json.dumps({"event_id": "evt-big", "type": event_type, "data": data}).encode()
    response = await post(stack.webhook_url, body, v2_headers(body))
    assert response.status_code == 400
    assert named in response.json()["error"]
    no_errors_logged(caplog)
    nothing_stored(stack)


# ------------------------------------------------------------------ slow clients


async def _stalled_request(url: str, head: dict[str, str], sent: bytes, *, trickle: bool) -> bytes:
    """Send a request's headers and the first bytes of a longer body, then stall (or send one
    byte at a time); everything the server answers, until it closes the connection."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 100000"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + sent)
    await writer.drain()

    async def trickling() -> None:
        while trickle:
            await asyncio.sleep(BODY_TIMEOUT / 10)
            writer.write(b"a")
            await writer.drain()

    async def answer() -> bytes:
        received = b""
        try:
            while chunk := await reader.read(65536):
                received += chunk
        except ConnectionResetError:
            # A client still trickling once the server has closed is reset by the server's
            # side: what arrived before that is the answer.
            pass
        return received

    feeder = asyncio.create_task(trickling())
    try:
        # Far longer than the bot's body timeout: a hang fails here, not on a clock.
        return await asyncio.wait_for(answer(), timeout=60)
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
        writer.close()


@pytest.mark.parametrize("trickle", [False, True], ids=["stalls", "trickles"])
@pytest.mark.parametrize("route", ["slack", "webhook"])
async def test_a_client_that_stalls_mid_body_gets_408_and_a_closed_connection(
    guarded: LocalStack, caplog: pytest.LogCaptureFixture, route: str, trickle: bool
) -> None:
    caplog.set_level(logging.INFO)
    if route == "slack":
        url, head = guarded.events_url, slack_headers(b"whatever")
    else:
        url, head = guarded.webhook_url, v2_headers(b"whatever")
    answer = await _stalled_request(url, head, b"command=%2Ftestcall", trickle=trickle)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b"body not received within 0.5 s" in answer
    assert any("gave up on" in r.getMessage() for r in caplog.records)
    no_errors_logged(caplog)
    nothing_stored(guarded)


# ------------------------------------------------------------------ ids beyond ThunderPhone's

TOO_BIG = "99999999999999999999"  # > 2**63 - 1: no ThunderPhone id, no SQLite integer


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (f'run agent:{TOO_BIG} "Ask about refunds"', f"There is no agent {TOO_BIG}"),
        (f'run number:{TOO_BIG} "Ask about refunds"', f"There is no number {TOO_BIG}"),
        (f'batch agent:{TOO_BIG} "one" "two"', f"There is no agent {TOO_BIG}"),
        (f"alias set support agent:{TOO_BIG}", f"There is no agent {TOO_BIG}"),
        (f"smoke agent:{TOO_BIG}", f"There is no agent {TOO_BIG}"),
        (f"audit {TOO_BIG}{TOO_BIG}", f"There is no run {TOO_BIG}{TOO_BIG}"),
        ("run agent:" + "9" * 5000 + ' "x"', "(5000 digits)"),
        ('run agent:² "Ask about refunds"', 'I couldn\'t read "agent:²"'),
        (
            'batch agent:12 --repeat ² "one"',
            '--repeat is how often each scenario runs, from 1 to 5; "²"',
        ),
    ],
)
async def test_a_command_naming_an_impossible_id_is_refused_by_name(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, text: str, named: str
) -> None:
    reply = await stack.user().slash(text)
    assert reply.status == 200
    assert named in shown(reply.ephemeral)
    assert [r.path for r in stack.sandbox.requests] == []
    no_errors_logged(caplog)
    nothing_stored(stack)
    assert rows(stack, "aliases") == []


@pytest.mark.parametrize("action_id", [ids.SHOW_TRANSCRIPT, ids.FLAG_RUN, ids.RUN_AGAIN])
async def test_a_button_naming_an_impossible_run_id_is_answered_by_name(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, action_id: str
) -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Go"},
        "action_id": action_id,
        "value": f"run={TOO_BIG}",
    }
    message = stack.fake.add_message(
        "C0QA", text="old", blocks=[{"type": "actions", "elements": [button]}]
    )
    assert await stack.user().click(message, action_id) == 200
    answer = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if TOO_BIG in e.text), None)
    )
    assert answer.text == f"I have no test call run {TOO_BIG}: that id is beyond any the bot keeps."
    no_errors_logged(caplog)
    nothing_stored(stack)


# ------------------------------------------------------------------ the transcript modal


def hostile_turn(number: int) -> dict[str, object]:
    said = f"turn {number} " + "<&>" * (700 if number % 3 else 5) + f" <!channel> end {number}"
    return {"role": "user" if number % 2 else "assistant", "content": said}


async def test_the_transcript_modal_pages_a_hostile_transcript_to_its_last_turn(
    live_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    call_id = stack.sandbox.runs[max(stack.sandbox.runs)]["call_id"]
    turns = [hostile_turn(number) for number in range(1, 131)]
    turns.append({"role": "<!here>", "content": ""})  # an unknown speaker who said nothing
    save_transcript(stack.services.db, call_id, turns)

    assert await maria.click(result, ids.SHOW_TRANSCRIPT) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    seen: list[str] = []
    for page in range(1, 5):
        blocks = modal.view["blocks"]
        assert f"Page {page} of 4 · 131 turns" in json.dumps(blocks, ensure_ascii=False)
        sections = [b["text"]["text"] for b in blocks if b["type"] == "section"]
        assert all(0 < len(text) <= 3000 for text in sections)
        seen += [line for text in sections for line in text.splitlines()]
        if page < 4:
            [nav] = [b for b in blocks if b.get("block_id") == "transcript_nav"]
            [after] = [e["value"] for e in nav["elements"] if e["text"]["text"] == "Next →"]
            assert await maria.click_in_view(modal.id, ids.TRANSCRIPT_PAGE, value=after) == 200
            wanted = f"Page {page + 1} of 4"
            modal = await stack.fake.wait_for(
                lambda view=modal, wanted=wanted: (
                    view if wanted in str(view.view["blocks"]) else None
                )
            )
    assert [line.split("`")[1].strip() for line in seen] == [str(n) for n in range(1, 132)]
    assert seen[128].endswith("&lt;!channel&gt; end 129")  # a short turn, shown whole
    assert seen[129].endswith(("&lt;…", "&amp;…", "&gt;…"))  # a long one, cut between escapes
    assert seen[130] == "`131`  *&lt;!here&gt;:*  …"
    assert "<!channel>" not in json.dumps(modal.view) and "<&>" not in json.dumps(modal.view)
    no_errors_logged(caplog)


# ------------------------------------------------------------------ suite files


def test_a_suite_file_python_cannot_read_is_refused_with_a_reason() -> None:
    with pytest.raises(SuiteError, match="nested too deeply"):
        parse_suite("[" * 100_000, name="refunds", filename=None)
    with pytest.raises(SuiteError, match="a number too long to read"):
        parse_suite("[" + "9" * 5000 + "]", name="refunds", filename=None)


async def test_a_pasted_suite_nested_too_deeply_is_named_in_the_form(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    maria = stack.user()
    reply = await maria.slash("suite import")
    assert reply.status == 200
    form = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    pasted = "[" * 2999  # as much as the form's input holds
    status, answer = await maria.submit_view(
        form.id, {ids.SUITE_JSON: {ids.INPUT_VALUE: {"type": "plain_text_input", "value": pasted}}}
    )
    assert status == 200
    assert answer["response_action"] == "errors"
    assert any("nested too deeply" in error for error in answer["errors"].values())
    assert rows(stack, "suites") == []
    no_errors_logged(caplog)


async def test_a_flag_form_naming_an_impossible_run_id_is_answered_by_name(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    form = flag_modal(make_run(), turns=3)
    form["private_metadata"] = f"run={TOO_BIG}"
    view = stack.fake.push_view(form, user="U0MARIA", method="views.open")
    status, answer = await stack.user().submit_view(view.id)
    assert status == 200
    named = f"I have no test call run {TOO_BIG}: that id is beyond any the bot keeps."
    assert answer == {"response_action": "errors", "errors": {ids.FLAG_TITLE: named}}
    assert rows(stack, "flags") == []
    no_errors_logged(caplog)


@pytest.mark.parametrize("route", ["slack", "webhook"])
async def test_a_client_that_hangs_up_mid_body_leaves_no_trace(
    stack: LocalStack, caplog: pytest.LogCaptureFixture, route: str
) -> None:
    caplog.set_level(logging.INFO)
    if route == "slack":
        url, head = stack.events_url, slack_headers(b"whatever")
    else:
        url, head = stack.webhook_url, v2_headers(b"whatever")
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Content-Length: 100000"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b"command=%2Ftestcall")
    await writer.drain()
    writer.write_eof()  # no more is coming
    answer = await asyncio.wait_for(reader.read(), timeout=60)
    writer.close()
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400 ")
    await stack.fake.wait_for(
        lambda: any("gave up on" in r.getMessage() for r in caplog.records) or None
    )
    no_errors_logged(caplog)
    nothing_stored(stack)


async def test_half_a_surrogate_pair_in_a_slack_payload_is_stored_as_a_replacement(
    live_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    assert await maria.click(result, ids.FLAG_RUN) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    # JSON can spell a lone surrogate (`"\ud800"`); no UTF-8 text can hold one.
    typed = {"type": "plain_text_input", "value": "Agent said \ud800 twice"}
    status, answer = await maria.submit_view(modal.id, {ids.FLAG_TITLE: {ids.INPUT_VALUE: typed}})
    assert (status, answer) == (200, None)
    await stack.fake.wait_for(lambda: rows(stack, "flags") or None)
    [flag] = rows(stack, "flags")
    assert flag["title"] == "Agent said \ufffd\ufffd\ufffd twice"
    no_errors_logged(caplog)


async def test_half_a_surrogate_pair_in_a_webhook_is_applied_as_a_replacement(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = await start_run(stack)
    data = {"id": run_id, "status": "failed", "error_message": "SIP \ud800 busy"}
    body = json.dumps({"event_id": "evt-half", "type": "test-call.completed", "data": data})
    assert "\\ud800" in body  # as JSON spells it
    response = await post(stack.webhook_url, body.encode(), v2_headers(body.encode()))
    assert response.status_code == 200
    await wait_for_card(stack, "SIP \ufffd\ufffd\ufffd busy")
    no_errors_logged(caplog)


# ------------------------------------------------------------------ what ThunderPhone answers


@pytest.fixture
async def odd_thunderphone() -> AsyncIterator[tuple[str, dict[str, str]]]:
    """An HTTP server on loopback answering GET /v1/test-calls with whatever text is set."""
    answer = {"text": "[]"}

    async def runs(request: web.Request) -> web.Response:
        return web.Response(text=answer["text"], content_type="application/json")

    app = web.Application()
    app.router.add_get("/v1/test-calls", runs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", answer
    finally:
        await runner.cleanup()


async def test_odd_json_from_thunderphone_is_read_or_refused_clearly(
    odd_thunderphone: tuple[str, dict[str, str]],
) -> None:
    url, answer = odd_thunderphone
    async with ThunderPhoneClient(base_url=url, api_key="sk_test_x") as client:
        answer["text"] = '[{"id": 1, "status": "failed", "error_message": "SIP \\ud800 busy"}]'
        [run] = await client.list_test_calls()
        assert run.error_message == "SIP \ufffd\ufffd\ufffd busy"
        answer["text"] = "[" * 100_000
        with pytest.raises(ThunderPhoneBadResponse, match="not JSON"):
            await client.list_test_calls()
