"""One test call from Slack, end to end, over real HTTP with requests signed as Slack signs."""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta

import httpx
import pytest

from bot import ids
from bot.launch import ANSWER_TIMEOUT, SEARCH_WINDOW
from bot.sandbox.stack import API_KEY, LocalStack
from storage.db import now_iso
from tests.helpers import (
    CHANNEL,
    PROMPT,
    cards,
    confirm,
    launches_posted,
    outbox_idle,
    results,
    rows,
    shown,
    slack_calls,
    start_run,
    wait_for_card,
    wait_for_graded_result,
    wait_for_result,
)


async def test_happy_path_from_command_to_graded_result(live_stack: LocalStack) -> None:
    stack = live_stack
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria, f'run agent:12 --caller +14155550199 "{PROMPT}"')

    assert "Start a test call?" in shown(confirmation)
    assert "agent 12" in shown(confirmation)
    assert "outbound · bot-to-bot" in shown(confirmation)
    assert "billed at 2× the normal rate" in shown(confirmation)
    assert PROMPT in shown(confirmation)
    assert launches_posted(stack) == [], "nothing is launched before consent"

    assert await maria.click(confirmation, ids.START_RUN) == 200
    result = await wait_for_graded_result(stack)

    [request] = launches_posted(stack)
    assert request.json == {
        "target_type": "agent",
        "target_id": 12,
        "direction": "outbound",
        "consent_to_charge": True,
        "scenario_prompt": PROMPT,
        "mode": "bot",
        "target_number": "+14155550199",
    }
    run = stack.sandbox.runs[max(stack.sandbox.runs)]
    grade = stack.sandbox.grades[max(stack.sandbox.grades)]
    call = stack.sandbox.calls[run["call_id"]]
    score = f"{round(grade['score'])}%"

    [card] = cards(stack)
    assert "🧪 Test call · Support agent (agent 12) · outbound · bot-to-bot" in shown(card)
    assert "Started by <@U0MARIA>" in shown(card)
    assert f"run {run['id']}" in shown(card)
    await wait_for_card(stack, f"✅ Passed · {score}")

    text = result.blocks[0]["text"]["text"]
    cost = f"${call['billing_total_cents'] / 100:.2f}"
    assert text.startswith(f"✅ Passed · {score}")
    assert cost in text and "0:" in text
    assert "*Agent:*" in shown(result) and "*Caller:*" in shown(result)
    assert "*Grader's opinion*" in shown(result)
    action_ids = [e["action_id"] for e in result.blocks[-1]["elements"]]
    assert action_ids == [ids.FLAG_RUN, ids.SHOW_TRANSCRIPT, ids.RUN_AGAIN]
    assert len(results(stack)) == 1

    assert confirmation.replaced >= 1
    assert confirmation.text.startswith(f"Started run {run['id']} — see the card below.")
    link = f"https://slack.com/archives/{CHANNEL}/p{card.ts.replace('.', '')}"
    started = confirmation.blocks[0]["text"]["text"]
    assert started.startswith(f"Started <{link}|run {run['id']}> — see the card below."), (
        "the run id links to the run's card, whose thread holds the result"
    )
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["run_id"], launch["decided_by"]) == (
        "launched",
        run["id"],
        "U0MARIA",
    )
    [stored] = rows(stack, "runs")
    assert (stored["status"], stored["cost_cents"], stored["call_id"]) == (
        "completed",
        call["billing_total_cents"],
        run["call_id"],
    )


async def test_the_card_moves_through_queued_and_in_progress(stack: LocalStack) -> None:
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    card = await wait_for_card(stack, "⏳ Queued")
    run_id = max(stack.sandbox.runs)

    await stack.sandbox.advance(run_id)
    await wait_for_card(stack, "📞 In progress")
    assert results(stack) == []

    await stack.sandbox.advance(run_id)
    await wait_for_card(stack, "⏳ Completed, waiting for the grade")
    # The result notifies people once its verdict is known, so not before the grade.
    await outbox_idle(stack)
    assert results(stack) == []

    await stack.sandbox.advance(run_id)
    result = await wait_for_result(stack, "*Grader's opinion*  ")
    assert result.text.startswith("✅ Passed")
    final = await wait_for_card(stack, "✅ Passed")
    assert final.ts == card.ts, "one card, edited in place"
    assert len(cards(stack)) == 1 and len(results(stack)) == 1


