"""`thunderbot webhooks register | test` against the ThunderPhone sandbox on loopback, and the
bot (in this process, or `serve` as a real process) receiving the test event."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlite_utils

from bot.cli import main
from bot.sandbox.stack import API_KEY, LocalStack
from bot.sandbox.thunderphone import RecordedRequest, ThunderPhoneSandbox
from tests.serve_process import ServedBot

HOOK = "https://bot.example.com/webhooks/thunderphone"
SAME_HOOK = "HTTPS://Bot.Example.COM/webhooks/thunderphone"  # scheme and host in another case
EVENTS = ["test-call.completed", "call.graded"]
ENDPOINTS = "/v1/developer/webhook-endpoints"
SECRET_LINE = re.compile(r"^    (whsec_\S+)$", re.MULTILINE)
TEST_TIMEOUT = 90  # two start-ups of `serve` at most, on a slow machine


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


async def thunderbot(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """`thunderbot ARGS` in a thread (it runs its own event loop), with what it printed."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(args))
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def use(monkeypatch: pytest.MonkeyPatch, base_url: str, key: str = API_KEY) -> None:
    monkeypatch.setenv("THUNDERPHONE_API_KEY", key)
    monkeypatch.setenv("THUNDERPHONE_BASE_URL", base_url)


def posts(sandbox: ThunderPhoneSandbox) -> list[RecordedRequest]:
    return [request for request in sandbox.requests if request.method == "POST"]


@pytest.fixture
async def sandbox(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ThunderPhoneSandbox]:
    box = ThunderPhoneSandbox(step_seconds=None, member_api_keys=["sk_test_member"])
    use(monkeypatch, await box.start())
    yield box
    await box.close()


# -- register ----------------------------------------------------------------------------------


async def test_register_creates_the_endpoint_and_shows_its_secret_once(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert (ran.code, ran.err) == (0, "")
    [created] = sandbox.webhook_endpoints.values()
    secret = sandbox.endpoint_secrets[created["id"]]
    assert SECRET_LINE.findall(ran.out) == [secret]
    assert ran.out.count(secret) == 1
    assert ran.out.splitlines() == [
        f'Registered the ThunderPhone webhook endpoint "thunderbot" ({created["id"]}): {HOOK} '
        "receives test-call.completed, call.graded.",
        "",
        "Its signing secret, shown this once:",
        "",
        f"    {secret}",
        "",
        "Put it in THUNDERPHONE_WEBHOOK_SECRET (the environment or .env) and restart the bot.",
        "While you rotate secrets, a comma-separated list lets the old and the new both work:",
        "THUNDERPHONE_WEBHOOK_SECRET=whsec_new…,whsec_old…",
        f"Then check a delivery with: thunderbot webhooks test --url {HOOK}",
    ]
    [post] = posts(sandbox)
    assert (post.path, post.json) == (
        ENDPOINTS,
        {"label": "thunderbot", "url": HOOK, "events": EVENTS},
    )
    assert post.headers["Authorization"] == f"Bearer {API_KEY}"
    assert [(r.method, r.path) for r in sandbox.requests] == [
        ("GET", ENDPOINTS),
        ("POST", ENDPOINTS),
    ]


async def test_register_takes_a_label_and_the_public_url(
    sandbox: ThunderPhoneSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUNDERBOT_PUBLIC_URL", "https://bot.example.com")
    ran = await thunderbot(capsys, "webhooks", "register", "--label", "Voice QA bot")
    assert ran.code == 0, ran.err
    [post] = posts(sandbox)
    assert post.json == {"label": "Voice QA bot", "url": HOOK, "events": EVENTS}


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["--url", "http://bot.example.com/webhooks/thunderphone"],
            "http://bot.example.com/webhooks/thunderphone must start with https://: ThunderPhone "
            "delivers only over HTTPS (http:// only for localhost and 127.0.0.1)",
        ),
        (
            ["--url", "https://bot.example.com/hooks/tp"],
            "the URL's path must be /webhooks/thunderphone, where the bot receives ThunderPhone's "
            "events (got /hooks/tp); give https://bot.example.com/webhooks/thunderphone",
        ),
        (
            ["--url", "https://bot.example.com"],
            "the URL's path must be /webhooks/thunderphone, where the bot receives ThunderPhone's "
            "events (got /); give https://bot.example.com/webhooks/thunderphone",
        ),
        (
            ["--url", "bot.example.com/webhooks/thunderphone"],
            "bot.example.com/webhooks/thunderphone is not a web address; give one like "
            "https://bot.example.com/webhooks/thunderphone",
        ),
        (["--url", HOOK, "--label", "x" * 121], "the label must be 1 to 120 characters (got 121)"),
        (["--url", HOOK, "--label", " "], "the label must be 1 to 120 characters (got 0)"),
    ],
)
async def test_register_refuses_what_cannot_work_before_sending_anything(
    sandbox: ThunderPhoneSandbox,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    problem: str,
) -> None:
    ran = await thunderbot(capsys, "webhooks", "register", *args)
    assert (ran.code, ran.out) == (2, "")
    assert ran.err == f"thunderbot webhooks register: {problem}. Nothing was sent.\n"
    assert sandbox.requests == []


