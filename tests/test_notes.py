"""Notes meant for one person reach them, even in a channel where Slack won't show the bot's
ephemeral messages (a public channel the bot has not joined): through the response URL of
their command or click, else in a direct message."""

from __future__ import annotations

import json

import pytest

from bot import ids
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import LocalStack
from tests.helpers import CHANNEL, cards, confirm, shown, wait_for_graded_result
from tests.test_batches import import_suite
from tests.test_suites_slack import text_input

DM = "D0MARIA"  # where the fake Slack puts the bot's direct messages to U0MARIA
CASES = [{"name": "refund-policy", "scenario_prompt": "Ask about the refund policy."}]


def not_a_member(stack: LocalStack, error: str = "not_in_channel") -> None:
    """Slack refuses the bot's ephemerals in the channel, as where the bot has not joined."""
    stack.fake.fault(
        "chat.postEphemeral", error=error, status=200, retry_after=None, channel=CHANNEL, times=None
    )


def notes_for_maria(stack: LocalStack, needle: str) -> list[Ephemeral]:
    return [
        e
        for e in stack.fake.ephemerals
        if e.user == "U0MARIA" and e.channel == CHANNEL and needle in e.text
    ]


def direct_messages(stack: LocalStack) -> list[Message]:
    return stack.fake.messages.get(DM, [])


async def test_a_note_after_a_command_comes_through_its_response_url(stack: LocalStack) -> None:
    import_suite(stack, "refunds", CASES, target="agent:12")
    not_a_member(stack)
    maria = stack.user()
    answer = await maria.slash("suite trend refunds")
    assert answer.ephemeral is not None and "Drawing the trend" in shown(answer.ephemeral)

    [note] = await stack.fake.wait_for(lambda: notes_for_maria(stack, "no finished runs"))
    assert note.text.startswith("Suite `refunds` has no finished runs yet")
    assert note.response_url == answer.response_url, "posted through the command's response URL"
    [posted] = [c for c in stack.fake.calls_to("response_url") if "no finished" in str(c.args)]
    assert posted.args["response_type"] == "ephemeral"
    assert stack.fake.calls_to("chat.postEphemeral") == [], "no ephemeral Slack would refuse"
    assert direct_messages(stack) == []


async def test_a_note_after_a_click_comes_through_its_response_url(
    live_stack: LocalStack,
) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    not_a_member(stack)
    stack.fake.fail_next("views.open", error="expired_trigger_id", status=200, retry_after=None)
    assert await maria.click(result, ids.FLAG_RUN) == 200

    [note] = await stack.fake.wait_for(lambda: notes_for_maria(stack, "open that window"))
    assert note.text == "Slack didn't let me open that window in time. Press the button again."
    assert note.thread_ts == cards(stack)[0].ts, "in the run's thread, where the click was"
    assert stack.fake.calls_to("chat.postEphemeral") == []
    assert direct_messages(stack) == []


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found"])
async def test_a_note_without_a_response_url_comes_as_a_direct_message(
    stack: LocalStack, error: str
) -> None:
    not_a_member(stack, error)
    maria = stack.user()
    await maria.slash("suite import")
    form = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    # A form's submission carries no response URL: the note is first offered as an ephemeral.
    await maria.submit_view(
        form.id,
        {ids.SUITE_NAME: text_input("refunds"), ids.SUITE_JSON: text_input(json.dumps(CASES))},
    )

    [note] = await stack.fake.wait_for(lambda: direct_messages(stack))
    assert note.text.startswith("Imported suite `refunds` with 1 case.")
    assert f"About <#{CHANNEL}>" in shown(note), "it says which channel it is about"
    assert [c.error for c in stack.fake.calls_to("chat.postEphemeral")] == [error]
    assert notes_for_maria(stack, "Imported suite") == []


async def test_a_note_where_slack_shows_ephemerals_stays_in_the_channel(
    stack: LocalStack,
) -> None:
    maria = stack.user()
    await maria.slash("suite import")
    form = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    await maria.submit_view(
        form.id,
        {ids.SUITE_NAME: text_input("refunds"), ids.SUITE_JSON: text_input(json.dumps(CASES))},
    )
    [note] = await stack.fake.wait_for(lambda: notes_for_maria(stack, "Imported suite"))
    assert note.text == "Imported suite `refunds` with 1 case."
    assert direct_messages(stack) == [], "no direct message when the channel shows the note"