def first_result_post(stack: LocalStack) -> str:
    """The text of the first result Slack was asked to post: what the notification says."""
    posts = [c for c in stack.fake.calls_to("chat.postMessage") if c.args.get("thread_ts")]
    assert posts, "no result was posted"
    return str(posts[0].args["text"])


async def test_a_failing_result_notifies_with_its_failing_verdict(live_stack: LocalStack) -> None:
    maria = live_stack.user()
    await maria.click(
        await confirm(maria, 'run agent:12 "[score: 41] Ask about refunds."'), ids.START_RUN
    )
    result = await wait_for_graded_result(live_stack)
    notification = first_result_post(live_stack)
    assert notification.startswith("❌ Failed · score 41% &lt; 80%"), notification
    assert "✅" not in notification and "Passed" not in notification
    # One verdict: the grader's own outcome is shown below it as its opinion.
    headline, *_ = result.blocks[0]["text"]["text"].split("\n")
    assert headline.startswith("❌ Failed · score 41% &lt; 80%")
    assert "*Grader's opinion*" in shown(result)
    await wait_for_card(live_stack, "❌ Failed · score 41% &lt; 80%")
    assert len(results(live_stack)) == 1


async def test_a_grade_that_never_arrives_is_said_and_the_result_still_comes(
    live_stack: LocalStack,
) -> None:
    maria = live_stack.user()
    await maria.click(
        await confirm(maria, 'run agent:12 "[no-grade] Ask about refunds."'), ids.START_RUN
    )
    await wait_for_card(live_stack, "⏳ Completed, waiting for the grade")
    result = await wait_for_result(live_stack, "Not graded yet")
    assert first_result_post(live_stack).startswith("⏳ Not graded yet · ")
    assert "✅" not in first_result_post(live_stack)
    assert "not in yet; this reply is updated when it arrives" in shown(result)
    assert "*Agent:*" in shown(result), "the transcript is shown while the grade is awaited"
    assert len(results(live_stack)) == 1


