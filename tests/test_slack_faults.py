"""What people see when Slack misbehaves: answers lost after Slack acted, rate limits, hangs,
channels that are gone, messages too long, and a bot killed mid-post. Every fault is made by
the fake Slack over real HTTP; every assertion is on what the channel shows."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from bot import ids
from bot.sandbox.slack import Message
from bot.sandbox.stack import LocalStack
from storage import messages
from tests.helpers import (
    CHANNEL,
    PROMPT,
    cards,
    confirm,
    launches_posted,
    results,
    rows,
    shown,
    start_run,
    wait_for_card,
    wait_for_graded_result,
)
from tests.serve_process import ServedBot

OTHER = "C0OTHER"


def posts_to(stack: LocalStack, channel: str, *, thread: bool) -> int:
    """chat.postMessage calls (answered or not) for a channel's cards or thread replies."""
    return sum(
        1
        for call in stack.fake.calls_to("chat.postMessage")
        if call.args.get("channel") == channel and bool(call.args.get("thread_ts")) == thread
    )


def replies_in(stack: LocalStack, channel: str) -> list[Message]:
    top = [m for m in stack.fake.messages.get(channel, []) if m.thread_ts is None]
    return stack.fake.thread(channel, top[0].ts) if top else []


async def advance_all(stack: LocalStack, run_id: int, steps: int = 3) -> None:
    for _ in range(steps):
        await stack.sandbox.advance(run_id)


