"""The outbox on its own, against the fake Slack over loopback: coalescing, timeouts, restarts,
withdrawals, and how each kind of Slack failure is classified."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlite_utils import Database

from bot.outbox import Outbox
from bot.sandbox.slack import FakeSlack
from bot.slack import client_logger
from bot.slack_errors import SLACK_EXCEPTIONS, Problem, SlackFailure, classify
from storage import messages
from storage.db import open_db

CHANNEL = "C0QA"
CARD = ("run", "1", "card")
RESULT = ("run", "1", "result")


def payload(text: str) -> dict[str, Any]:
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as running:
        yield running


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(str(tmp_path / "thunderbot.db"))


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url, retry_handlers=[])


@pytest.fixture
async def outbox(db: Database, client: AsyncWebClient) -> AsyncIterator[Outbox]:
    # A short call timeout keeps the wait before a lost post is looked for short.
    running = Outbox(db, client, post_interval=0.0, call_timeout=0.5)
    running.start()
    yield running
    await running.close()


def top_level(fake: FakeSlack) -> list[Any]:
    return [m for m in fake.messages[CHANNEL] if m.thread_ts is None]


async def test_edits_are_coalesced_to_the_latest_payload(
    fake: FakeSlack, db: Database, client: AsyncWebClient
) -> None:
    outbox = Outbox(db, client, post_interval=1.0, call_timeout=5.0)
    try:
        outbox.show(CARD, CHANNEL, payload("version 0"))
        assert (await outbox.wait(CARD, timeout=5)).ts is not None
        for version in range(1, 21):
            outbox.show(CARD, CHANNEL, payload(f"version {version}"))
        await fake.wait_for(lambda: top_level(fake)[0].text == "version 20" or None)
        await outbox.wait(CARD, timeout=5)
        assert len(fake.calls_to("chat.update")) <= 3, "20 changes, a couple of edits"
        assert len(top_level(fake)) == 1
    finally:
        await outbox.close()


async def test_it_counts_the_messages_ready_to_go_out_not_those_slacks_pace_holds(
    fake: FakeSlack, db: Database, client: AsyncWebClient
) -> None:
    """What the webhook intake weighs: messages due now. A second post to the channel waits
    for Slack's pace (30 s here), so it is not counted."""
    outbox = Outbox(db, client, post_interval=30.0, call_timeout=5.0)
    progress: list[int] = []
    outbox.on_progress = lambda: progress.append(outbox.ready_count())
    try:
        outbox.show(CARD, CHANNEL, payload("the card"))
        outbox.show(("run", "2", "card"), CHANNEL, payload("another card"))
        assert outbox.ready_count() == 2
        await outbox.wait(CARD, timeout=5)
        await fake.wait_for(lambda: outbox.ready_count() == 0 or None)
        assert progress[-1] == 0
        assert [m.text for m in top_level(fake)] == ["the card"]
        outbox.show(CARD, CHANNEL, payload("the card, edited"))  # an edit is not held
        assert outbox.ready_count() == 1
        await fake.wait_for(lambda: outbox.ready_count() == 0 or None)
        await fake.wait_for(lambda: top_level(fake)[0].text == "the card, edited" or None)
        assert len(top_level(fake)) == 1
    finally:
        await outbox.close()


async def test_a_reply_waits_for_its_thread_and_lands_in_it(
    fake: FakeSlack, outbox: Outbox
) -> None:
    outbox.show(CARD, CHANNEL, payload("the card"))
    outbox.show(RESULT, CHANNEL, payload("the result"), thread_of=CARD)
    result = await outbox.wait(RESULT, timeout=5)
    card_ts = outbox.ts_of(CARD)
    assert card_ts is not None and result.ts is not None
    [reply] = fake.thread(CHANNEL, card_ts)
    assert (reply.ts, reply.text) == (result.ts, "the result")
    assert reply.metadata == {
        "event_type": "thunderbot_message",
        "event_payload": {
            "message_id": messages.get_message(outbox._db, RESULT).id,  # type: ignore[union-attr]
            "owner": "run:1",
            "role": "result",
        },
    }