async def test_register_allows_plain_http_on_loopback(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://localhost:3000/webhooks/thunderphone"
    ran = await thunderbot(capsys, "webhooks", "register", "--url", url)
    assert ran.code == 0, ran.err
    assert [post.json["url"] for post in posts(sandbox)] == [url]


async def test_register_needs_a_url_and_a_key(
    sandbox: ThunderPhoneSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran = await thunderbot(capsys, "webhooks", "register")
    assert ran.code == 2
    assert ran.err == (
        "thunderbot webhooks register: give --url https://HOST/webhooks/thunderphone, or set "
        "THUNDERBOT_PUBLIC_URL to the bot's public address (like https://bot.example.com).\n"
    )
    monkeypatch.setenv("THUNDERPHONE_API_KEY", " ")
    ran = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert ran.code == 2
    assert ran.err.startswith("thunderbot webhooks register needs THUNDERPHONE_API_KEY, an admin's")
    assert sandbox.requests == []


async def test_a_second_register_of_the_same_url_creates_nothing(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    first = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert first.code == 0, first.err
    [endpoint_id] = sandbox.webhook_endpoints
    again = await thunderbot(capsys, "webhooks", "register", "--url", SAME_HOOK)
    assert (again.code, again.err) == (0, "")
    assert again.out.splitlines()[0] == (
        f'ThunderPhone already has a webhook endpoint for {SAME_HOOK}: "thunderbot" '
        f"({endpoint_id}), "
        "receiving test-call.completed, call.graded. Nothing was created."
    )
    assert "whsec_" not in again.out
    assert list(sandbox.webhook_endpoints) == [endpoint_id]
    assert len(posts(sandbox)) == 1


async def test_register_finds_an_endpoint_missing_an_event(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = sandbox.add_webhook_endpoint(
        HOOK, events=["call.graded"], label="from the dashboard"
    )
    ran = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert ran.code == 1
    assert ran.out.splitlines() == [
        f'ThunderPhone already has a webhook endpoint for {HOOK}: "from the dashboard" '
        f"({existing['id']}), receiving call.graded. Nothing was created.",
        "It does not receive test-call.completed, which the bot needs.",
        "fix: add the missing events to that endpoint in ThunderPhone's dashboard, or delete it "
        "there and run this command again (a new secret will be shown).",
    ]
    assert posts(sandbox) == []


async def test_register_with_a_key_that_is_not_an_admins(
    sandbox: ThunderPhoneSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_test_member")
    ran = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err.splitlines() == [
        "ThunderPhone refused (HTTP 403): only an admin or owner of the ThunderPhone "
        "organisation may read or create webhook endpoints, and THUNDERPHONE_API_KEY is not an "
        "admin's key.",
        "fix: run it with an admin's key, just for this command: THUNDERPHONE_API_KEY=sk_live_… "
        "thunderbot webhooks register (the bot itself needs no admin key)",
        "Nothing was created.",
    ]
    assert posts(sandbox) == [] and sandbox.webhook_endpoints == {}


async def test_a_lost_answer_to_the_create_is_never_retried(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.fail_next("POST", ENDPOINTS, 502, {"detail": "Bad gateway"}, after_handling=True)
    ran = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert (ran.code, ran.out) == (1, "")
    assert ran.err.startswith(
        "ThunderPhone's answer was lost (HTTP 502: Bad gateway): the endpoint may or may not "
        "exist, and it was not sent again."
    )
    assert len(posts(sandbox)) == 1
    # Running it again finds the endpoint the lost answer created, and creates no second one.
    again = await thunderbot(capsys, "webhooks", "register", "--url", HOOK)
    assert "Nothing was created." in again.out
    assert len(posts(sandbox)) == 1 and len(sandbox.webhook_endpoints) == 1


# -- test --------------------------------------------------------------------------------------


async def test_webhooks_test_with_a_wrong_secret_at_the_bot(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with LocalStack(step_seconds=None) as stack:
        assert stack.settings is not None
        use(monkeypatch, stack.settings.thunderphone_base_url)
        registered = await thunderbot(capsys, "webhooks", "register", "--url", stack.webhook_url)
        assert registered.code == 0, registered.err
        ran = await thunderbot(capsys, "webhooks", "test", "--url", stack.webhook_url)
        [endpoint] = stack.sandbox.webhook_endpoints.values()
        [delivery] = stack.sandbox.deliveries
    assert ran.code == 1
    assert ran.out.splitlines() == [
        f"ThunderPhone sent a test event (webhook.test) to {stack.webhook_url}: it arrived, but "
        "the bot refused its signature (HTTP 401).",
        "fix: set THUNDERPHONE_WEBHOOK_SECRET on the bot to this endpoint's secret (ThunderPhone "
        f"shows it as {endpoint['secret_hint']}) and restart the bot; a proxy in front of the bot "
        "must pass /webhooks/thunderphone through unchanged. If the secret is lost, delete the "
        "endpoint in ThunderPhone's dashboard and run `thunderbot webhooks register` again.",
    ]
    assert (delivery.type, delivery.status) == ("webhook.test", 401)
    [post] = [p for p in posts(stack.sandbox) if p.path.endswith("/test")]
    assert post.path == f"{ENDPOINTS}/{endpoint['id']}/test"


async def test_webhooks_test_when_nothing_listens(
    sandbox: ThunderPhoneSandbox, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://127.0.0.1:1/webhooks/thunderphone"
    sandbox.add_webhook_endpoint(url, events=EVENTS)
    ran = await thunderbot(capsys, "webhooks", "test", "--url", url, "--event", "call.graded")
    assert ran.code == 1
    first, fix = ran.out.splitlines()
    assert first.startswith(
        f"ThunderPhone sent a test event (call.graded) to {url}, but it did not arrive: "
        "ClientConnectorError"
    )
    assert fix == (
        f"fix: start `thunderbot serve` and make sure {url} reaches it from the internet (see "
        "README: Installing into your Slack workspace)."
    )
    [post] = posts(sandbox)
    assert post.json == {"event_type": "call.graded"}


async def test_webhooks_test_without_an_endpoint_sends_nothing(
    sandbox: ThunderPhoneSandbox,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUNDERBOT_PUBLIC_URL", "https://bot.example.com")
    ran = await thunderbot(capsys, "webhooks", "test")
    assert (ran.code, ran.out) == (1, "")
    assert ran.err.splitlines() == [
        f"ThunderPhone has no webhook endpoint for {HOOK}, so nothing was sent.",
        f"fix: thunderbot webhooks register --url {HOOK}",
    ]
    assert posts(sandbox) == [] and sandbox.deliveries == []


async def test_register_then_test_against_the_served_bot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The install as a person does it: register, put the secret in the bot's settings,
    restart `serve`, and have ThunderPhone send it a signed test event."""
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path) as served:
        assert served.thunderphone is not None
        use(monkeypatch, served.variables["THUNDERPHONE_BASE_URL"])
        registered = await thunderbot(capsys, "webhooks", "register", "--url", served.webhook_url)
        assert registered.code == 0, registered.err
        [secret] = SECRET_LINE.findall(registered.out)
        stopped = await served.stop_bot()
        assert stopped.code == 0, stopped.output
        served.variables["THUNDERPHONE_WEBHOOK_SECRET"] = f"whsec_sandbox,{secret}"
        await served.start_bot()
        ran = await thunderbot(capsys, "webhooks", "test", "--url", served.webhook_url)
        assert served.process is not None
        bot_log = served.process.output()
        [delivery] = served.thunderphone.deliveries
    assert (ran.code, ran.err) == (0, "")
    assert ran.out == (
        f"ThunderPhone sent a test event (webhook.test) to {served.webhook_url}: it arrived, and "
        "the bot accepted it (HTTP 202), so its signature verified with "
        "THUNDERPHONE_WEBHOOK_SECRET.\n"
    )
    assert (delivery.type, delivery.status, delivery.error) == ("webhook.test", 202, None)
    assert "rejected a webhook" not in bot_log and "Traceback" not in bot_log, bot_log
    db = sqlite_utils.Database(served.db_path)
    try:
        assert db.table("webhook_events").count == 0, "a test event is not a run's event"
    finally:
        db.close()
