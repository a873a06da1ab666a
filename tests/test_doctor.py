"""`thunderbot doctor` against the fake Slack and the ThunderPhone sandbox on loopback: one line
per check, a fix under each failure, exit 1 when anything failed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.cli import main
from bot.sandbox.slack import FakeSlack
from bot.sandbox.stack import API_KEY, SIGNING_SECRET
from bot.sandbox.thunderphone import ThunderPhoneSandbox

REPO = Path(__file__).resolve().parent.parent
PUBLIC = "https://bot.example.com"
HOOK = f"{PUBLIC}/webhooks/thunderphone"
EVENTS = ["test-call.completed", "call.graded"]
MEMBER_KEY = "sk_test_member"
SLACK_FIX = (
    "  fix: set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) on the Slack app's "
    "OAuth & Permissions page (install the app to the workspace first)"
)


@dataclass
class Install:
    fake: FakeSlack
    sandbox: ThunderPhoneSandbox
    workdir: Path
    secret: str

    @property
    def db(self) -> Path:
        return self.workdir / "thunderbot.db"


def write_manifest(path: Path, host: str) -> None:
    path.write_text((REPO / "manifest.yml").read_text().replace("YOUR-HOST", host))


@pytest.fixture
async def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Install]:
    """Everything right: the token Slack knows, an admin key, the endpoint with both events and
    its secret, a writable database, and ./manifest.yml pointing at the public host."""
    fake = FakeSlack(team_name="Acme Support", bot_name="thunderbot")
    sandbox = ThunderPhoneSandbox(step_seconds=None, member_api_keys=[MEMBER_KEY])
    await fake.start()
    try:
        base_url = await sandbox.start()
        secret = sandbox.add_webhook_endpoint(HOOK, events=EVENTS)["secret"]
        for name, value in {
            "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "THUNDERPHONE_API_KEY": API_KEY,
            "THUNDERPHONE_BASE_URL": base_url,
            "THUNDERPHONE_WEBHOOK_SECRET": secret,
            "THUNDERBOT_DB": str(tmp_path / "thunderbot.db"),
            "THUNDERBOT_PUBLIC_URL": PUBLIC,
        }.items():
            monkeypatch.setenv(name, value)
        write_manifest(tmp_path / "manifest.yml", "bot.example.com")
        yield Install(fake, sandbox, tmp_path, secret)
    finally:
        await sandbox.close()
        await fake.close()


async def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run `thunderbot doctor ARGS` in a thread (it runs its own event loop) and return its
    exit code and the lines it printed."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["doctor", *args])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out.splitlines()


def check(lines: list[str], name: str) -> list[str]:
    """The line of one check, with its fix (or how to enable it) when there is one."""
    [index] = [i for i, line in enumerate(lines) if line[2:].startswith(f"{name}: ")]
    following = lines[index + 1 : index + 2]
    return [lines[index], *[line for line in following if line.startswith("  ")]]


def asked(sandbox: ThunderPhoneSandbox) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in sandbox.requests]


async def test_everything_right(install: Install, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = await doctor(capsys)
    assert lines == [
        "✓ Slack token: Slack accepts SLACK_BOT_TOKEN: the bot @thunderbot in the Acme Support "
        "workspace",
        "✓ Slack signing secret: SLACK_SIGNING_SECRET is set",
        "✓ ThunderPhone API key: ThunderPhone accepts THUNDERPHONE_API_KEY (3 agents)",
        "✓ ThunderPhone webhook secret: THUNDERPHONE_WEBHOOK_SECRET is set",
        f"✓ ThunderPhone webhook: {HOOK} receives test-call.completed and call.graded",
        f"✓ Database: {install.db} is writable and its tables are up to date",
        "✓ Slack app manifest: manifest.yml's 3 Request URLs point at "
        "https://bot.example.com/slack/events",
        "",
        "No check failed.",
    ]
    assert code == 0
    assert [call.method for call in install.fake.calls] == ["auth.test"]
    assert asked(install.sandbox) == [
        ("GET", "/v1/agents"),
        ("GET", "/v1/developer/webhook-endpoints"),
    ]
    assert install.sandbox.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert install.db.exists(), "the database is opened and migrated as serve does"


async def test_a_token_slack_refuses(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-not-this-one")
    code, lines = await doctor(capsys)
    assert check(lines, "Slack token") == [
        "✗ Slack token: Slack does not accept SLACK_BOT_TOKEN (invalid_auth)",
        SLACK_FIX,
    ]
    assert lines[-1] == "1 of 7 checks failed."
    assert code == 1
    [call] = install.fake.calls
    assert (call.method, call.error) == ("auth.test", "invalid_auth")


async def test_no_slack_token(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "")
    code, lines = await doctor(capsys)
    assert check(lines, "Slack token") == [
        "✗ Slack token: SLACK_BOT_TOKEN is empty or not set",
        SLACK_FIX,
    ]
    assert code == 1
    assert install.fake.calls == []


async def test_a_blank_signing_secret(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "   ")
    code, lines = await doctor(capsys)
    assert check(lines, "Slack signing secret") == [
        "✗ Slack signing secret: SLACK_SIGNING_SECRET is empty or not set",
        "  fix: set it to the Signing Secret under App Credentials on the Slack app's Basic "
        "Information page",
    ]
    assert (code, lines[-1]) == (1, "1 of 7 checks failed.")


async def test_a_key_thunderphone_refuses(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_live_wrong")
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone API key") == [
        "✗ ThunderPhone API key: ThunderPhone does not accept the key (HTTP 401: Invalid API key.)",
        "  fix: put an API key of your ThunderPhone organisation (sk_live_…; a publishable "
        "pk_live_ key does not work) in THUNDERPHONE_API_KEY",
    ]
    assert check(lines, "ThunderPhone webhook") == [
        "- ThunderPhone webhook: not checked: the ThunderPhone API key does not work (see above)"
    ]
    assert (code, lines[-1]) == (1, "1 of 7 checks failed (1 not checked).")
    assert asked(install.sandbox) == [("GET", "/v1/agents")], "a 401 is not asked again"


async def test_no_webhook_endpoint(install: Install, capsys: pytest.CaptureFixture[str]) -> None:
    install.sandbox.webhook_endpoints.clear()
    install.sandbox.add_webhook_endpoint("https://other.example.com/webhooks/thunderphone")
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone webhook") == [
        f"✗ ThunderPhone webhook: no ThunderPhone webhook endpoint sends to {HOOK}",
        f"  fix: thunderbot webhooks register --url {HOOK}",
    ]
    assert (code, lines[-1]) == (1, "1 of 7 checks failed.")


async def test_an_endpoint_missing_an_event(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    install.sandbox.webhook_endpoints.clear()
    install.sandbox.add_webhook_endpoint(
        HOOK, events=["test-call.completed"], secret=install.secret
    )
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone webhook") == [
        f"✗ ThunderPhone webhook: the endpoint for {HOOK} does not receive call.graded",
        "  fix: add it to the endpoint in ThunderPhone's dashboard, or delete the endpoint "
        f"there and run: thunderbot webhooks register --url {HOOK} (then put the new secret "
        "in THUNDERPHONE_WEBHOOK_SECRET)",
    ]
    assert code == 1


async def test_an_endpoint_with_no_events_listed_receives_them_all(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    install.sandbox.webhook_endpoints.clear()
    install.sandbox.add_webhook_endpoint(HOOK, events=[], secret=install.secret)
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone webhook")[0].startswith("✓")
    assert code == 0


async def test_a_key_that_is_not_an_admins(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUNDERPHONE_API_KEY", MEMBER_KEY)
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone API key")[0].startswith("✓")
    assert check(lines, "ThunderPhone webhook") == [
        "✗ ThunderPhone webhook: cannot read the webhook endpoints: only an admin or owner of "
        "the ThunderPhone organisation may read or create webhook endpoints, and "
        "THUNDERPHONE_API_KEY is not an admin's key (HTTP 403)",
        "  fix: run it with an admin's key, just for this command: THUNDERPHONE_API_KEY=sk_live_… "
        "thunderbot doctor (the bot itself needs no admin key); or check in ThunderPhone's "
        f"dashboard that an endpoint sends test-call.completed and call.graded to {HOOK}",
    ]
    assert code == 1
    assert install.sandbox.requests[-1].headers["Authorization"] == f"Bearer {MEMBER_KEY}"


async def test_a_webhook_secret_that_is_not_the_endpoints(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", "whsec_from_another_endpoint")
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone webhook") == [
        "✗ ThunderPhone webhook: THUNDERPHONE_WEBHOOK_SECRET is not the secret of the endpoint "
        f"for {HOOK} (ThunderPhone shows it as whsec_…{install.secret[-6:]})",
        "  fix: put that endpoint's secret in THUNDERPHONE_WEBHOOK_SECRET; if it is lost, "
        "delete the endpoint in ThunderPhone's dashboard and run: thunderbot webhooks register "
        f"--url {HOOK}",
    ]
    assert code == 1
    # While rotating, the endpoint's secret among others is right.
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", f"whsec_old,{install.secret}")
    code, lines = await doctor(capsys)
    assert check(lines, "ThunderPhone webhook secret") == [
        "✓ ThunderPhone webhook secret: THUNDERPHONE_WEBHOOK_SECRET is set (2 secrets, for a "
        "rotation)"
    ]
    assert (code, check(lines, "ThunderPhone webhook")[0][0]) == (0, "✓")


async def test_a_database_that_cannot_be_written(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = install.workdir / "data"
    blocker.write_text("a file where the database's directory should be")
    monkeypatch.setenv("THUNDERBOT_DB", str(blocker / "thunderbot.db"))
    code, lines = await doctor(capsys)
    assert check(lines, "Database") == [
        f"✗ Database: cannot write {blocker / 'thunderbot.db'} (unable to open database file)",
        "  fix: point THUNDERBOT_DB at a file in a directory that exists and this user may "
        "write to, or make that one writable",
    ]
    assert (code, lines[-1]) == (1, "1 of 7 checks failed.")


async def test_a_manifest_pointing_at_another_host(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    write_manifest(install.workdir / "manifest.yml", "old-host.example.net")
    code, lines = await doctor(capsys)
    assert check(lines, "Slack app manifest") == [
        "✗ Slack app manifest: manifest.yml sends Slack to old-host.example.net, not to "
        "bot.example.com (THUNDERBOT_PUBLIC_URL)",
        "  fix: replace old-host.example.net with bot.example.com in manifest.yml, then paste "
        "it into the Slack app's App Manifest page and save; or, if the manifest is right, "
        "correct THUNDERBOT_PUBLIC_URL",
    ]
    assert (code, lines[-1]) == (1, "1 of 7 checks failed.")


async def test_a_manifest_still_saying_your_host_given_by_path(
    install: Install, capsys: pytest.CaptureFixture[str]
) -> None:
    path = install.workdir / "slack" / "app.yml"
    path.parent.mkdir()
    path.write_text((REPO / "manifest.yml").read_text())
    code, lines = await doctor(capsys, "--manifest", str(path))
    assert check(lines, "Slack app manifest") == [
        f"✗ Slack app manifest: {path} still says YOUR-HOST",
        "  fix: replace YOUR-HOST with bot.example.com; then paste it into the Slack app's App "
        "Manifest page and save",
    ]
    assert code == 1


async def test_without_a_public_url_two_checks_are_skipped(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("THUNDERBOT_PUBLIC_URL")
    code, lines = await doctor(capsys)
    how = (
        "  to check it: set THUNDERBOT_PUBLIC_URL to the bot's public address, like "
        "https://bot.example.com"
    )
    assert check(lines, "ThunderPhone webhook") == [
        "- ThunderPhone webhook: not checked: THUNDERBOT_PUBLIC_URL is not set",
        how,
    ]
    assert check(lines, "Slack app manifest") == [
        "- Slack app manifest: not checked: THUNDERBOT_PUBLIC_URL is not set",
        how,
    ]
    assert (code, lines[-1]) == (0, "No check failed (2 not checked).")
    assert asked(install.sandbox) == [("GET", "/v1/agents")]


async def test_every_failure_at_once(
    install: Install, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "THUNDERPHONE_WEBHOOK_SECRET"):
        monkeypatch.setenv(name, "")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", MEMBER_KEY)
    monkeypatch.setenv("THUNDERBOT_DB", str(install.workdir / "missing" / "thunderbot.db"))
    write_manifest(install.workdir / "manifest.yml", "YOUR-HOST")
    code, lines = await doctor(capsys)
    marks = [line[0] for line in lines if line[:2] in {"✓ ", "✗ ", "- "}]
    assert marks == ["✗", "✗", "✓", "✗", "✗", "✗", "✗"]
    assert sum(line.startswith("  fix: ") for line in lines) == 6
    assert (code, lines[-1]) == (1, "6 of 7 checks failed.")


def test_unreadable_settings_are_named_before_anything_is_checked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUNDERBOT_PUBLIC_URL", "bot.example.com")
    monkeypatch.setenv("PORT", "http")
    assert main(["doctor"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == (
        "thunderbot doctor: fix these environment variables first:"
    )
    assert [line.split()[0] for line in captured.err.splitlines()[1:]] == [
        "THUNDERBOT_PUBLIC_URL",
        "PORT",
    ]
