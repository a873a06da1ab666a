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
        "  SLACK_SIGNING_SECRET Value error, must not be empty",
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
    settings = Settings()  # type: ignore[call-arg]
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
