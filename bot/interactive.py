"""What Slack shows for a moment or to one person: ephemeral notes, modals and the App Home
tab. Unlike the outbox's messages these are not worth a second try, so a failure is logged
once, here, and reported to the caller as False or None."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.blocks.notes import direct_note
from bot.services import Services
from bot.slack_errors import SLACK_EXCEPTIONS, Problem, classify

log = logging.getLogger(__name__)

RESPONSE_URL_TIMEOUT = 10  # seconds


def _failed(what: str, error: BaseException) -> None:
    failure = classify(error)
    log.warning("could not %s: %s (%s)", what, failure.code, failure.problem.value)


async def tell(
    services: Services,
    channel: str,
    user: str,
    text: str,
    *,
    thread_ts: str | None = None,
    response_url: str | None = None,
) -> bool:
    """A note only `user` sees; text is mrkdwn, so callers escape what they quote.

    It goes through the response URL of the person's command or click when there is one (that
    reaches them in any channel, the bot a member or not), else as an ephemeral message in
    `channel`. Where Slack won't show one there (a channel the bot is not in, or one gone), it
    becomes a direct message, through the outbox."""
    if response_url and await _respond(services, response_url, text, thread_ts=thread_ts):
        return True
    try:
        await services.slack.chat_postEphemeral(
            channel=channel, user=user, text=text, thread_ts=thread_ts
        )
    except SLACK_EXCEPTIONS as error:
        failure = classify(error)
        if failure.problem is not Problem.NO_CHANNEL and failure.code != "user_not_in_channel":
            _failed(f"tell {user} {text!r}", error)
            return False
        log.info("telling %s directly: no ephemeral in %s (%s)", user, channel, failure.code)
        services.outbox.show(("note", uuid.uuid4().hex, "note"), user, direct_note(channel, text))
    return True


async def _respond(
    services: Services, response_url: str, text: str, *, thread_ts: str | None
) -> bool:
    """Post an ephemeral note through a response URL; whether Slack took it (a URL is good
    for five posts within 30 minutes of the command or click)."""
    body: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False, "text": text}
    if thread_ts:
        body["thread_ts"] = thread_ts
    client = AsyncWebhookClient(
        response_url, timeout=RESPONSE_URL_TIMEOUT, session=services.slack.session
    )
    try:
        response = await client.send_dict(body)
    except SLACK_EXCEPTIONS as error:
        _failed("answer through a response URL", error)
        return False
    if response.status_code != 200:
        log.warning(
            "a response URL answered HTTP %s: %s", response.status_code, response.body[:200]
        )
        return False
    return True


async def open_view(services: Services, trigger_id: str, view: dict[str, Any]) -> str | None:
    """Open a modal; its view id, or None when Slack refused (the trigger lives 3 s)."""
    try:
        opened = await services.slack.views_open(trigger_id=trigger_id, view=view)
    except SLACK_EXCEPTIONS as error:
        _failed("open a modal", error)
        return None
    return str(opened["view"]["id"])


async def update_view(
    services: Services, view_id: str, view: dict[str, Any], *, view_hash: str | None = None
) -> bool:
    try:
        await services.slack.views_update(view_id=view_id, hash=view_hash, view=view)
    except SLACK_EXCEPTIONS as error:
        # A closed modal or a newer page (hash_conflict) leaves nothing to fix.
        _failed(f"update modal {view_id}", error)
        return False
    return True


async def publish_home(services: Services, user_id: str, view: dict[str, Any]) -> bool:
    try:
        await services.slack.views_publish(user_id=user_id, view=view)
    except SLACK_EXCEPTIONS as error:
        _failed(f"publish the App Home of {user_id}", error)
        return False
    return True


async def permalink(services: Services, channel: str, ts: str) -> str | None:
    try:
        response = await services.slack.chat_getPermalink(channel=channel, message_ts=ts)
    except SLACK_EXCEPTIONS as error:
        _failed(f"get a permalink for {ts}", error)
        return None
    link = response.get("permalink")
    return str(link) if link else None


async def show_ephemeral(
    services: Services, channel: str, user: str, payload: dict[str, Any]
) -> bool:
    """A message only `user` sees, with blocks (a confirmation after a form, say)."""
    try:
        await services.slack.chat_postEphemeral(channel=channel, user=user, **payload)
    except SLACK_EXCEPTIONS as error:
        _failed(f"show {user} an ephemeral message", error)
        return False
    return True


async def upload_file(
    services: Services,
    channel: str,
    *,
    filename: str,
    content: bytes | str,
    comment: str,
    alt_text: str | None = None,
    thread_ts: str | None = None,
) -> str | None:
    """Share a file (a suite's JSON, a chart) in a channel, in the thread of `thread_ts` when
    given, with `alt_text` for an image; None on success, else Slack's error. Sharing needs
    the bot in the channel, so it joins a public one first (a private channel or a DM refuses
    the join: membership there is up to its people)."""
    with contextlib.suppress(*SLACK_EXCEPTIONS):
        await services.slack.conversations_join(channel=channel)
    try:
        await services.slack.files_upload_v2(
            channel=channel,
            content=content,
            filename=filename,
            title=filename,
            alt_txt=alt_text,
            initial_comment=comment,
            thread_ts=thread_ts,
        )
    except SLACK_EXCEPTIONS as error:
        _failed(f"upload {filename}", error)
        return classify(error).code
    return None


MAX_DOWNLOAD_BYTES = 2_000_000  # a suite of 100 cases is far smaller


async def download_text(
    services: Services, url: str, *, timeout: float = 10.0
) -> tuple[str | None, str]:
    """A private file a person attached, as text: (text, "") or (None, what went wrong)."""
    token = services.settings.slack_bot_token.get_secret_value()
    session = services.slack.session
    if session is None:
        return None, "no connection to Slack"
    try:
        async with (
            asyncio.timeout(timeout),
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as response,
        ):
            if response.status != 200:
                return None, f"Slack answered HTTP {response.status}"
            body = await response.content.read(MAX_DOWNLOAD_BYTES + 1)
    except SLACK_EXCEPTIONS as error:
        _failed("download an attached file", error)
        return None, classify(error).code
    if len(body) > MAX_DOWNLOAD_BYTES:
        return None, "the file is larger than 2 MB"
    try:
        return body.decode("utf-8"), ""
    except UnicodeDecodeError:
        return None, "the file is not UTF-8 text"
