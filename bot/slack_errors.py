"""Slack failures, sorted into the few kinds the bot acts on differently.

Every Slack call the bot makes can fail with an error answer, an HTTP error whose body may not
even be JSON, or no answer at all; `classify` turns each into one `SlackFailure`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError

log = logging.getLogger(__name__)


class Problem(enum.Enum):
    RATE_LIMITED = "rate limited"
    # No clear answer (a dropped connection, a timeout, a 5xx): a post may have gone through.
    TRANSIENT = "transient"
    NO_CHANNEL = "channel gone, archived, or the bot is not in it"
    TOO_LONG = "message too long or its blocks invalid"
    AUTH = "the bot's token or scopes are broken"
    REFUSED = "refused"


_BY_ERROR: dict[str, Problem] = {
    "ratelimited": Problem.RATE_LIMITED,
    "rate_limited": Problem.RATE_LIMITED,
    **dict.fromkeys(
        (
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
            "team_added_to_org",
        ),
        Problem.TRANSIENT,
    ),
    **dict.fromkeys(
        (
            "channel_not_found",
            "not_in_channel",
            "is_archived",
            "channel_is_archived",
            "message_not_found",
            "thread_not_found",
            "cant_update_message",
            "restricted_action",
            "restricted_action_read_only_channel",
            "restricted_action_thread_only_channel",
            "restricted_action_non_threadable_channel",
            "method_not_supported_for_channel_type",
        ),
        Problem.NO_CHANNEL,
    ),
    **dict.fromkeys(
        (
            "msg_too_long",
            "msg_blocks_too_long",
            "invalid_blocks",
            "invalid_blocks_format",
            "invalid_attachments",
            "too_many_attachments",
            "no_text",
            "invalid_metadata_format",
            "invalid_metadata_schema",
            "metadata_too_large",
        ),
        Problem.TOO_LONG,
    ),
    **dict.fromkeys(
        (
            "not_authed",
            "invalid_auth",
            "account_inactive",
            "token_revoked",
            "token_expired",
            "missing_scope",
            "no_permission",
            "not_allowed_token_type",
            "team_access_not_granted",
            "access_denied",
            "ekm_access_denied",
        ),
        Problem.AUTH,
    ),
}


@dataclass(frozen=True)
class SlackFailure:
    problem: Problem
    code: str  # Slack's error, or what went wrong when there was no answer
    retry_after: float | None = None

    @property
    def unclear(self) -> bool:
        """Slack may have done what was asked."""
        return self.problem is Problem.TRANSIENT


# What a Slack call can raise besides a clear answer.
SLACK_EXCEPTIONS = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, ValueError)


def failure_of(code: str) -> SlackFailure:
    """A failure recorded earlier only by its code (a thread's first message that gave up)."""
    return SlackFailure(_BY_ERROR.get(code, Problem.TRANSIENT), code)


def classify(error: BaseException) -> SlackFailure:
    if isinstance(error, SlackApiError):
        return _from_response(error)
    if isinstance(error, asyncio.TimeoutError):
        return SlackFailure(Problem.TRANSIENT, "timeout")
    if isinstance(error, aiohttp.ClientError):
        return SlackFailure(Problem.TRANSIENT, type(error).__name__)
    return SlackFailure(Problem.TRANSIENT, type(error).__name__)


def _from_response(error: SlackApiError) -> SlackFailure:
    response = error.response
    status = int(getattr(response, "status_code", 200) or 200)
    data = response if isinstance(response, dict) else getattr(response, "data", None)
    code = str(data.get("error") or "") if isinstance(data, dict) else ""
    retry_after = _retry_after(getattr(response, "headers", None) or {})
    if status == 429 or code in ("ratelimited", "rate_limited"):
        return SlackFailure(Problem.RATE_LIMITED, code or "ratelimited", retry_after or 1.0)
    if not code:
        # A load balancer's page rather than Slack's JSON: nothing clear was said.
        return SlackFailure(Problem.TRANSIENT, f"HTTP {status}")
    problem = _BY_ERROR.get(code)
    if problem is None:
        problem = Problem.TRANSIENT if status >= 500 else Problem.REFUSED
        log.info("Slack error %r (HTTP %s) treated as %s", code, status, problem.value)
    return SlackFailure(problem, code, retry_after)


def _retry_after(headers: object) -> float | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    value = get("Retry-After") or get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