async def test_a_result_whose_answer_was_lost_appears_exactly_once(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    # Slack posts the result, then the connection drops before its answer arrives.
    stack.fake.fault("chat.postMessage", error=None, drop=True, handled=True)
    await advance_all(stack, run_id)
    result = await wait_for_graded_result(stack)
    key = ("run", str(run_id), "result")
    await stack.fake.wait_for(
        lambda: getattr(messages.get_message(stack.services.db, key), "state", "") == "sent"
    )

    assert len(results(stack)) == 1, stack.fake.render_channel(CHANNEL)
    assert posts_to(stack, CHANNEL, thread=True) == 1, "the lost post was found, not re-sent"
    assert stack.fake.calls_to("conversations.join"), "the bot joined to read the thread"
    row = messages.get_message(stack.services.db, key)
    assert row is not None and (row.ts, row.state) == (result.ts, "sent")
    assert "✅ Passed · " in shown(result)


async def test_a_lost_result_is_not_posted_again_when_joining_to_look_fails_for_now(
    stack: LocalStack,
) -> None:
    run_id = await start_run(stack)
    # Slack posts the result but the answer is lost; to look for it the bot must join the
    # channel, and Slack answers that join with a 429, then with a 5xx.
    stack.fake.fault("chat.postMessage", error=None, drop=True, handled=True)
    joins = [
        stack.fake.fault("conversations.join", status=429, retry_after=1),
        stack.fake.fault("conversations.join", error="fatal_error", status=500, retry_after=None),
    ]
    await advance_all(stack, run_id)
    key = ("run", str(run_id), "result")
    await stack.fake.wait_for(
        lambda: getattr(messages.get_message(stack.services.db, key), "state", "") == "sent",
        timeout=30,
    )

    assert len(results(stack)) == 1, stack.fake.render_channel(CHANNEL)
    assert posts_to(stack, CHANNEL, thread=True) == 1, "found once the join went through"
    assert [fault.hits for fault in joins] == [1, 1]


async def test_a_card_whose_answer_was_lost_appears_once_and_moves_on(stack: LocalStack) -> None:
    stack.fake.fault("chat.postMessage", error=None, drop=True, handled=True)
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    card = await wait_for_card(stack, "⏳ Queued")

    assert len(cards(stack)) == 1, stack.fake.render_channel(CHANNEL)
    assert "Starting" not in shown(card)
    assert len(launches_posted(stack)) == 1
    await stack.fake.wait_for(lambda: "Started run" in shown(confirmation) or None)
    [launch] = rows(stack, "launches")
    assert launch["status"] == "launched"


async def test_a_plain_text_5xx_is_retried_and_the_launch_goes_on(stack: LocalStack) -> None:
    stack.fake.fault(
        "chat.postMessage", status=500, plain_text="upstream connect error", retry_after=None
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await wait_for_card(stack, "⏳ Queued")
    await stack.fake.wait_for(lambda: "Started run" in shown(confirmation) or None)
    assert len(cards(stack)) == 1
    assert [row["status"] for row in rows(stack, "launches")] == ["launched"]


async def _two_channels_running(stack: LocalStack) -> tuple[int, int]:
    stack.fake.add_channel(OTHER, "other-qa")
    first = await start_run(stack)
    li = stack.user("U0LI", OTHER)
    await li.click(await confirm(li), ids.START_RUN)
    await stack.fake.wait_for(
        lambda: any("⏳ Queued" in shown(m) for m in stack.fake.messages.get(OTHER, [])) or None
    )
    return first, max(stack.sandbox.runs)


async def test_a_rate_limited_channel_does_not_hold_up_another(stack: LocalStack) -> None:
    slow, fast = await _two_channels_running(stack)
    limited = stack.fake.fault(
        "chat.postMessage", status=429, retry_after=30, channel=CHANNEL, times=1
    )
    await advance_all(stack, slow)
    await stack.fake.wait_for(lambda: limited.hits == 1 or None)
    await advance_all(stack, fast)

    [other_result] = await stack.fake.wait_for(lambda: replies_in(stack, OTHER) or None)
    assert "✅ Passed" in shown(other_result)
    # The limited channel is still waiting out its 30 s, yet the other got its result.
    assert replies_in(stack, CHANNEL) == []
    assert posts_to(stack, CHANNEL, thread=True) == 1


async def test_a_hung_call_in_one_channel_does_not_hold_up_another(stack: LocalStack) -> None:
    slow, fast = await _two_channels_running(stack)
    hung = stack.fake.fault("chat.postMessage", error=None, hang=30, channel=CHANNEL, times=1)
    await advance_all(stack, slow)
    await stack.fake.wait_for(lambda: hung.hits == 1 or None)
    await advance_all(stack, fast)

    [other_result] = await stack.fake.wait_for(lambda: replies_in(stack, OTHER) or None)
    assert "✅ Passed" in shown(other_result)
    assert replies_in(stack, CHANNEL) == [], "the hung post has not been answered yet"


async def test_a_channel_that_is_gone_stops_soon_and_the_person_is_told_once(
    stack: LocalStack,
) -> None:
    run_id = await start_run(stack)
    for method in ("chat.postMessage", "chat.update"):
        stack.fake.fault(
            method,
            error="channel_not_found",
            status=200,
            retry_after=None,
            channel=CHANNEL,
            times=None,
        )
    earlier = len(stack.fake.calls_to("chat.update"))
    await advance_all(stack, run_id, steps=2)  # completed: the card changes, a result is due

    def dm() -> list[Message]:
        return stack.fake.messages.get("D0MARIA", [])

    def given_up() -> bool:
        in_channel = [r for r in rows(stack, "slack_messages") if r["channel"] == CHANNEL]
        return len(in_channel) == 2 and all(r["state"] == "failed" for r in in_channel)

    [notice] = await stack.fake.wait_for(dm)
    assert f"run {run_id}" in notice.text
    assert "channel_not_found" in notice.text and "/invite @thunderbot" in shown(notice)
    await stack.fake.wait_for(given_up)
    edits = len(stack.fake.calls_to("chat.update")) - earlier
    assert posts_to(stack, CHANNEL, thread=True) + edits <= 4, "it gives up within a few tries"

    # The grade arrives: both messages change, are tried once more, and fail again quietly.
    calls_before = len(stack.fake.calls)
    await stack.sandbox.advance(run_id)
    await stack.fake.wait_for(lambda: len(stack.fake.calls) >= calls_before + 2 or None)
    await stack.fake.wait_for(given_up)
    assert len(dm()) == 1, "the person is told once"
    assert cards(stack)[0].text.endswith(": ⏳ Queued"), "the card was not edited"


async def test_a_message_slack_finds_too_long_is_shortened(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    stack.fake.fault("chat.postMessage", error="msg_too_long", status=200, retry_after=None)
    await advance_all(stack, run_id, steps=3)
    [result] = await stack.fake.wait_for(lambda: results(stack) or None)

    assert "Shortened: Slack refused the full message (msg_too_long)" in shown(result)
    assert "✅ Passed" in result.text
    action_ids = [e["action_id"] for e in result.blocks[-1].get("elements", [])]
    assert ids.RUN_AGAIN in action_ids, "the buttons survive the shortening"
    assert len(results(stack)) == 1


async def test_a_post_slack_accepted_just_before_the_bot_was_killed_is_not_repeated(
    tmp_path: Path,
) -> None:
    # No grace for the grade: the result is posted as "not graded yet" as soon as the call ends.
    no_grace = {"THUNDERBOT_GRADE_GRACE": "0"}
    async with (
        asyncio.timeout(90),
        ServedBot(tmp_path, step_seconds=None, env=no_grace) as served,
    ):
        assert served.thunderphone is not None
        maria = served.user()
        reply = await maria.slash(f'run agent:12 "{PROMPT}"')
        assert reply.ephemeral is not None
        await maria.click(reply.ephemeral, ids.START_RUN)

        def card() -> Message | None:
            found = [m for m in served.fake.messages.get(CHANNEL, []) if m.thread_ts is None]
            return found[0] if found and "⏳ Queued" in shown(found[0]) else None

        first = await served.fake.wait_for(card, timeout=20)
        run_id = max(served.thunderphone.runs)
        # Slack takes the result, but its answer never reaches the bot before it is killed.
        served.fake.fault("chat.postMessage", error=None, handled=True, hang=60)
        for _ in range(2):
            await served.thunderphone.advance(run_id)
        await served.fake.wait_for(lambda: served.fake.thread(CHANNEL, first.ts) or None, 20)
        killed = await served.stop_bot(signal.SIGKILL)
        assert killed.code == -signal.SIGKILL

        served.fake.clear_faults()
        await served.start_bot()
        await served.thunderphone.advance(run_id)  # the grade arrives after the restart
        graded = await served.fake.wait_for(
            lambda: (
                [
                    m
                    for m in served.fake.thread(CHANNEL, first.ts)
                    if "*Grader's opinion*  success" in shown(m)
                ]
                or None
            ),
            timeout=20,
        )
        assert len(served.fake.thread(CHANNEL, first.ts)) == 1, served.fake.render_channel(CHANNEL)
        assert len(graded) == 1
        result_posts = [
            c for c in served.fake.calls_to("chat.postMessage") if c.args.get("thread_ts")
        ]
        assert len(result_posts) == 1, "after the restart the post was found, not repeated"
