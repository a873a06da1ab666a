"""Errors raised when talking to ThunderPhone.

One family, so callers can catch broadly or narrowly::

    ThunderPhoneError                      status, detail, body, user_message
    ├── ThunderPhoneUnavailable            transport error or timeout (status None), or 5xx
    ├── ThunderPhoneRejected               any other 4xx
    │   ├── ThunderPhoneAuthError          401, 403
    │   ├── ThunderPhonePaymentRequired    402
    │   ├── ThunderPhoneNotFound           404
    │   └── ThunderPhoneInvalid            400, 409, 422
    └── ThunderPhoneBadResponse            a 2xx body that does not hold what the bot needs

`user_message` is a single calm sentence meant for a person in Slack.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ThunderPhoneAuthError",
    "ThunderPhoneBadResponse",
    "ThunderPhoneError",
    "ThunderPhoneInvalid",
    "ThunderPhoneNotFound",
    "ThunderPhonePaymentRequired",
    "ThunderPhoneRejected",
    "ThunderPhoneUnavailable",
    "error_for_status",
    "extract_detail",
]

MAX_DETAIL_CHARS = 300


class ThunderPhoneError(Exception):
    """Base of every ThunderPhone failure."""

    def __init__(self, detail: str = "", *, status: int | None = None, body: Any = None) -> None:
        self.status = status
        self.detail = detail
        self.body = body
        super().__init__(self._summary())

    def _summary(self) -> str:
        if self.status is None:
            return self.detail or type(self).__name__
        return f"HTTP {self.status}: {self.detail}" if self.detail else f"HTTP {self.status}"

    @property
    def _detail_or_default(self) -> str:
        return self.detail or "no reason given"

    @property
    def user_message(self) -> str:
        """One sentence for a person in Slack: what went wrong and what to try."""
        status = f"HTTP {self.status}" if self.status is not None else "no HTTP status"
        return f"Something went wrong talking to ThunderPhone ({status}). Try again in a minute."


class ThunderPhoneUnavailable(ThunderPhoneError):
    """ThunderPhone could not be reached, timed out, or failed on its side (5xx)."""

    @property
    def user_message(self) -> str:
        if self.status is None:
            return (
                f"I couldn't reach ThunderPhone ({self._detail_or_default}). Try again in a minute."
            )
        return (
            f"ThunderPhone had a problem on its side (HTTP {self.status}). Nothing was charged "
            "if the run did not start; try again in a minute."
        )


class ThunderPhoneRejected(ThunderPhoneError):
    """ThunderPhone refused the request (4xx)."""

    @property
    def user_message(self) -> str:
        return f"ThunderPhone refused the request (HTTP {self.status}): {self._detail_or_default}"


class ThunderPhoneAuthError(ThunderPhoneRejected):
    """The API key is missing, wrong, or lacks permission (401, 403)."""

    @property
    def user_message(self) -> str:
        if self.status == 403:
            return (
                f"ThunderPhone refused access (HTTP 403): {self._detail_or_default.rstrip('.')}. "
                "Ask an admin to check what THUNDERPHONE_API_KEY may do."
            )
        return (
            f"ThunderPhone rejected the API key (HTTP {self.status}). "
            "Ask an admin to check THUNDERPHONE_API_KEY."
        )


class ThunderPhonePaymentRequired(ThunderPhoneRejected):
    """The organisation's prepaid balance is empty (402)."""

    @property
    def user_message(self) -> str:
        return (
            f"ThunderPhone says the balance is empty (HTTP {self.status}). Top up, then run again."
        )


class ThunderPhoneNotFound(ThunderPhoneRejected):
    """The agent, call, batch or grade does not exist (404)."""

    @property
    def user_message(self) -> str:
        return (
            f"ThunderPhone says that was not found (HTTP {self.status}): {self._detail_or_default}"
        )


class ThunderPhoneInvalid(ThunderPhoneRejected):
    """ThunderPhone did not accept the request as sent (400, 409, 422)."""

    @property
    def user_message(self) -> str:
        return f"ThunderPhone rejected the request (HTTP {self.status}): {self._detail_or_default}"


class ThunderPhoneBadResponse(ThunderPhoneError):
    """A 2xx (or unexpected) reply whose body lacks what the bot needs."""

    @property
    def user_message(self) -> str:
        status = f" (HTTP {self.status})" if self.status is not None else ""
        return (
            f"ThunderPhone sent a reply I couldn't read{status}. If this was starting a run, "
            "it may have started; check the recent runs before trying again."
        )


def _trim(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    return text[: MAX_DETAIL_CHARS - 1] + "…"


# What a person calls the fields ThunderPhone names in its field errors.
_FIELD_WORDS = {
    "target_id": "Target",
    "target_type": "Target kind",
    "target_number": "Caller id",
    "consent_to_charge": "Consent to charge",
    "scenario_prompt": "Scenario",
    "scenario_prompts": "Scenario",
    "run_count": "Number of runs",
    "stagger_seconds": "Stagger",
    "timestamp_seconds": "Moment in the call",
    "failing_turn_index": "Turn",
    "url": "URL",
}


def field_words(path: str) -> str:
    """`scenario_prompts.2` → `Scenario 3`, `target_id` → `Target`: a field as people say it."""
    words: list[str] = []
    for part in path.split("."):
        if part.isdigit():
            words.append(str(int(part) + 1))
        else:
            words.append(_FIELD_WORDS.get(part) or part.replace("_", " ").strip().capitalize())
    return " ".join(word for word in words if word)


def _flatten(value: Any, prefix: str, out: list[str]) -> None:
    # DRF field errors: {"field": ["msg"], "nested": {"field": ["msg"]}, "non_field_errors": [...]}
    if isinstance(value, dict):
        for key, inner in value.items():
            name = str(key)
            if name in ("non_field_errors", "detail"):
                _flatten(inner, prefix, out)
            else:
                _flatten(inner, f"{prefix}.{name}" if prefix else name, out)
    elif isinstance(value, list):
        messages = [str(item) for item in value if not isinstance(item, dict | list)]
        if messages:
            text = " ".join(messages)
            out.append(f"{field_words(prefix)}: {text}" if prefix else text)
        for item in value:
            if isinstance(item, dict | list):
                _flatten(item, prefix, out)
    elif value is not None:
        out.append(f"{field_words(prefix)}: {value}" if prefix else str(value))


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def extract_detail(body: Any, text: str) -> str:
    """Turn an error body into one line: `detail`, flattened field errors, or trimmed text."""
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return _trim(body["detail"])
    if isinstance(body, dict | list) and body:
        parts: list[str] = []
        _flatten(body, "", parts)
        if parts:
            return _trim(" ".join(_sentence(part) for part in parts))
    return _trim(text)


def error_for_status(status: int, body: Any, text: str) -> ThunderPhoneError:
    """Build the typed error for a non-2xx reply."""
    detail = extract_detail(body, text)
    cls: type[ThunderPhoneError]
    if status >= 500:
        cls = ThunderPhoneUnavailable
    elif status in (401, 403):
        cls = ThunderPhoneAuthError
    elif status == 402:
        cls = ThunderPhonePaymentRequired
    elif status == 404:
        cls = ThunderPhoneNotFound
    elif status in (400, 409, 422):
        cls = ThunderPhoneInvalid
    elif 400 <= status < 500:
        cls = ThunderPhoneRejected
    else:
        cls = ThunderPhoneBadResponse
    return cls(detail, status=status, body=body)