async def test_a_call_that_hangs_is_cut_off_by_the_configured_timeout(
    fake: FakeSlack, db: Database, client: AsyncWebClient
) -> None:
    fake.fault("chat.postMessage", error=None, hang=60, handled=True)
    outbox = Outbox(db, client, post_interval=0.0, call_timeout=0.3)
    try:
        outbox.show(CARD, CHANNEL, payload("the card"))
        shown = await outbox.wait(CARD, timeout=10)
    finally:
        await outbox.close()
    assert shown.ts is not None, "found after the timeout, not waited out for 60 s"
    assert len(top_level(fake)) == 1
    assert fake.calls_to("conversations.history"), "it looked before posting again"


async def test_a_rate_limited_look_is_waited_out_not_taken_for_absence(
    fake: FakeSlack, outbox: Outbox
) -> None:
    fake.invite_bot(CHANNEL)
    fake.fault("chat.postMessage", error=None, drop=True, handled=True)
    fake.fault("conversations.history", status=429, retry_after=1)
    outbox.show(CARD, CHANNEL, payload("the card"))
    shown = await outbox.wait(CARD, timeout=10)
    assert len(top_level(fake)) == 1 and shown.ts == top_level(fake)[0].ts
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert len(fake.calls_to("conversations.history")) == 2


async def test_where_the_bot_cannot_read_it_posts_again_rather_than_lose_a_message(
    fake: FakeSlack, outbox: Outbox
) -> None:
    fake.add_channel("G0SECRET", "secret", private=True, bot_member=True)
    fake.fault("chat.postMessage", error=None, drop=True, handled=True)
    fake.fault("conversations.history", status=200, error="missing_scope", retry_after=None)
    key = ("run", "2", "card")
    outbox.show(key, "G0SECRET", payload("the card"))
    shown = await outbox.wait(key, timeout=10)
    posted = fake.messages["G0SECRET"]
    assert len(posted) == 2, "a rare duplicate, documented, beats a lost message"
    assert shown.ts == posted[-1].ts


async def test_work_left_by_a_stopped_outbox_is_done_by_the_next(
    fake: FakeSlack, db: Database, client: AsyncWebClient
) -> None:
    first = Outbox(db, client, post_interval=0.0, call_timeout=5.0)
    await first.close()  # stopped before it could deliver anything
    messages.want_shown(
        db, CARD, channel=CHANNEL, payload='{"text": "kept", "blocks": []}', digest="d1"
    )
    assert top_level(fake) == []

    second = Outbox(db, client, post_interval=0.0, call_timeout=5.0)
    second.start()
    try:
        await fake.wait_for(lambda: top_level(fake) or None)
        assert (await second.wait(CARD, timeout=5)).ts == top_level(fake)[0].ts
    finally:
        await second.close()
    assert [m.text for m in top_level(fake)] == ["kept"]


async def test_a_withdrawn_message_is_deleted(fake: FakeSlack, outbox: Outbox) -> None:
    outbox.show(CARD, CHANNEL, payload("starting"))
    await outbox.wait(CARD, timeout=5)
    outbox.withdraw(CARD)
    await outbox.wait(CARD, timeout=5)
    assert top_level(fake) == []
    assert fake.calls_to("chat.delete")
    assert messages.get_message(outbox._db, CARD) is None


async def test_a_broken_token_gives_up_without_a_note(
    fake: FakeSlack, db: Database, outbox: Outbox
) -> None:
    fake.fault("chat.postMessage", error="token_revoked", status=200, retry_after=None, times=None)
    outbox.show(CARD, CHANNEL, payload("the card"), notify_user="U0MARIA")
    shown = await outbox.wait(CARD, timeout=5)
    assert shown == type(shown)(None, failed="token_revoked")
    assert len(fake.calls_to("chat.postMessage")) == 1, "no second try with a broken token"
    assert messages.get_message(db, ("run", "1", "notice")) is None


