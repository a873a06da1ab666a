"""The fake Slack Web API and the Slack user driver, over real loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_user import SlackUser

SECRET = "sandbox-signing-secret"


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def button(label: str, action_id: str, value: str = "v") -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": label},
        "action_id": action_id,
        "value": value,
    }


def modal(callback_id: str, *blocks: dict[str, Any], title: str = "Test call") -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Start"},
        "blocks": list(blocks) or [section("hello")],
    }


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    # No retry handlers: every call the test makes is exactly one request.
    return AsyncWebClient(token=fake.token, base_url=fake.api_url, retry_handlers=[])


async def slack_error(call: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# ---------------------------------------------------------------- Web API


async def test_auth_test_and_users_info(client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["team_id"], auth["user_id"], auth["bot_id"]) == (
        "T0SANDBOX",
        "U0THUNDER",
        "B0THUNDER",
    )
    assert auth["url"] == "https://sandbox.slack.com/"
    user = (await client.users_info(user="U0MARIA"))["user"]
    assert (user["id"], user["name"], user["tz"]) == ("U0MARIA", "maria", "UTC")
    err = await slack_error(client.users_info(user="U0NOBODY"))
    assert err.response["error"] == "user_not_found"


async def test_post_update_and_permalink(fake: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [section("Call *queued*")]
    first = await client.chat_postMessage(channel="C0QA", text="Call queued", blocks=blocks)
    second = await client.chat_postMessage(channel="C0QA", text="reply", thread_ts=first["ts"])
    assert re.fullmatch(r"\d{10}\.\d{6}", first["ts"])
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["blocks"][0]["text"]["text"] == "Call *queued*"
    assert fake.calls_to("chat.postMessage")[0].args["blocks"][0]["type"] == "section"

    await client.chat_update(channel="C0QA", ts=first["ts"], text="Call done", blocks=[])
    parent = fake.messages["C0QA"][0]
    assert (parent.text, parent.blocks, parent.edits) == ("Call done", [], 1)
    assert [m.text for m in fake.thread("C0QA", first["ts"])] == ["reply"]

    link = await client.chat_getPermalink(channel="C0QA", message_ts=first["ts"])
    assert link["permalink"] == (
        f"https://sandbox.slack.com/archives/C0QA/p{first['ts'].replace('.', '')}"
    )


async def test_rejections_as_slack_makes_them(fake: FakeSlack, client: AsyncWebClient) -> None:
    too_many = [section(f"row {i}") for i in range(51)]
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="x", blocks=too_many))
    assert err.response["error"] == "invalid_blocks"
    long_text = [section("x" * 3001)]
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="x", blocks=long_text))
    assert err.response["error"] == "invalid_blocks"
    assert "3000" in err.response["errors"][0]
    unknown = [{"type": "sparkles"}]
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="x", blocks=unknown))
    assert err.response["error"] == "invalid_blocks"
    err = await slack_error(client.chat_postMessage(channel="C0NOPE", text="x"))
    assert err.response["error"] == "channel_not_found"
    err = await slack_error(client.chat_update(channel="C0QA", ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"
    bad = AsyncWebClient(token="xoxb-wrong", base_url=fake.api_url)
    err = await slack_error(bad.chat_postMessage(channel="C0QA", text="x"))
    assert err.response["error"] == "invalid_auth"
    person = fake.add_message("C0QA", text="hi", user="U0LI")
    err = await slack_error(client.chat_update(channel="C0QA", ts=person.ts, text="x"))
    assert err.response["error"] == "cant_update_message"
    assert fake.messages["C0QA"] == [person]
    assert [c.error for c in fake.calls][:2] == ["invalid_blocks", "invalid_blocks"]


async def test_blocks_without_text_warn_like_slack(fake: FakeSlack, client: AsyncWebClient) -> None:
    # api_call skips slack_sdk's own client-side warning, as a raw HTTP caller would.
    resp = await client.api_call(
        "chat.postMessage", json={"channel": "C0QA", "blocks": [section("only blocks")]}
    )
    assert resp["ok"] is True
    assert resp["response_metadata"]["warnings"] == ["missing_text_fallback"]
    assert fake.calls[-1].warnings == ["missing_text_fallback"]


async def test_post_ephemeral(fake: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.chat_postEphemeral(channel="C0QA", user="U0LI", text="only <@U0LI>")
    eph = fake.ephemerals[0]
    assert (eph.user, eph.text, eph.message_ts) == ("U0LI", "only <@U0LI>", resp["message_ts"])
    assert fake.messages["C0QA"] == []
    assert fake.render_ephemerals("U0LI").endswith("thunderbot: (only visible to you)\nonly @li\n")
    assert fake.render_ephemerals("U0MARIA") == "\n"


async def test_views_open_update_push_publish(fake: FakeSlack, client: AsyncWebClient) -> None:
    trigger = fake.new_trigger_id("U0MARIA")
    opened = (await client.views_open(trigger_id=trigger, view=modal("new_call")))["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert fake.views[opened["id"]].callback_id == "new_call"
    err = await slack_error(client.views_open(trigger_id=trigger, view=modal("again")))
    assert err.response["error"] == "exchanged_trigger_id"
    err = await slack_error(client.views_open(trigger_id="1.2.unknown", view=modal("x")))
    assert err.response["error"] == "expired_trigger_id"

    updated = await client.views_update(
        view_id=opened["id"], hash=opened["hash"], view=modal("new_call", section("step 2"))
    )
    assert updated["view"]["blocks"][0]["text"]["text"] == "step 2"
    err = await slack_error(
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal("stale"))
    )
    assert err.response["error"] == "hash_conflict"

    pushed = await client.views_push(trigger_id=fake.new_trigger_id("U0MARIA"), view=modal("p"))
    assert pushed["view"]["previous_view_id"] == opened["id"]
    assert [v.id for v in fake.open_stack("U0MARIA")] == [opened["id"], pushed["view"]["id"]]

    big = {"type": "home", "blocks": [section("x")] * 101}
    err = await slack_error(client.views_publish(user_id="U0LI", view=big))
    assert err.response["error"] == "invalid_blocks"
    long_title = modal("t", title="x" * 25)
    err = await slack_error(client.views_open(trigger_id=fake.new_trigger_id(), view=long_title))
    assert err.response["error"] == "invalid_blocks"
    home = {"type": "home", "blocks": [section("Recent calls")]}
    first = (await client.views_publish(user_id="U0LI", view=home))["view"]
    again = (await client.views_publish(user_id="U0LI", view=home, hash=first["hash"]))["view"]
    assert again["id"] == first["id"] and again["hash"] != first["hash"]
    assert [m for m, _ in fake.views[first["id"]].history] == ["views.publish"] * 2


async def test_files_upload_v2(fake: FakeSlack, client: AsyncWebClient) -> None:
    parent = await client.chat_postMessage(channel="C0QA", text="Call finished")
    resp = await client.files_upload_v2(
        content=b"\x89PNG fake image bytes",
        filename="waveform.png",
        title="Waveform",
        channel="C0QA",
        thread_ts=parent["ts"],
        initial_comment="Audio waveform",
    )
    file_id = resp["file"]["id"]
    assert fake.files[file_id].content == b"\x89PNG fake image bytes"
    assert [c.method for c in fake.calls[1:]] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    assert fake.calls[-1].args["files"] == [{"id": file_id, "title": "Waveform"}]
    (reply,) = fake.thread("C0QA", parent["ts"])
    assert reply.text == "Audio waveform"
    assert [(f["id"], f["name"], f["mimetype"]) for f in reply.files] == [
        (file_id, "waveform.png", "image/png")
    ]


async def test_rate_limit_fault_is_retried(fake: FakeSlack) -> None:
    fake.fail_next("chat.postMessage", retry_after=1)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.api_url + "chat.postMessage", headers={"Authorization": f"Bearer {fake.token}"}
        ) as raw,
    ):
        assert raw.status == 429
        assert raw.headers["Retry-After"] == "1"
        assert await raw.json() == {"ok": False, "error": "ratelimited"}

    fake.fail_next("chat.postMessage", retry_after=0)
    retrying = AsyncWebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    resp = await retrying.chat_postMessage(channel="C0QA", text="after retry")
    assert resp["ok"] is True
    assert [c.ok for c in fake.calls_to("chat.postMessage")] == [False, False, True]
    assert [m.text for m in fake.messages["C0QA"]] == ["after retry"]


async def test_response_url_semantics(fake: FakeSlack) -> None:
    eph = fake.add_ephemeral("C0QA", "U0MARIA", text="Pick a scenario")
    url = fake.new_response_url(channel="C0QA", user="U0MARIA", ephemeral=eph)
    hook = AsyncWebhookClient(url)
    assert (await hook.send(text="Queued", replace_original=True)).status_code == 200
    assert (eph.text, eph.replaced) == ("Queued", 1)
    await hook.send(text="Call started", response_type="in_channel")
    assert [m.text for m in fake.messages["C0QA"]] == ["Call started"]
    await hook.send(text="Just for you")
    assert [e.text for e in fake.ephemerals] == ["Queued", "Just for you"]
    await hook.send(text="bye", delete_original=True)
    assert eph.deleted is True
    await hook.send(text="fifth use")
    sixth = await hook.send(text="sixth use")
    assert (sixth.status_code, sixth.body) == (404, "used_url")

    posted = fake.add_message("C0QA", text="Run 7: running")
    channel_hook = AsyncWebhookClient(
        fake.new_response_url(channel="C0QA", user="U0MARIA", message=posted)
    )
    await channel_hook.send(text="Run 7: passed", replace_original=True)
    assert (posted.text, posted.edits) == ("Run 7: passed", 1)
    thread = await channel_hook.send_dict(
        {"text": "details", "response_type": "in_channel", "thread_ts": posted.ts}
    )
    assert thread.status_code == 200
    assert [m.text for m in fake.thread("C0QA", posted.ts)] == ["details"]


async def test_render_channel(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.clock = lambda: 1763780000.0  # 2025-11-22 02:53:20 UTC, standing still
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Test call #12"}},
        section("*Agent* for <@U0MARIA> at <!date^1763780000^{time}|14:07> &amp; more"),
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": "_Status_\nrunning"},
                {"type": "mrkdwn", "text": "See <https://x.test/run/12|run 12>"},
            ],
        },
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "in <#C0QA|voice-qa>"}] * 2},
        {"type": "actions", "elements": [button("Cancel", "cancel"), button("Rerun", "rerun")]},
        {"type": "divider"},
        {"type": "image", "image_url": "https://x.test/w.png", "alt_text": "waveform"},
    ]
    parent = await client.chat_postMessage(channel="C0QA", text="Test call #12", blocks=blocks)
    fake.advance(60)
    await client.chat_postMessage(channel="C0QA", text="a &lt;b&gt; reply", thread_ts=parent["ts"])
    await client.chat_update(channel="C0QA", ts=parent["ts"], text="t", blocks=blocks[:2])
    fake.advance(120)
    fake.add_message("C0QA", text="thanks <@U0THUNDER>", user="U0LI")
    assert fake.render_channel("C0QA") == (
        "#voice-qa\n"
        "\n"
        "[02:53] thunderbot: (edited)\n"
        "Test call #12\n"
        "*Agent* for @maria at 02:53 & more\n"
        "  │ [02:54] thunderbot:\n"
        "  │ a <b> reply\n"
        "\n"
        "[02:56] li:\n"
        "thanks @thunderbot\n"
    )
    fake.add_message("C0QA", text="x", blocks=blocks[2:])
    assert fake.render_channel("C0QA").endswith(
        "_Status_\nrunning\nSee run 12\nin #voice-qa  in #voice-qa\n"
        "[ Cancel ]  [ Rerun ]\n" + "─" * 40 + "\n[image: waveform]\n"
    )


async def test_message_timestamps_follow_the_wall_clock(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    before = time.time()
    posted = await client.chat_postMessage(channel="C0QA", text="now")
    reply = await client.chat_postMessage(channel="C0QA", text="re", thread_ts=posted["ts"])
    after = time.time()
    assert before - 0.001 <= float(posted["ts"]) <= float(reply["ts"]) <= after + 0.001
    assert re.fullmatch(r"\d{10}\.\d{6}", posted["ts"])
    shown = fake.render_channel("C0QA")
    assert f"[{time.strftime('%H:%M', time.gmtime(float(posted['ts'])))}] thunderbot:" in shown
    fake.advance(3600)
    later = await client.chat_postMessage(channel="C0QA", text="an hour on")
    assert 3599 < float(later["ts"]) - float(reply["ts"]) < 3600 + (time.time() - before) + 1


async def test_timestamps_stay_unique_when_the_clock_stands_still_or_steps_back(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    readings = iter([1763780000.0] * 3 + [1763779990.0, 1763780005.5])
    fake.clock = lambda: next(readings)
    stamps = [(await client.chat_postMessage(channel="C0QA", text=str(i)))["ts"] for i in range(5)]
    assert stamps == [
        "1763780000.000000",
        "1763780000.000001",
        "1763780000.000002",
        "1763780000.000003",  # the clock stepped back ten seconds: the next microsecond
        "1763780005.500000",
    ]
    with pytest.raises(ValueError):
        fake.advance(-1)


async def test_wait_for_reports_what_slack_holds(fake: FakeSlack) -> None:
    fake.add_message("C0QA", text="still running")
    assert await fake.wait_for(lambda: fake.last_message("C0QA")) is fake.messages["C0QA"][0]
    with pytest.raises(AssertionError, match="still running"):
        await fake.wait_for(lambda: None, timeout=0.05)


# ---------------------------------------------------------------- faults


async def test_fault_answers_status_with_retry_after(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fault = fake.fault("chat.postMessage", retry_after=7)
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="first"))
    assert (err.response.status_code, err.response["error"]) == (429, "ratelimited")
    assert err.response.headers["Retry-After"] == "7"
    assert fake.messages["C0QA"] == []
    (call,) = fake.calls
    assert (call.ok, call.error, call.status, call.fault) == (False, "ratelimited", 429, fault)
    assert call.result is None  # the method never ran
    assert (fault.hits, fake.faults) == (1, [])

    resp = await client.chat_postMessage(channel="C0QA", text="second")
    assert resp["ok"] is True
    assert [m.text for m in fake.messages["C0QA"]] == ["second"]
    assert [(c.ok, c.status, c.fault) for c in fake.calls] == [
        (False, 429, fault),
        (True, 200, None),
    ]


async def test_fail_next_is_a_one_shot_fault(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fail_next("chat.update", error="internal_error", status=200, retry_after=None)
    (fault,) = fake.faults
    assert (fault.method, fault.error, fault.status, fault.retry_after, fault.times) == (
        "chat.update",
        "internal_error",
        200,
        None,
        1,
    )
    posted = await client.chat_postMessage(channel="C0QA", text="v1")
    err = await slack_error(client.chat_update(channel="C0QA", ts=posted["ts"], text="v2"))
    assert (err.response.status_code, err.response["error"]) == (200, "internal_error")
    assert "Retry-After" not in err.response.headers
    assert fake.messages["C0QA"][0].text == "v1"
    await client.chat_update(channel="C0QA", ts=posted["ts"], text="v2")
    assert fake.messages["C0QA"][0].text == "v2"


async def test_fault_plain_text_answer(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0QA", text="v1")
    fake.fault("chat.update", plain_text="upstream connect error", status=500, retry_after=None)
    err = await slack_error(client.chat_update(channel="C0QA", ts=posted["ts"], text="v2"))
    assert err.response.status_code == 500
    assert err.response.data == "upstream connect error"
    assert not isinstance(err.response.data, dict)
    assert err.response.headers["Content-Type"].startswith("text/plain")
    assert fake.messages["C0QA"][0].text == "v1"
    call = fake.calls[-1]
    assert (call.method, call.ok, call.error, call.status) == (
        "chat.update",
        False,
        "http_500",
        500,
    )


async def test_fault_drop_closes_the_connection(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fault("chat.postMessage", drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel="C0QA", text="lost")
    assert fake.messages["C0QA"] == []
    (call,) = fake.calls
    assert (call.ok, call.error, call.status) == (False, "connection_dropped", 0)

    resp = await client.chat_postMessage(channel="C0QA", text="next")
    assert resp["ok"] is True
    assert [m.text for m in fake.messages["C0QA"]] == ["next"]


async def test_fault_hang_lets_the_client_time_out(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fault("chat.postMessage", hang=30, error=None)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.chat_postMessage(channel="C0QA", text="slow")
    assert fake.messages["C0QA"] == []  # not handled: nothing happens before the hang ends
    assert [c.method for c in fake.calls] == ["chat.postMessage"]

    # close() does not wait out the 30 s hang; the held call ends without effect.
    async with asyncio.timeout(10):
        await fake.close()
    assert fake.messages["C0QA"] == []
    assert (fake.calls[0].ok, fake.calls[0].error) == (False, "connection_dropped")


async def test_fault_hang_then_normal_answer(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.fault("chat.postMessage", hang=0.2, error=None)
    async with asyncio.timeout(10):
        slow = await client.chat_postMessage(channel="C0QA", text="slow")
    assert slow["ok"] is True
    assert [m.ts for m in fake.messages["C0QA"]] == [slow["ts"]]
    call = fake.calls[0]
    assert (call.ok, call.status, call.result) == (True, 200, slow.data)
    assert call.fault is not None and call.fault.hang == 0.2


async def test_handled_faults_take_effect_before_failing(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fault(
        "chat.postMessage", handled=True, error="internal_error", status=500, retry_after=None
    )
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="posted anyway"))
    assert (err.response.status_code, err.response["error"]) == (500, "internal_error")
    (msg,) = fake.messages["C0QA"]
    assert msg.text == "posted anyway"
    call = fake.calls[-1]
    assert (call.ok, call.error) == (False, "internal_error")
    assert call.result is not None and call.result["ts"] == msg.ts

    fake.fault("chat.update", handled=True, drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_update(channel="C0QA", ts=msg.ts, text="edited anyway")
    assert (msg.text, msg.edits) == ("edited anyway", 1)

    fake.fault("chat.postMessage", handled=True, plain_text="bad gateway", status=502)
    err = await slack_error(client.chat_postMessage(channel="C0QA", text="third"))
    assert (err.response.status_code, err.response.data) == (502, "bad gateway")
    assert [m.text for m in fake.messages["C0QA"]] == ["edited anyway", "third"]

    fake.fault("chat.postMessage", handled=True, hang=2)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            await client.chat_postMessage(channel="C0QA", text="fourth")
    assert [m.text for m in fake.messages["C0QA"]][-1] == "fourth"


async def test_unhandled_fault_has_no_effect(fake: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0QA", text="keep")
    fake.fault("chat.delete", error="internal_error", status=500)
    err = await slack_error(client.chat_delete(channel="C0QA", ts=posted["ts"]))
    assert err.response["error"] == "internal_error"
    assert [m.text for m in fake.messages["C0QA"]] == ["keep"]
    assert fake.calls[-1].result is None


async def test_fault_channel_filter_and_times(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_channel("C0OPS", "ops")
    fault = fake.fault("chat.postMessage", channel="C0OPS", times=2, error="fatal_error")
    assert (await client.chat_postMessage(channel="C0QA", text="qa"))["ok"] is True
    for _ in range(2):
        err = await slack_error(client.chat_postMessage(channel="C0OPS", text="ops"))
        assert err.response["error"] == "fatal_error"
    assert (await client.chat_postMessage(channel="C0OPS", text="ops 3"))["ok"] is True
    assert (fault.hits, fake.faults) == (2, [])
    assert [m.text for m in fake.messages["C0OPS"]] == ["ops 3"]
    assert [m.text for m in fake.messages["C0QA"]] == ["qa"]

    # The channel filter reads channel_id too (files.completeUploadExternal).
    assert fake.fault("files.completeUploadExternal", channel="C0OPS").matches(
        "files.completeUploadExternal", {"channel_id": "C0OPS"}
    )
    fake.clear_faults()

    forever = fake.fault("chat.update", times=None, error="internal_error", status=200)
    ts = fake.messages["C0QA"][0].ts
    for attempt in range(3):
        err = await slack_error(client.chat_update(channel="C0QA", ts=ts, text=f"try {attempt}"))
        assert err.response["error"] == "internal_error"
    assert forever.hits == 3 and fake.faults == [forever]
    fake.clear_faults()
    assert (await client.chat_update(channel="C0QA", ts=ts, text="done"))["ok"] is True
    assert fake.messages["C0QA"][0].text == "done"
    assert fake.fault("auth.test", times=0).times is None  # 0 means forever too


async def test_calls_carry_a_monotonic_timestamp(fake: FakeSlack, client: AsyncWebClient) -> None:
    before = time.monotonic()
    await client.auth_test()
    fake.fault("chat.postMessage", drop=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await client.chat_postMessage(channel="C0QA", text="x")
    await client.chat_postMessage(channel="C0QA", text="y")
    after = time.monotonic()
    stamps = [c.at for c in fake.calls]
    assert len(stamps) == 3
    assert before <= stamps[0] <= stamps[1] <= stamps[2] <= after


# ---------------------------------------------------------------- channels and conversations


async def test_private_archived_and_removed_channels(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("G0PRIV", "secret", private=True)
    for call in (
        client.chat_postMessage(channel="G0PRIV", text="x"),
        client.conversations_history(channel="G0PRIV"),
        client.conversations_join(channel="G0PRIV"),
        client.chat_postEphemeral(channel="G0PRIV", user="U0LI", text="x"),
    ):
        assert (await slack_error(call)).response["error"] == "channel_not_found"
    fake.invite_bot("G0PRIV")
    assert (await client.chat_postMessage(channel="G0PRIV", text="inside"))["ok"] is True
    err = await slack_error(client.conversations_join(channel="G0PRIV"))
    assert err.response["error"] == "method_not_supported_for_channel_type"
    fake.kick_bot("G0PRIV")
    err = await slack_error(client.chat_postMessage(channel="G0PRIV", text="x"))
    assert err.response["error"] == "channel_not_found"

    # Public, bot not a member: posting works (chat:write.public), reading does not.
    posted = await client.chat_postMessage(channel="C0QA", text="hello")
    err = await slack_error(client.conversations_history(channel="C0QA"))
    assert err.response["error"] == "not_in_channel"
    err = await slack_error(client.conversations_replies(channel="C0QA", ts=posted["ts"]))
    assert err.response["error"] == "not_in_channel"

    fake.archive_channel("C0QA")
    for call in (
        client.chat_postMessage(channel="C0QA", text="x"),
        client.chat_update(channel="C0QA", ts=posted["ts"], text="x"),
        client.conversations_join(channel="C0QA"),
    ):
        assert (await slack_error(call)).response["error"] == "is_archived"
    assert fake.messages["C0QA"][0].text == "hello"
    fake.unarchive_channel("C0QA")
    await client.chat_update(channel="C0QA", ts=posted["ts"], text="again")

    fake.remove_channel("C0QA")
    for call in (
        client.chat_postMessage(channel="C0QA", text="x"),
        client.chat_update(channel="C0QA", ts=posted["ts"], text="x"),
        client.conversations_history(channel="C0QA"),
        client.conversations_join(channel="C0QA"),
        client.chat_getPermalink(channel="C0QA", message_ts=posted["ts"]),
    ):
        assert (await slack_error(call)).response["error"] == "channel_not_found"
    with pytest.raises(KeyError):
        fake.archive_channel("C0QA")


async def test_direct_messages_open_a_dm_the_bot_is_in(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    posted = await client.chat_postMessage(channel="U0MARIA", text="your call is done")
    assert posted["channel"] == "D0MARIA"
    assert "D0MARIA" in fake.bot_channels
    history = await client.conversations_history(channel="D0MARIA")
    assert [m["text"] for m in history["messages"]] == ["your call is done"]
    err = await slack_error(client.conversations_history(channel="U0MARIA"))
    assert err.response["error"] == "channel_not_found"
    err = await slack_error(client.conversations_join(channel="D0MARIA"))
    assert err.response["error"] == "method_not_supported_for_channel_type"


async def test_conversations_join(fake: FakeSlack, client: AsyncWebClient) -> None:
    joined = await client.conversations_join(channel="C0QA")
    channel = joined["channel"]
    assert (channel["id"], channel["name"], channel["is_channel"], channel["is_member"]) == (
        "C0QA",
        "voice-qa",
        True,
        True,
    )
    assert "warning" not in joined.data
    assert "C0QA" in fake.bot_channels
    again = await client.conversations_join(channel="C0QA")
    assert again["warning"] == "already_in_channel"
    assert again["response_metadata"]["warnings"] == ["already_in_channel"]
    err = await slack_error(client.conversations_join(channel="C0NOPE"))
    assert err.response["error"] == "channel_not_found"
    fake.add_channel("C0OLD", "old")
    fake.archive_channel("C0OLD")
    err = await slack_error(client.conversations_join(channel="C0OLD"))
    assert err.response["error"] == "is_archived"
    assert "C0OLD" not in fake.bot_channels
    # slack_sdk POSTs join with the channel in the query string.
    assert fake.calls_to("conversations.join")[0].args == {"channel": "C0QA"}


async def _thread_fixture(fake: FakeSlack, client: AsyncWebClient) -> list[str]:
    """C0QA with the bot in it: A, B (two replies), C. Returns [A, B, r1, r2, C] ts."""
    await client.conversations_join(channel="C0QA")
    a = (await client.chat_postMessage(channel="C0QA", text="A"))["ts"]
    b = (await client.chat_postMessage(channel="C0QA", text="B"))["ts"]
    r1 = fake.add_message("C0QA", text="r1", user="U0LI", thread_ts=b).ts
    r2 = (await client.chat_postMessage(channel="C0QA", text="r2", thread_ts=b))["ts"]
    c = (await client.chat_postMessage(channel="C0QA", text="C"))["ts"]
    return [a, b, r1, r2, c]


async def test_history_newest_first_without_replies(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    a, b, _r1, r2, c = await _thread_fixture(fake, client)
    history = await client.conversations_history(channel="C0QA")
    assert [m["text"] for m in history["messages"]] == ["C", "B", "A"]
    assert history["has_more"] is False
    parent = history["messages"][1]
    assert (parent["ts"], parent["thread_ts"], parent["reply_count"], parent["latest_reply"]) == (
        b,
        b,
        2,
        r2,
    )
    assert parent["reply_users"] == ["U0LI", "U0THUNDER"]
    assert (parent["user"], parent["bot_id"], parent["type"]) == (
        "U0THUNDER",
        "B0THUNDER",
        "message",
    )
    assert "thread_ts" not in history["messages"][0]

    async def texts(**window: Any) -> list[str]:
        resp = await client.conversations_history(channel="C0QA", **window)
        return [m["text"] for m in resp["messages"]]

    assert await texts(oldest=a) == ["C", "B"]
    assert await texts(oldest=a, inclusive=True) == ["C", "B", "A"]
    assert await texts(latest=c) == ["B", "A"]
    assert await texts(oldest=a, latest=c) == ["B"]
    assert await texts(oldest=a, latest=c, inclusive=True) == ["C", "B", "A"]
    assert await texts(oldest=c) == []
    # slack_sdk sends a GET with booleans as "1"/"0" in the query string.
    assert fake.calls[-2].args["inclusive"] == "1"
    err = await slack_error(client.conversations_history(channel="C0QA", oldest="soon"))
    assert err.response["error"] == "invalid_ts_oldest"


async def test_history_pagination(fake: FakeSlack, client: AsyncWebClient) -> None:
    await client.conversations_join(channel="C0QA")
    posted = [(await client.chat_postMessage(channel="C0QA", text=f"m{i}"))["ts"] for i in range(5)]
    first = await client.conversations_history(channel="C0QA", limit=2)
    assert [m["text"] for m in first["messages"]] == ["m4", "m3"]
    assert first["has_more"] is True
    cursor = first["response_metadata"]["next_cursor"]
    assert cursor
    # A message posted between pages does not shift the next one.
    await client.chat_postMessage(channel="C0QA", text="late")
    second = await client.conversations_history(channel="C0QA", limit=2, cursor=cursor)
    assert [m["text"] for m in second["messages"]] == ["m2", "m1"]
    third = await client.conversations_history(
        channel="C0QA", limit=2, cursor=second["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in third["messages"]] == ["m0"]
    assert third["has_more"] is False
    assert "response_metadata" not in third.data

    # slack_sdk's own page iteration follows next_cursor to the end.
    pages = [
        [m["ts"] for m in page["messages"]]
        async for page in await client.conversations_history(channel="C0QA", limit=4)
    ]
    assert len(pages) == 2
    assert [ts for page in pages for ts in page][1:] == posted[::-1]
    assert len((await client.conversations_history(channel="C0QA", limit=5000))["messages"]) == 6
    err = await slack_error(client.conversations_history(channel="C0QA", cursor="not-a-cursor"))
    assert err.response["error"] == "invalid_cursor"


async def test_replies_parent_first_then_oldest_first(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    a, b, r1, r2, _ = await _thread_fixture(fake, client)
    r3 = (await client.chat_postMessage(channel="C0QA", text="r3", thread_ts=b))["ts"]
    replies = await client.conversations_replies(channel="C0QA", ts=b)
    assert [m["text"] for m in replies["messages"]] == ["B", "r1", "r2", "r3"]
    assert replies["messages"][0]["reply_count"] == 3
    assert [m["parent_user_id"] for m in replies["messages"][1:]] == ["U0THUNDER"] * 3
    assert {m["thread_ts"] for m in replies["messages"]} == {b}
    assert replies["has_more"] is False

    by_reply = await client.conversations_replies(channel="C0QA", ts=r2)
    assert [m["ts"] for m in by_reply["messages"]] == [b, r1, r2, r3]
    lone = await client.conversations_replies(channel="C0QA", ts=a)
    assert [m["text"] for m in lone["messages"]] == ["A"]
    assert "reply_count" not in lone["messages"][0]

    first = await client.conversations_replies(channel="C0QA", ts=b, limit=2)
    assert [m["text"] for m in first["messages"]] == ["B", "r1"]
    assert first["has_more"] is True
    rest = await client.conversations_replies(
        channel="C0QA", ts=b, limit=2, cursor=first["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in rest["messages"]] == ["r2", "r3"]
    assert rest["has_more"] is False

    windowed = await client.conversations_replies(channel="C0QA", ts=b, oldest=r1)
    assert [m["text"] for m in windowed["messages"]] == ["B", "r2", "r3"]
    windowed = await client.conversations_replies(channel="C0QA", ts=b, oldest=r1, inclusive=True)
    assert [m["text"] for m in windowed["messages"]] == ["B", "r1", "r2", "r3"]

    err = await slack_error(client.conversations_replies(channel="C0QA", ts="1.000001"))
    assert err.response["error"] == "thread_not_found"
    err = await slack_error(client.conversations_replies(channel="C0NOPE", ts=b))
    assert err.response["error"] == "channel_not_found"


async def test_metadata_stored_and_listed_only_when_asked(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    await client.conversations_join(channel="C0QA")
    meta = {"event_type": "thunderbot_run", "event_payload": {"run_id": 7}}
    card = await client.chat_postMessage(channel="C0QA", text="Run 7", metadata=meta)
    assert fake.messages["C0QA"][0].metadata == meta
    # Form-encoded callers send metadata as a JSON string.
    form = {
        "channel": "C0QA",
        "text": "Run 8",
        "metadata": json.dumps(meta | {"event_payload": {"run_id": 8}}),
    }
    await client.api_call("chat.postMessage", data=form)
    assert fake.messages["C0QA"][1].metadata == {
        "event_type": "thunderbot_run",
        "event_payload": {"run_id": 8},
    }
    await client.chat_postMessage(channel="C0QA", text="reply", thread_ts=card["ts"], metadata=meta)
    updated = {"event_type": "thunderbot_run", "event_payload": {"run_id": 7, "state": "done"}}
    await client.chat_update(channel="C0QA", ts=card["ts"], text="Run 7 done", metadata=updated)
    assert fake.messages["C0QA"][0].metadata == updated

    plain = await client.conversations_history(channel="C0QA")
    assert [m["text"] for m in plain["messages"]] == ["Run 8", "Run 7 done"]
    assert all("metadata" not in m for m in plain["messages"])
    full = await client.conversations_history(channel="C0QA", include_all_metadata=True)
    assert [m["metadata"]["event_payload"]["run_id"] for m in full["messages"]] == [8, 7]
    assert full["messages"][1]["metadata"] == updated
    assert fake.calls[-1].args["include_all_metadata"] == "1"

    thread = await client.conversations_replies(channel="C0QA", ts=card["ts"])
    assert all("metadata" not in m for m in thread["messages"])
    thread = await client.conversations_replies(
        channel="C0QA", ts=card["ts"], include_all_metadata=True
    )
    assert [m["metadata"] for m in thread["messages"]] == [updated, meta]

    for bad, error in (
        ("{not json", "invalid_metadata_format"),
        ({"event_payload": {}}, "invalid_metadata_schema"),
        ({"event_type": "x", "event_payload": "y"}, "invalid_metadata_schema"),
    ):
        err = await slack_error(
            client.api_call(
                "chat.postMessage", json={"channel": "C0QA", "text": "x", "metadata": bad}
            )
        )
        assert err.response["error"] == error
    assert len(fake.messages["C0QA"]) == 3


async def test_conversations_accept_raw_get_and_json_post(fake: FakeSlack) -> None:
    fake.invite_bot("C0QA")
    meta = {"event_type": "e", "event_payload": {"k": 1}}
    msg = fake.add_message("C0QA", text="hi")
    msg.metadata = meta
    headers = {"Authorization": f"Bearer {fake.token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        query = {"channel": "C0QA", "include_all_metadata": "true", "oldest": msg.ts}
        query["inclusive"] = "true"
        async with session.get(fake.api_url + "conversations.history", params=query) as raw:
            got = await raw.json()
        assert [m.get("metadata") for m in got["messages"]] == [meta]
        body = {"channel": "C0QA", "include_all_metadata": False, "ts": msg.ts}
        async with session.post(fake.api_url + "conversations.replies", json=body) as raw:
            got = await raw.json()
        assert got["ok"] is True
        assert [("metadata" in m, m["text"]) for m in got["messages"]] == [(False, "hi")]


# ---------------------------------------------------------------- the user driver against Bolt


class Bot:
    """A tiny Bolt app on loopback, recording what it received."""

    def __init__(self, fake: FakeSlack) -> None:
        self.seen: list[dict[str, Any]] = []
        client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
        self.app = AsyncApp(client=client, signing_secret=SECRET)
        app = self.app

        @app.command("/testcall")
        async def on_command(ack: Any, command: dict[str, Any], client: AsyncWebClient) -> None:
            self.seen.append(command)
            if command["text"] == "form":
                await ack()
                await client.views_open(
                    trigger_id=command["trigger_id"],
                    view=modal(
                        "new_call",
                        {
                            "type": "input",
                            "block_id": "agent",
                            "label": {"type": "plain_text", "text": "Agent"},
                            "element": {
                                "type": "plain_text_input",
                                "action_id": "name",
                                "initial_value": "front-desk",
                            },
                        },
                        {"type": "actions", "elements": [button("Preview", "preview")]},
                    ),
                )
                return
            await ack(
                text="Pick a scenario",
                blocks=[
                    section("Pick a scenario"),
                    {"type": "actions", "elements": [button("Approve", "approve", "run-1")]},
                ],
            )

        @app.action("approve")
        async def approve(ack: Any, body: dict[str, Any], respond: Any) -> None:
            self.seen.append(body)
            await ack()
            await respond(replace_original=True, text="Done")

        @app.action("preview")
        async def preview(ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
            await ack()
            view = body["view"]
            await client.views_update(
                view_id=view["id"], hash=view["hash"], view=modal("new_call", section("Preview"))
            )

        @app.view("new_call")
        async def submitted(ack: Any, view: dict[str, Any]) -> None:
            self.seen.append(view)
            name = view["state"]["values"]["agent"]["name"]["value"]
            if name == "bad":
                await ack(response_action="errors", errors={"agent": "Unknown agent"})
            else:
                await ack()

        @app.event("app_home_opened")
        async def home(event: dict[str, Any], client: AsyncWebClient) -> None:
            await client.views_publish(
                user_id=event["user"], view={"type": "home", "blocks": [section("Recent calls")]}
            )

    async def handle(self, request: web.Request) -> web.Response:
        return await to_aiohttp_response(
            await self.app.async_dispatch(await to_bolt_request(request))
        )


@pytest.fixture
async def bot(fake: FakeSlack) -> AsyncIterator[Bot]:
    yield Bot(fake)


@pytest.fixture
async def user(fake: FakeSlack, bot: Bot) -> AsyncIterator[SlackUser]:
    web_app = web.Application()
    web_app.router.add_post("/slack/events", bot.handle)
    runner = web.AppRunner(web_app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    driver = SlackUser(
        fake=fake, events_url=f"http://{host}:{port}/slack/events", signing_secret=SECRET
    )
    yield driver
    await driver.close()
    await runner.cleanup()


async def test_slash_ack_then_click_replaces_ephemeral(
    fake: FakeSlack, bot: Bot, user: SlackUser
) -> None:
    reply = await user.slash("smoke front-desk")
    assert reply.status == 200
    command = bot.seen[0]
    assert (command["text"], command["channel_name"], command["response_url"]) == (
        "smoke front-desk",
        "voice-qa",
        reply.response_url,
    )
    assert reply.ephemeral is not None
    assert fake.render_ephemerals("U0MARIA").splitlines()[1:] == ["Pick a scenario", "[ Approve ]"]

    with pytest.raises(AssertionError, match="available: \\['approve'\\]"):
        await user.click(reply.ephemeral, "nope")
    assert await user.click(reply.ephemeral, "approve") == 200
    eph = reply.ephemeral
    await fake.wait_for(lambda: eph.replaced)
    assert (eph.text, eph.blocks, eph.deleted) == ("Done", [], False)
    assert fake.render_ephemerals("U0MARIA").splitlines()[1:] == ["Done"]
    assert fake.messages["C0QA"] == []
    action = bot.seen[1]
    assert action["container"]["is_ephemeral"] is True
    assert action["actions"][0]["value"] == "run-1"
    assert action["user"]["id"] == "U0MARIA"


async def test_click_on_channel_message(fake: FakeSlack, bot: Bot, user: SlackUser) -> None:
    client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
    blocks = [section("Run 3"), {"type": "actions", "elements": [button("Approve", "approve")]}]
    posted = await client.chat_postMessage(channel="C0QA", text="Run 3", blocks=blocks)
    message = fake.messages["C0QA"][0]
    assert await user.click(message, "approve", value="run-3") == 200
    await fake.wait_for(lambda: message.edits)
    assert message.text == "Done"
    payload = bot.seen[0]
    assert payload["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0QA",
        "is_ephemeral": False,
    }
    assert payload["message"]["text"] == "Run 3"
    assert payload["actions"][0]["value"] == "run-3"


async def test_modal_submit_errors_then_close(fake: FakeSlack, bot: Bot, user: SlackUser) -> None:
    await user.slash("form")
    view = await fake.wait_for(lambda: next(iter(fake.views.values()), None))
    assert view.state_values == {
        "agent": {"name": {"type": "plain_text_input", "value": "front-desk"}}
    }

    status, answer = await user.submit_view(
        view.id, {"agent": {"name": {"type": "plain_text_input", "value": "bad"}}}
    )
    assert (status, answer["response_action"]) == (200, "errors")
    assert (view.closed, view.errors) == (False, {"agent": "Unknown agent"})

    # Slack keeps what was typed: a bare resubmit still carries "bad".
    status, answer = await user.submit_view(view.id)
    assert (status, answer["response_action"], view.closed) == (200, "errors", False)
    assert bot.seen[-1]["state"]["values"]["agent"]["name"]["value"] == "bad"

    good = {"agent": {"name": {"type": "plain_text_input", "value": "night-line"}}}
    status, answer = await user.submit_view(view.id, good)
    assert (status, answer, view.closed) == (200, None, True)
    assert bot.seen[-1]["state"]["values"]["agent"]["name"]["value"] == "night-line"


async def test_click_in_view_and_home(fake: FakeSlack, user: SlackUser) -> None:
    await user.slash("form")
    view = await fake.wait_for(lambda: next(iter(fake.views.values()), None))
    assert await user.click_in_view(view.id, "preview") == 200
    await fake.wait_for(lambda: len(view.history) == 2)
    assert view.blocks[0]["text"]["text"] == "Preview"

    assert await user.open_home() == 200
    home = await fake.wait_for(
        lambda: next((v for v in fake.views.values() if v.type == "home"), None)
    )
    assert (home.user, home.blocks[0]["text"]["text"]) == ("U0MARIA", "Recent calls")


async def test_signature_checks(user: SlackUser) -> None:
    body = "command=%2Ftestcall&text=hi&user_id=U0MARIA&channel_id=C0QA&team_id=T0SANDBOX"
    form = "application/x-www-form-urlencoded"
    status, text = await user.send_raw(body, content_type=form, signature="v0=" + "0" * 64)
    assert (status, text) == (401, '{"error": "invalid request"}')
    status, _ = await user.send_raw(body, content_type=form, timestamp=int(time.time()) - 301)
    assert status == 401
    status, _ = await user.send_raw(body, content_type=form, sign=False)
    assert status == 401
    status, text = await user.send_raw(body, content_type=form)
    assert status == 200
    assert '"text": "Pick a scenario"' in text
