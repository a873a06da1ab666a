"""Settings: read once at start-up from the environment (and `.env`), then passed down."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})


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
    thunderbot_public_url: str | None = Field(
        None,
        description="The bot's public address, like https://bot.example.com: where Slack and "
        "ThunderPhone reach it. Only `doctor` and `webhooks` read it.",
    )
    thunderbot_body_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client may take to send a request's body to /slack/events or "
        "/webhooks/thunderphone; a slower one is answered 408 and its connection closed.",
    )
    thunderbot_access_log: bool = Field(
        False, description="Log one line per HTTP request (off: it costs time on every request)."
    )
    thunderbot_admins: str = Field(
        "",
        description="Comma-separated Slack user ids (U...) of the people who decide who may "
        "start runs, set budgets and approve spending over a cap.",
    )
    host: str = Field("0.0.0.0", description="Listen address.")
    port: int = Field(3000, ge=0, le=65535, description="Listen port.")

    @field_validator("slack_api_url", "thunderphone_base_url", "thunderbot_db", "host")
    @classmethod
    def _not_blank_when_set(cls, value: str) -> str:
        # Unset, these have defaults; set but empty, they would fail later and obscurely
        # (an empty THUNDERBOT_DB is a throwaway database).
        if not value.strip():
            raise ValueError("must not be empty (leave it unset for the default)")
        return value

    @field_validator("thunderbot_public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return None if value is None else public_url(value)

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

    @property
    def admins(self) -> frozenset[str]:
        """The Slack user ids in THUNDERBOT_ADMINS."""
        return frozenset(_split(self.thunderbot_admins))


def public_url(raw: str) -> str:
    """The bot's public address as `scheme://host[:port]`; ValueError when it is not one."""
    value = raw.strip()
    if not value:
        raise ValueError("must not be empty (leave it unset to skip the checks that need it)")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"must be an address like https://bot.example.com, not {value!r}")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise ValueError(
            f"must be the address alone, like {parts.scheme}://{parts.netloc}, without a path"
        )
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ValueError("must start with https:// (http:// only for localhost or 127.0.0.1)")
    return f"{parts.scheme}://{parts.netloc.lower()}"


def _split(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


class SetupSettings(Settings):
    """What `doctor` and `webhooks` read: every setting, but the secrets may be missing or
    blank, so that each command can say which one it needs and where to find it."""

    slack_signing_secret: SecretStr = Field(
        SecretStr(""), description="Verifies that requests come from Slack."
    )
    thunderphone_api_key: SecretStr = Field(
        SecretStr(""), description="ThunderPhone organisation API key."
    )
    thunderphone_webhook_secret: SecretStr = Field(
        SecretStr(""), description="Webhook signing secret; a comma-separated list allows rotation."
    )

    # The same names as Settings' validators, so these replace them.
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        return value

    @classmethod
    def _some_secret(cls, value: SecretStr) -> SecretStr:
        return value


def describe_settings_error(
    error: Exception, head: str = "thunderbot cannot start; fix these environment variables:"
) -> str:
    """A message naming each missing or invalid variable, under `head`."""
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    lines = [head]
    for problem in error.errors():
        name = str(problem["loc"][0]).upper() if problem["loc"] else "?"
        reason = "is required" if problem["type"] == "missing" else problem["msg"]
        reason = reason.removeprefix("Value error, ")
        lines.append(f"  {name} {reason}")
    return "\n".join(lines)