async def _failure(fake: FakeSlack, client: AsyncWebClient, **fault: Any) -> SlackFailure:
    fake.fault("chat.postMessage", **fault)
    try:
        await client.chat_postMessage(channel=CHANNEL, text="hello")
    except SLACK_EXCEPTIONS as error:
        return classify(error)
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"status": 429, "retry_after": 30}, SlackFailure(Problem.RATE_LIMITED, "ratelimited", 30)),
        (
            {"status": 500, "plain_text": "upstream connect error", "retry_after": None},
            SlackFailure(Problem.TRANSIENT, "HTTP 500"),
        ),
        (
            {"status": 503, "error": "service_unavailable", "retry_after": None},
            SlackFailure(Problem.TRANSIENT, "service_unavailable"),
        ),
        (
            {"status": 200, "error": "channel_not_found", "retry_after": None},
            SlackFailure(Problem.NO_CHANNEL, "channel_not_found"),
        ),
        (
            {"status": 200, "error": "is_archived", "retry_after": None},
            SlackFailure(Problem.NO_CHANNEL, "is_archived"),
        ),
        (
            {"status": 200, "error": "msg_too_long", "retry_after": None},
            SlackFailure(Problem.TOO_LONG, "msg_too_long"),
        ),
        (
            {"status": 200, "error": "invalid_auth", "retry_after": None},
            SlackFailure(Problem.AUTH, "invalid_auth"),
        ),
        (
            {"status": 200, "error": "something_new", "retry_after": None},
            SlackFailure(Problem.REFUSED, "something_new"),
        ),
        ({"error": None, "drop": True}, SlackFailure(Problem.TRANSIENT, "ServerDisconnectedError")),
    ],
)
async def test_every_slack_failure_falls_into_one_kind(
    fake: FakeSlack, client: AsyncWebClient, fault: dict[str, Any], expected: SlackFailure
) -> None:
    assert await _failure(fake, client, **fault) == expected


def test_a_failure_without_an_answer_is_unclear() -> None:
    assert classify(TimeoutError()).unclear
    assert not SlackFailure(Problem.NO_CHANNEL, "channel_not_found").unclear
    error = SlackApiError("no", {"ok": False, "error": "ratelimited"})
    assert classify(error).problem is Problem.RATE_LIMITED


async def test_a_post_slack_finishes_after_the_timeout_is_found_not_repeated(
    fake: FakeSlack, db: Database, client: AsyncWebClient
) -> None:
    # Slack takes the post only after the bot stopped waiting for it.
    fake.fault("chat.postMessage", error=None, hang=0.5, handled=False)
    outbox = Outbox(db, client, post_interval=0.0, call_timeout=0.3)
    try:
        outbox.show(CARD, CHANNEL, payload("the card"))
        shown = await outbox.wait(CARD, timeout=10)
    finally:
        await outbox.close()
    assert [m.text for m in top_level(fake)] == ["the card"]
    assert shown.ts == top_level(fake)[0].ts


def test_a_message_that_may_be_in_slack_is_looked_for_when_it_comes_back(db: Database) -> None:
    row = messages.want_shown(db, CARD, channel=CHANNEL, payload="{}", digest="v1")
    messages.mark_posting(db, row.id, "v1")
    messages.mark_failed(db, row.id, "timeout")  # gave up while the post was unclear
    revived = messages.want_shown(db, CARD, channel=CHANNEL, payload="{}", digest="v2")
    assert revived.state == "posting", "looked for before anything is posted again"
    withdrawn = messages.withdraw(db, CARD)
    assert withdrawn is not None and withdrawn.state == "withdrawn", "found, then deleted"


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_the_slack_clients_logger_keeps_the_level_in_force(
    caplog: pytest.LogCaptureFixture, level: int
) -> None:
    # slack_sdk formats every request's debug line whenever its logger's own level is unset
    # (`logger.level <= DEBUG`); set to the level in force, it skips that unless debugging.
    logger = logging.getLogger("slack_sdk.web.async_client")
    saved = logger.level
    try:
        logger.setLevel(logging.NOTSET)
        caplog.set_level(level)
        assert client_logger().level == level
        assert (client_logger().level <= logging.DEBUG) is (level == logging.DEBUG)
    finally:
        logger.setLevel(saved)