async def test_a_late_grade_turns_not_graded_yet_into_the_verdict(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    for _ in range(2):  # in progress, then completed; the grade is held back
        await stack.sandbox.advance(run_id)
    waiting = await wait_for_result(stack, "⏳ Not graded yet")
    await stack.sandbox.advance(run_id)  # the grade arrives, past the grace period
    graded = await wait_for_result(stack, "✅ Passed")
    assert graded.ts == waiting.ts, "the same reply, edited"
    assert len(results(stack)) == 1


async def test_a_failed_run_shows_thunderphone_error_and_what_to_try(
    live_stack: LocalStack,
) -> None:
    maria = live_stack.user()
    await maria.click(
        await confirm(maria, 'run agent:12 "[fail] Call and hang up."'), ids.START_RUN
    )
    result = await wait_for_result(live_stack, "❌ Failed")
    run = live_stack.sandbox.runs[max(live_stack.sandbox.runs)]
    assert run["error_message"] in result.blocks[0]["text"]["text"]
    assert "What to try" in shown(result)
    await wait_for_card(live_stack, f"❌ Failed · the call failed: {run['error_message']}")
    assert result.text.startswith("❌ Failed · the call failed")
    assert [e["action_id"] for e in result.blocks[-1]["elements"]] == [ids.RUN_AGAIN]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("deploy agent:12", 'Unknown command: "deploy"'),
        ('run "Ask about refunds."', "Which agent or number should I call?"),
        ('run agent:twelve "Hi"', 'I couldn\'t read "agent:twelve": an agent id is a number'),
        ('run agent:12 --caller 12345 "Hi"', '"12345" is not a phone number in E.164 format'),
        ('run agent:12 "Ask about refunds', "opening quote but no closing one"),
        ("run agent:12", "A test call needs a scenario prompt in quotes"),
        ('run support "Hi"', 'I don\'t know the alias "support"'),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored_or_launched(
    stack: LocalStack, text: str, problem: str
) -> None:
    reply = await stack.user().slash(text)
    assert reply.status == 200
    assert reply.ephemeral is not None
    assert problem in reply.ephemeral.text
    assert "Usage: `/testcall" in shown(reply.ephemeral)
    assert launches_posted(stack) == []
    assert rows(stack, "launches") == [] and rows(stack, "runs") == []
    assert slack_calls(stack, "chat.postMessage") == 0


async def test_an_alias_names_a_target(stack: LocalStack) -> None:
    maria = stack.user()
    saved = await maria.slash("alias set Support agent:12")
    assert saved.ephemeral is not None and "`support` now means agent 12" in saved.ephemeral.text
    moved = await maria.slash("alias set support agent:14")
    assert moved.ephemeral is not None
    assert "`support` now means agent 14 (was agent 12)" in moved.ephemeral.text
    await maria.slash("alias set support agent:12")
    confirmation = await confirm(maria, 'run support "Ask about refunds."')
    assert "*Target*  Support agent (agent 12), alias support · spark" in shown(confirmation)
    listed = await maria.slash("alias list")
    assert listed.ephemeral is not None and "`support` → agent 12" in shown(listed.ephemeral)


async def test_help_explains_the_commands(stack: LocalStack) -> None:
    reply = await stack.user().slash("help")
    assert reply.ephemeral is not None
    assert "/testcall run &lt;target&gt;" in shown(reply.ephemeral)
    assert "billed at 2× the normal rate" in shown(reply.ephemeral)


async def test_a_prompt_mentioning_payload_still_reaches_the_command(stack: LocalStack) -> None:
    confirmation = await confirm(stack.user(), 'run agent:12 "Ask about the payload limits."')
    assert "Ask about the payload limits." in shown(confirmation)


async def test_start_clicked_twice_at_once_launches_one_run(stack: LocalStack) -> None:
    # Two of Maria's Slack clients (only the person who asked may press Start).
    maria, again = stack.user("U0MARIA"), stack.user("U0MARIA")
    confirmation = await confirm(maria)
    statuses = await asyncio.gather(
        maria.click(confirmation, ids.START_RUN), again.click(confirmation, ids.START_RUN)
    )
    assert statuses == [200, 200]
    await wait_for_card(stack, "⏳ Queued")
    answers = await stack.fake.wait_for(
        lambda: (
            [c.args.get("text", "") for c in stack.fake.calls_to("response_url")]
            if len(stack.fake.calls_to("response_url")) == 2
            else None
        )
    )
    assert sum("Already being started by" in text for text in answers) == 1
    assert sum(text.startswith("Started run") for text in answers) == 1
    assert len(launches_posted(stack)) == 1
    assert len(rows(stack, "runs")) == 1 and len(cards(stack)) == 1


async def test_a_click_after_a_restart_launches_once(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    # What another open Slack client still shows: the confirmation with its buttons.
    stale = copy.deepcopy(confirmation)
    await stack.stop_bot()
    await stack.start_bot()
    await stack.user().click(confirmation, ids.START_RUN)
    await wait_for_card(stack, "⏳ Queued")
    await stack.stop_bot()
    await stack.start_bot()
    await stack.user().click(stale, ids.START_RUN)
    await stack.fake.wait_for(lambda: "Already started by <@U0MARIA>" in shown(stale) or None)
    assert len(launches_posted(stack)) == 1
    assert len(cards(stack)) == 1


async def test_cancel_launches_nothing_and_start_afterwards_is_refused(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    stale = copy.deepcopy(confirmation)
    await maria.click(confirmation, ids.CANCEL_RUN)
    await stack.fake.wait_for(lambda: "Cancelled." in shown(confirmation) or None)
    await maria.click(stale, ids.START_RUN)
    await stack.fake.wait_for(lambda: "Cancelled by <@U0MARIA>" in shown(stale) or None)
    assert launches_posted(stack) == [] and cards(stack) == []
    assert [row["status"] for row in rows(stack, "launches")] == ["cancelled"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            402,
            {"detail": "Insufficient balance. Top up your account to place test calls."},
            "ThunderPhone says the balance is empty (HTTP 402). Top up, then run again.",
        ),
        (
            400,
            {"target_id": ["No agent with id 12 in this organization."]},
            "ThunderPhone rejected the request (HTTP 400): Target: No agent with id 12",
        ),
    ],
)
async def test_thunderphone_refusing_the_launch_is_told_and_nothing_is_half_stored(
    stack: LocalStack, status: int, body: dict[str, object], expected: str
) -> None:
    stack.sandbox.fail_next("POST", "/v1/test-calls", status, body)
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(
        lambda: "Couldn't start the test call." in shown(confirmation) or None
    )
    assert expected in shown(confirmation)
    assert len(launches_posted(stack)) == 1, "a failed create is never retried"
    assert rows(stack, "runs") == []
    assert cards(stack) == [], "the card put up before the request is taken down again"
    assert slack_calls(stack, "chat.delete") == 1
    [launch] = rows(stack, "launches")
    assert launch["status"] == "failed" and launch["run_id"] is None


async def test_a_run_whose_creation_answer_was_lost_is_found_and_followed(
    stack: LocalStack,
) -> None:
    stack.sandbox.fail_next(
        "POST", "/v1/test-calls", 502, {"detail": "Bad gateway"}, after_handling=True
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(
        lambda: "didn't answer clearly (HTTP 502)" in shown(confirmation) or None
    )
    assert "Please don't start it again" in shown(confirmation)
    await wait_for_card(stack, "Checking with ThunderPhone whether this run started")
    [launch] = rows(stack, "launches")
    assert launch["status"] == "unknown" and rows(stack, "runs") == []
    [ours] = stack.sandbox.runs

    # Someone else starts the same scenario over SIP from the dashboard a moment later.
    async with httpx.AsyncClient(base_url=stack.settings.thunderphone_base_url) as client:
        other = await client.post(
            "/v1/test-calls",
            headers={"Authorization": f"Bearer {API_KEY}"},
            json={**launches_posted(stack)[0].json, "mode": "sip"},
        )
    assert other.status_code == 201

    # Our run finishes while nobody knows it is ours: its webhooks are kept, not dropped.
    for _ in range(3):
        await stack.sandbox.advance(ours)
    assert results(stack) == []

    # Once the answer is overdue, the bot looks for the run, and finds ours, not theirs.
    overdue = ANSWER_TIMEOUT + timedelta(seconds=10)
    stack.services.db.execute("update launches set decided_at = ?", [now_iso(overdue)])
    result = await wait_for_graded_result(stack)
    assert "✅ Passed · " in shown(result)
    await wait_for_card(stack, f"run {ours}")
    await wait_for_card(stack, "✅ Passed")
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["run_id"]) == ("launched", ours)
    assert [row["run_id"] for row in rows(stack, "runs")] == [ours]
    assert len(cards(stack)) == 1


async def test_a_launch_thunderphone_never_created_is_called_off(stack: LocalStack) -> None:
    stack.sandbox.fail_next("POST", "/v1/test-calls", 503, {"detail": "Unavailable"})
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await wait_for_card(stack, "Checking with ThunderPhone")
    stack.services.db.execute("update launches set decided_at = ?", [now_iso(SEARCH_WINDOW)])
    await wait_for_card(stack, "❌ Did not start · ThunderPhone has no record of this run")
    told = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "did not start" in e.text), None)
    )
    assert "nothing was charged" in told.text and told.user == "U0MARIA"
    assert [row["status"] for row in rows(stack, "launches")] == ["failed"]
    assert len(launches_posted(stack)) == 1 and rows(stack, "runs") == []


