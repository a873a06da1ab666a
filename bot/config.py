"""Settings: read once at start-up from the environment (and `.env`), then passed down."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything thunderbot reads from its environment. Field names map to upper-case variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr = Field(
        SecretStr(""), description="Bot token (xoxb-...); required for `serve`."
    )
    slack_signing_secret: SecretStr = Field(description="Verifies that requests come from Slack.")
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (ends with /api/)."
    )
    thunderphone_api_key: SecretStr = Field(description="ThunderPhone organisation API key.")
    thunderphone_base_url: str = Field(
        "https://api.thunderphone.com", description="ThunderPhone API host, without /v1."
    )
    thunderphone_webhook_secret: SecretStr = Field(
        description="Webhook signing secret; a comma-separated list allows rotation."
    )
    thunderphone_require_v2_signature: bool = Field(
        False, description="Refuse webhooks signed only with the older body-only signature."
    )
    thunderbot_db: str = Field("thunderbot.db", description="SQLite file.")
    thunderbot_score_threshold: float = Field(
        0.8, ge=0, le=1, description="Scores below this fraction are marked as below threshold."
    )
    thunderbot_poll_seconds: float = Field(
        10.0, gt=0, description="How often runs that have gone quiet are checked with ThunderPhone."
    )
    thunderbot_grade_grace: float = Field(
        90.0,
        ge=0,
        description="Seconds a finished run's result waits for its grade before it is posted "
        "as not graded yet (and edited when the grade arrives).",
    )
    thunderbot_slack_timeout: float = Field(
        10.0, gt=0, description="Seconds any one Slack Web API call may take."
    )
    thunderbot_post_interval: float = Field(
        1.0,
        ge=0,
        description="Seconds between posts in one channel, and between edits of one message "
        "(Slack allows about one post per second per channel).",
    )
    host: str = Field("0.0.0.0", description="Listen address.")
    port: int = Field(3000, ge=0, le=65535, description="Listen port.")

    @field_validator("slack_signing_secret", "thunderphone_api_key", "thunderphone_webhook_secret")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        # An empty secret would turn every request into a 500 later; refuse it at start-up.
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("thunderphone_webhook_secret")
    @classmethod
    def _some_secret(cls, value: SecretStr) -> SecretStr:
        if not _split(value.get_secret_value()):
            raise ValueError("must name at least one secret")
        return value

    @property
    def webhook_secrets(self) -> list[str]:
        return _split(self.thunderphone_webhook_secret.get_secret_value())


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


def describe_settings_error(error: Exception) -> str:
    """A start-up message naming each missing or invalid variable."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    lines = ["thunderbot cannot start; fix these environment variables:"]
    for problem in error.errors():
        name = str(problem["loc"][0]).upper() if problem["loc"] else "?"
        reason = "is required" if problem["type"] == "missing" else problem["msg"]
        lines.append(f"  {name} {reason}")
    return "\n".join(lines)
