"""The fake Slack Web API and the Slack user driver, over real loopback HTTP."""

from __future__ import annotations

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
    return AsyncWebClient(token=fake.token, base_url=fake.api_url)


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
        "*Agent* for @maria at 14:07 & more\n"
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


async def test_wait_for_reports_what_slack_holds(fake: FakeSlack) -> None:
    fake.add_message("C0QA", text="still running")
    assert await fake.wait_for(lambda: fake.last_message("C0QA")) is fake.messages["C0QA"][0]
    with pytest.raises(AssertionError, match="still running"):
        await fake.wait_for(lambda: None, timeout=0.05)


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
