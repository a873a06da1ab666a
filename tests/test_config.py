"""Settings: read once at start-up; a missing or empty secret stops the bot with a clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.config import Settings, describe_settings_error

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = README.read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in readme]
    assert missing == []


def test_missing_and_empty_secrets_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "  ")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_live_x")
    with pytest.raises(ValidationError) as raised:
        Settings()  # type: ignore[call-arg]
    message = describe_settings_error(raised.value)
    assert message.splitlines() == [
        "thunderbot cannot start; fix these environment variables:",
        "  SLACK_SIGNING_SECRET must not be empty",
        "  THUNDERPHONE_WEBHOOK_SECRET is required",
    ]


def test_a_webhook_secret_list_with_no_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "k")
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", " , ")
    with pytest.raises(ValidationError, match="must name at least one secret"):
        Settings()  # type: ignore[call-arg]


def test_values_come_from_the_environment_and_dotenv(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        "SLACK_SIGNING_SECRET=from-dotenv\nTHUNDERPHONE_API_KEY=sk_live_1\nPORT=4000\n"
    )
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", "whsec_a, whsec_b ,")
    monkeypatch.setenv("THUNDERBOT_ADMINS", "U01ADMIN, U02ADMIN,")
    settings = Settings()  # type: ignore[call-arg]
    assert settings.admins == {"U01ADMIN", "U02ADMIN"}
    assert settings.slack_signing_secret.get_secret_value() == "from-dotenv"
    assert settings.port == 4000
    assert settings.webhook_secrets == ["whsec_a", "whsec_b"]
    assert settings.thunderphone_base_url == "https://api.thunderphone.com"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert "sk_live_1" not in repr(settings)


def test_serve_without_configuration_exits_with_the_missing_variables(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(README.parent)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert "SLACK_SIGNING_SECRET is required" in completed.stderr
    assert "THUNDERPHONE_API_KEY is required" in completed.stderr


def _required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "k")
    monkeypatch.setenv("THUNDERPHONE_WEBHOOK_SECRET", "whsec_x")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://bot.example.com", "https://bot.example.com"),
        ("  https://Bot.Example.com/ ", "https://bot.example.com"),
        ("https://bot.example.com:8443", "https://bot.example.com:8443"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:3000/", "http://127.0.0.1:3000"),
    ],
)
def test_the_public_url_is_kept_as_scheme_and_host(
    monkeypatch: pytest.MonkeyPatch, given: str, kept: str
) -> None:
    _required(monkeypatch)
    monkeypatch.setenv("THUNDERBOT_PUBLIC_URL", given)
    assert Settings().thunderbot_public_url == kept  # type: ignore[call-arg]


def test_the_public_url_is_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    _required(monkeypatch)
    assert Settings().thunderbot_public_url is None  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("bot.example.com", "must be an address like https://bot.example.com"),
        ("http://bot.example.com", "must start with https://"),
        ("https://bot.example.com/slack/events", "must be the address alone"),
        ("  ", "must not be empty"),
    ],
)
def test_a_public_url_that_cannot_work_is_refused(
    monkeypatch: pytest.MonkeyPatch, given: str, problem: str
) -> None:
    _required(monkeypatch)
    monkeypatch.setenv("THUNDERBOT_PUBLIC_URL", given)
    with pytest.raises(ValidationError) as raised:
        Settings()  # type: ignore[call-arg]
    lines = describe_settings_error(raised.value).splitlines()
    assert len(lines) == 2
    assert lines[1].startswith(f"  THUNDERBOT_PUBLIC_URL {problem}"), lines


def test_every_blank_setting_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_SIGNING_SECRET", "THUNDERPHONE_WEBHOOK_SECRET", "HOST"):
        monkeypatch.setenv(name, " ")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "")
    monkeypatch.setenv("THUNDERBOT_DB", "")
    monkeypatch.setenv("THUNDERPHONE_BASE_URL", "\t")
    with pytest.raises(ValidationError) as raised:
        Settings()  # type: ignore[call-arg]
    assert describe_settings_error(raised.value).splitlines() == [
        "thunderbot cannot start; fix these environment variables:",
        "  SLACK_SIGNING_SECRET must not be empty",
        "  THUNDERPHONE_API_KEY must not be empty",
        "  THUNDERPHONE_BASE_URL must not be empty (leave it unset for the default)",
        "  THUNDERPHONE_WEBHOOK_SECRET must not be empty",
        "  THUNDERBOT_DB must not be empty (leave it unset for the default)",
        "  HOST must not be empty (leave it unset for the default)",
    ]
