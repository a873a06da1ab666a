"""`thunderbot serve` as a real process: it starts, answers, and stops cleanly on a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import sqlite_utils

from bot.cli import _settings_for_serve, main
from bot.sandbox.slack import FakeSlack
from tests.helpers import shown
from tests.serve_process import (
    BotProcess,
    ServedBot,
    free_port,
    process_environment,
    thunderbot_command,
)

TEST_TIMEOUT = 90  # seconds for a whole test: two interpreter start-ups at most, on a slow machine
# What an unclean stop leaves in the output: resources nobody closed, tasks nobody awaited.
UNCLEAN = (
    "Unclosed",
    "ResourceWarning",
    "Task was destroyed",
    "was never retrieved",
    "never awaited",
)


def assert_stopped_cleanly(code: int, output: str) -> None:
    assert code == 0, output
    assert "thunderbot stopped" in output, output
    assert [marker for marker in UNCLEAN if marker in output] == [], output


def warnings_in(log: str) -> list[str]:
    return [line for line in log.splitlines() if " WARNING " in line or "Warning:" in line]


def assert_database_intact(path: Path) -> None:
    db = sqlite_utils.Database(path)
    try:
        assert "runs" in db.table_names()
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
    finally:
        db.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_serve_stops_cleanly_on_a_signal(tmp_path: Path, sig: signal.Signals) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path) as served:
        exited = await served.stop_bot(sig)
        assert_stopped_cleanly(exited.code, exited.output)
        assert_database_intact(served.db_path)


@pytest.mark.parametrize("sandbox", [False, True], ids=["thunderphone", "simulator"])
async def test_serve_starts_without_warnings(tmp_path: Path, sandbox: bool) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path, sandbox=sandbox) as served:
        assert served.process is not None
        started = served.process.stderr()
        assert "thunderbot listening on" in started, started
        assert warnings_in(started) == [], started
        exited = await served.stop_bot()
        assert_stopped_cleanly(exited.code, exited.output)
        assert warnings_in(exited.stderr) == [], exited.stderr


async def test_serve_names_every_missing_or_blank_setting_at_once(tmp_path: Path) -> None:
    env = process_environment(
        {
            "SLACK_BOT_TOKEN": "  ",
            "SLACK_SIGNING_SECRET": "",
            "THUNDERPHONE_API_KEY": "\t",
            "THUNDERBOT_DB": " ",
            "HOST": "127.0.0.1",
            "PORT": str(free_port()),
        }
    )
    process = BotProcess(thunderbot_command("serve"), env, cwd=tmp_path)
    async with asyncio.timeout(TEST_TIMEOUT):
        try:
            await process.start()
            exited = await process.wait()
        finally:
            await process.kill()
    assert exited.code == 2, process.describe()
    assert exited.stderr.splitlines() == [
        "thunderbot cannot start; fix these environment variables:",
        "  SLACK_BOT_TOKEN must not be empty",
        "  SLACK_SIGNING_SECRET must not be empty",
        "  THUNDERPHONE_API_KEY must not be empty",
        "  THUNDERPHONE_WEBHOOK_SECRET is required",
        "  THUNDERBOT_DB must not be empty (leave it unset for the default)",
    ]
    assert exited.stdout == ""
    assert not (tmp_path / "thunderbot.db").exists()


async def test_a_slash_command_reaches_the_served_bot(tmp_path: Path) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path) as served:
        reply = await served.user().slash("help")
        assert reply.status == 200, reply.body_text
        assert reply.ephemeral is not None, reply.body_text
        assert "/testcall run &lt;target&gt;" in shown(reply.ephemeral)
        assert served.fake.calls_to("auth.test"), "the bot did not talk to the fake Slack"
        exited = await served.stop_bot()
        assert_stopped_cleanly(exited.code, exited.output)


async def test_serve_sandbox_needs_only_the_two_slack_variables(tmp_path: Path) -> None:
    # HOST and PORT only keep the test off the default 0.0.0.0:3000; nothing else is set.
    unset = ["SLACK_API_URL", "THUNDERBOT_DB", "THUNDERBOT_POLL_SECONDS"]
    async with (
        asyncio.timeout(TEST_TIMEOUT),
        ServedBot(tmp_path, sandbox=True, env=dict.fromkeys(unset)) as served,
    ):
        assert sorted(served.variables) == [
            "HOST",
            "PORT",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
        ]
        exited = await served.stop_bot(signal.SIGTERM)
        assert_stopped_cleanly(exited.code, exited.output)
        simulator_started = exited.output.index("ThunderPhone simulator at")
        listening = exited.output.index("thunderbot listening on")
        simulator_stopped = exited.output.index("ThunderPhone simulator stopped")
        assert simulator_started < listening < simulator_stopped, exited.output
        assert simulator_stopped < exited.output.index("thunderbot stopped"), exited.output
        assert_database_intact(served.db_path)


@pytest.mark.parametrize("args", [["serve"], ["serve", "--sandbox"]])
@pytest.mark.parametrize("token", [None, "", "  "], ids=["missing", "empty", "blank"])
def test_serve_without_a_bot_token_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    token: str | None,
) -> None:
    if token is not None:
        monkeypatch.setenv("SLACK_BOT_TOKEN", token)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_live_x")
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", "whsec_x")
    assert main(args) == 2
    message = capsys.readouterr().err
    problem = "is required" if token is None else "must not be empty"
    assert message.splitlines() == [
        "thunderbot cannot start; fix these environment variables:",
        f"  SLACK_BOT_TOKEN {problem}",
    ]


def test_serve_sandbox_names_every_missing_slack_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--sandbox"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "thunderbot cannot start; fix these environment variables:",
        "  SLACK_BOT_TOKEN is required",
        "  SLACK_SIGNING_SECRET is required",
    ]


def test_a_dotenv_token_counts_for_serve_sandbox(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLACK_BOT_TOKEN=xoxb-from-dotenv\nSLACK_SIGNING_SECRET=s\n")
    settings = _settings_for_serve(sandbox=True)
    assert settings.slack_bot_token.get_secret_value() == "xoxb-from-dotenv"
    assert settings.thunderphone_api_key.get_secret_value() == "sk_test_sandbox"


async def test_the_real_process_refuses_serve_sandbox_without_a_bot_token(tmp_path: Path) -> None:
    env = process_environment({"SLACK_SIGNING_SECRET": "s"})
    process = BotProcess(thunderbot_command("serve", "--sandbox"), env, cwd=tmp_path)
    async with asyncio.timeout(TEST_TIMEOUT):
        try:
            await process.start()
            exited = await process.wait()
        finally:
            await process.kill()
    assert exited.code == 2, process.describe()
    assert "SLACK_BOT_TOKEN is required" in exited.stderr
    assert "listening" not in exited.output and "simulator" not in exited.output


async def test_serve_refuses_a_token_slack_does_not_accept(tmp_path: Path) -> None:
    async with FakeSlack() as fake:
        env = process_environment(
            {
                "SLACK_BOT_TOKEN": "xoxb-not-this-one",
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_API_URL": fake.api_url,
                "HOST": "127.0.0.1",
                "PORT": str(free_port()),
            }
        )
        process = BotProcess(thunderbot_command("serve", "--sandbox"), env, cwd=tmp_path)
        async with asyncio.timeout(TEST_TIMEOUT):
            try:
                await process.start()
                exited = await process.wait()
            finally:
                await process.kill()
    assert exited.code == 2, process.describe()
    assert "SLACK_BOT_TOKEN is not accepted by Slack (invalid_auth)" in exited.stderr
    assert "Traceback" not in exited.output and "listening" not in exited.output
    assert [call.method for call in fake.calls] == ["auth.test"]