async def test_a_launch_called_off_while_its_card_waited_is_never_sent(stack: LocalStack) -> None:
    """Once its click is overdue (a process stalled for minutes), an unsent launch is called
    off; the card going up after that does not send it."""
    stack.fake.fault("chat.postMessage", error="ratelimited", status=429, retry_after=1, times=None)
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: stack.fake.calls_to("chat.postMessage") or None)
    overdue = ANSWER_TIMEOUT + timedelta(seconds=10)
    stack.services.db.execute("update launches set decided_at = ?", [now_iso(overdue)])
    await stack.fake.wait_for(lambda: rows(stack, "launches")[0]["status"] == "failed" or None)
    stack.fake.clear_faults()
    await stack.fake.wait_for(lambda: "This test call did not start" in shown(confirmation) or None)
    assert launches_posted(stack) == [] and rows(stack, "runs") == []
    assert rows(stack, "launches")[0]["sent_at"] is None


async def test_a_launch_whose_sending_cannot_be_recorded_is_not_sent(stack: LocalStack) -> None:
    # The database refuses exactly the write that must come before the money.
    stack.services.db.execute(
        "create trigger refuse_sent before update of sent_at on launches"
        " begin select raise(abort, 'database or disk is full'); end"
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(
        lambda: (
            "I couldn't record that I was sending it to ThunderPhone" in shown(confirmation) or None
        )
    )
    assert (
        "so I didn't start the test call. Nothing was charged; try again in a minute."
    ) in shown(confirmation)
    assert launches_posted(stack) == []
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["sent_at"]) == ("failed", None)
    await stack.fake.wait_for(lambda: cards(stack) == [] or None)  # the card is taken down


async def test_where_the_bot_cannot_post_nothing_is_started(stack: LocalStack) -> None:
    stack.fake.fault(
        "chat.postMessage", error="not_in_channel", status=200, retry_after=None, times=None
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: "I can't post in this channel" in shown(confirmation) or None)
    assert "(not_in_channel)" in shown(confirmation) and "/invite @thunderbot" in shown(
        confirmation
    )
    assert launches_posted(stack) == [] and rows(stack, "runs") == []


async def test_run_again_asks_for_consent_again(live_stack: LocalStack) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    await maria.click(result, ids.RUN_AGAIN)
    again = await stack.fake.wait_for(
        lambda: next(
            (
                e
                for e in stack.fake.ephemerals
                if "Start a test call?" in shown(e) and not e.replaced
            ),
            None,
        )
    )
    assert PROMPT in shown(again)
    assert "*Target*  Support agent (agent 12)" in shown(again), "named as on its card"
    assert again.text.startswith("Start a test call on Support agent (agent 12)?")
    assert "about $" in shown(again), "the estimate now comes from the finished run"
    assert len(launches_posted(stack)) == 1
    await maria.click(again, ids.START_RUN)
    await stack.fake.wait_for(lambda: len(launches_posted(stack)) == 2 or None)
    assert launches_posted(stack)[1].json == launches_posted(stack)[0].json


async def test_app_home_lists_recent_test_calls(live_stack: LocalStack) -> None:
    maria = live_stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    await wait_for_graded_result(live_stack)
    await outbox_idle(live_stack)
    assert await maria.open_home() == 200
    home = await live_stack.fake.wait_for(
        lambda: next((v for v in live_stack.fake.views.values() if v.type == "home"), None)
    )
    text = str(home.view["blocks"])
    assert "Recent test calls" in text and "✅ Passed" in text and f"<#{CHANNEL}>" in text
    [run] = rows(live_stack, "runs")
    [card] = cards(live_stack)
    started = datetime.fromisoformat(run["created_at"])
    day = f"{started:%b} {started.day} {started:%H:%M} UTC"
    assert f"<!date^{int(started.timestamp())}^{{date_short_pretty}} {{time}}|{day}>" in text, (
        "a date, not only a time of day"
    )
    link = f"https://slack.com/archives/{CHANNEL}/p{card.ts.replace('.', '')}"
    assert f"<{link}|run {run['run_id']}>" in text, "the row links to the run's thread"


async def test_requests_not_signed_by_slack_are_refused(stack: LocalStack) -> None:
    maria = stack.user()
    status, _ = await maria.send_raw(
        "command=%2Ftestcall&text=help&user_id=U0MARIA",
        content_type="application/x-www-form-urlencoded",
        signature="v0=" + "0" * 64,
    )
    assert status == 401
    assert rows(stack, "launches") == []


async def test_healthz(stack: LocalStack) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(stack.bot_url + "/healthz") as r:
        assert r.status == 200
        assert await r.json() == {"ok": True}


async def test_an_old_confirmation_does_not_start_a_run(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    # Two hours pass before anyone clicks.
    stack.services.db.execute("update launches set created_at = '2000-01-01T00:00:00.000+00:00'")
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: "more than an hour old" in shown(confirmation) or None)
    assert launches_posted(stack) == [] and cards(stack) == []
    assert [row["status"] for row in rows(stack, "launches")] == ["expired"]


@pytest.mark.parametrize("action_id", ids.ACTIONS)
async def test_every_button_the_bot_shows_has_a_listener(stack: LocalStack, action_id: str) -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Press"},
        "action_id": action_id,
        "value": "0",
    }
    message = stack.fake.add_message(
        CHANNEL, text="old", blocks=[{"type": "actions", "elements": [button]}]
    )
    assert await stack.user().click(message, action_id) == 200  # Bolt answers 404 when unhandled
    assert launches_posted(stack) == []
