"""Spend caps from Slack, end to end over HTTP: who sets them, what `/testcall budget` shows,
the check made in the transaction that claims a launch, approval by an admin, refusal, and the
warnings at 50% and 80%."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot import ids
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import LocalStack
from tests.helpers import (
    CHANNEL,
    PROMPT,
    confirm,
    finish_run,
    launches_posted,
    outbox_idle,
    rows,
    shown,
)

ADMIN = "U0ADMIN"
BATCHES = "/v1/test-call-batches"


@pytest.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with LocalStack(step_seconds=None, poll_seconds=0.1, thunderbot_admins=ADMIN) as running:
        running.fake.users[ADMIN] = "admin"
        yield running


async def say(stack: LocalStack, text: str, user: str = "U0MARIA") -> str:
    """What the bot answers `user` at once for `/testcall text`."""
    reply = await stack.user(user).slash(text)
    assert reply.status == 200 and reply.ephemeral is not None, reply.body_text
    return shown(reply.ephemeral)


def channel_messages(stack: LocalStack, needle: str) -> list[Message]:
    return [
        m
        for m in stack.fake.messages.get(CHANNEL, [])
        if m.thread_ts is None and needle in shown(m)
    ]


def direct_messages(stack: LocalStack, user: str, needle: str) -> list[Message]:
    """What the bot sent `user` by direct message that says `needle`."""
    return [m for m in stack.fake.messages.get("D" + user[1:], []) if needle in shown(m)]


async def approval_request(stack: LocalStack, admin: str = ADMIN) -> Message:
    """The request for approval as `admin` sees it, in the bot's direct message to them."""
    return await stack.fake.wait_for(
        lambda: (direct_messages(stack, admin, "Approval needed") or [None])[0]
    )


async def answered(stack: LocalStack, item: Ephemeral, needle: str) -> str:
    """What replaced a confirmation, once it says `needle` (a click is answered after its ack,
    and a card may wait its turn in a busy channel)."""
    return await stack.fake.wait_for(lambda: shown(item) if needle in shown(item) else None)


def answers(stack: LocalStack) -> list[str]:
    return [str(c.args.get("text", "")) for c in stack.fake.calls_to("response_url")]


def batch_posts(stack: LocalStack) -> list[Any]:
    return [r for r in stack.sandbox.requests if r.method == "POST" and r.path == BATCHES]


async def test_only_an_admin_sets_a_cap_and_anyone_sees_where_it_stands(stack: LocalStack) -> None:
    refused = await say(stack, "budget set day $20")
    assert "Only an admin sets spend caps" in refused and f"<@{ADMIN}>" in refused
    assert rows(stack, "budget_caps") == []

    saved = await say(stack, "budget set day $20", user=ADMIN)
    assert "The workspace's daily cap is now $20.00" in saved
    saved = await say(stack, "budget set month $150.50 here then refuse", user=ADMIN)
    assert f"<#{CHANNEL}>'s monthly cap is now $150.50" in saved
    assert "refused" in saved

    status = await say(stack, "budget")
    assert "Workspace: $0.00 of $20.00 today" in status
    assert "Workspace: $0.00 this month" in status and "no cap" in status
    assert f"<#{CHANNEL}>: $0.00 of $150.50 this month" in status

    cleared = await say(stack, "budget clear day", user=ADMIN)
    assert "Cleared the workspace's daily cap (it was $20.00)" in cleared
    assert "Workspace: $0.00 today" in await say(stack, "budget")
    trail = [(r["action"], r["subject_id"], r["detail"]) for r in rows(stack, "audit_events")]
    assert ("budget_set", "workspace day", "$20.00, then wait (new)") in trail
    assert ("budget_cleared", "workspace day", "was $20.00") in trail


async def test_nonsense_amounts_are_refused_naming_the_problem(stack: LocalStack) -> None:
    assert "can't be negative" in await say(stack, "budget set day -5", user=ADMIN)
    assert "more than two decimals" in await say(stack, "budget set day 1.999", user=ADMIN)
    assert 'couldn\'t read "ten"' in await say(stack, "budget set day ten", user=ADMIN)
    assert "day or month" in await say(stack, "budget set week $5", user=ADMIN)
    assert rows(stack, "budget_caps") == []


async def test_two_starts_at_the_edge_of_a_cap_start_one_and_hold_the_other(
    stack: LocalStack,
) -> None:
    # No run on agent 12 is billed yet, so each is counted at $1.00: room for one.
    await say(stack, "budget set day $1.50", user=ADMIN)
    maria, li = stack.user("U0MARIA"), stack.user("U0LI")
    first = await confirm(maria, f'run agent:12 "{PROMPT}"')
    second = await confirm(li, 'run agent:12 "Ask about opening hours."')

    await asyncio.gather(maria.click(first, ids.START_RUN), li.click(second, ids.START_RUN))
    await stack.fake.wait_for(lambda: len(answers(stack)) == 2 or None)

    assert len(launches_posted(stack)) == 1, "exactly one create reached ThunderPhone"
    started = [a for a in answers(stack) if a.startswith("Started")]
    waiting = [a for a in answers(stack) if "Waiting for an admin's approval" in a]
    assert len(started) == 1 and len(waiting) == 1, answers(stack)
    assert "$1.00 of $1.50 spent today" in waiting[0]
    request = await approval_request(stack)
    assert f"<@{ADMIN}>" in shown(request)
    statuses = sorted(r["status"] for r in rows(stack, "launches"))
    assert statuses == ["launched", "proposed"]


async def test_an_admin_approves_and_the_launch_starts_exactly_once(stack: LocalStack) -> None:
    await say(stack, "budget set day $0.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    stale = copy.deepcopy(confirmation)
    await maria.click(confirmation, ids.START_RUN)
    text = await answered(stack, confirmation, "Waiting for an admin's approval")
    assert "$0.00 of $0.50 spent today" in text
    request = await approval_request(stack)
    assert launches_posted(stack) == []

    # A second click on the same Start (a double click) finds the request already asked.
    await maria.click(stale, ids.START_RUN)
    await answered(stack, stale, "I already asked the admin")
    await outbox_idle(stack)
    assert len(direct_messages(stack, ADMIN, "Approval needed")) == 1

    await stack.user("U0LI").click(request, ids.APPROVE_SPEND)
    await stack.fake.wait_for(
        lambda: any("Only an admin can approve" in a for a in answers(stack)) or None
    )
    assert launches_posted(stack) == []

    admin = stack.user(ADMIN)
    await asyncio.gather(
        admin.click(request, ids.APPROVE_SPEND), admin.click(request, ids.APPROVE_SPEND)
    )
    await outbox_idle(stack)
    assert len(launches_posted(stack)) == 1, "one create however often Approve is pressed"
    assert launches_posted(stack)[0].json["scenario_prompt"] == PROMPT
    assert any("Already approved by" in a for a in answers(stack))
    assert f"✅ Approved by <@{ADMIN}>" in shown(request)
    assert ids.APPROVE_SPEND not in shown(request), "the buttons give way to a line of record"
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["decided_by"]) == ("launched", "U0MARIA")
    trail = [(r["action"], r["user_id"]) for r in rows(stack, "audit_events")]
    assert ("over_budget", "U0MARIA") in trail and ("approved", ADMIN) in trail
    assert trail.count(("consented", "U0MARIA")) == 1
    assert "$1.00 of $0.50 today" in await say(stack, "budget")


async def test_an_admin_declines_and_nothing_starts(stack: LocalStack) -> None:
    await say(stack, "budget set month $0.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    request = await approval_request(stack)
    stale = copy.deepcopy(request)  # what another open Slack client still shows
    await stack.user(ADMIN).click(request, ids.DECLINE_SPEND)
    await outbox_idle(stack)
    assert f"🚫 Declined by <@{ADMIN}>" in shown(request)
    await stack.user(ADMIN).click(stale, ids.APPROVE_SPEND)
    await stack.fake.wait_for(lambda: any("Already declined" in a for a in answers(stack)) or None)
    assert launches_posted(stack) == []
    assert [r["status"] for r in rows(stack, "launches")] == ["cancelled"]
    assert "declined" in [r["action"] for r in rows(stack, "audit_events")]


async def test_a_cap_set_to_refuse_refuses_with_the_figures(stack: LocalStack) -> None:
    await say(stack, "budget set day $0.50 here then refuse", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    text = await answered(stack, confirmation, "Not started")
    assert "Not started: over a spend cap" in text and "Nothing was charged" in text
    assert "This test call (about $1.00)" in text
    assert "$0.00 of $0.50 spent today" in text
    await outbox_idle(stack)
    assert launches_posted(stack) == []
    assert direct_messages(stack, ADMIN, "Approval needed") == []
    assert [r["status"] for r in rows(stack, "launches")] == ["proposed"]
    assert "over_budget" in [r["action"] for r in rows(stack, "audit_events")]


async def test_within_the_cap_a_launch_starts_and_its_bill_replaces_the_estimate(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $5", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Started")
    status = await say(stack, "budget")
    assert "Workspace: $1.00 of $5.00 today" in status and "(20%), $1.00 in flight" in status
    run_id = max(stack.sandbox.runs)
    await finish_run(stack, run_id)
    [run] = rows(stack, "runs")
    assert run["cost_cents"] is not None
    billed = f"Workspace: ${run['cost_cents'] / 100:,.2f} of $5.00 today"
    status = await say(stack, "budget")
    assert billed in status and ", $1.00 in flight" not in status


async def test_a_bill_above_its_estimate_warns_the_channel_when_it_arrives(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $8", user=ADMIN)
    maria = stack.user("U0MARIA")
    # Thirty minutes at 16 cents a minute: $4.80 billed against the $1.00 reserved at Start.
    confirmation = await confirm(maria, 'run agent:12 "[duration: 1800] Walk me through it."')
    await maria.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Started")
    await outbox_idle(stack)
    assert channel_messages(stack, "⚠️") == [], "$1.00 of $8.00 is under 50%"

    await finish_run(stack, max(stack.sandbox.runs))
    [run] = rows(stack, "runs")
    assert run["cost_cents"] == 480
    warned = await stack.fake.wait_for(lambda: channel_messages(stack, "⚠️") or None)
    assert len(warned) == 1
    assert "The workspace's daily cap is 60% used (past 50%)" in shown(warned[0])
    assert "$4.80 of $8.00 spent today" in shown(warned[0])


async def test_a_refused_create_releases_its_reservation(stack: LocalStack) -> None:
    await say(stack, "budget set day $1.50", user=ADMIN)
    stack.sandbox.fail_next("POST", "/v1/test-calls", 402, {"detail": "Insufficient balance"})
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Couldn't start the test call")
    assert "$0.00 of $1.50 today" in await say(stack, "budget")
    again = await confirm(maria)
    await maria.click(again, ids.START_RUN)
    await answered(stack, again, "Started")  # the released room is there for the next launch


async def test_batches_count_in_full_at_consent_and_warnings_come_once_at_50_and_80(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $4", user=ADMIN)
    maria = stack.user("U0MARIA")
    first = await confirm(maria, 'batch agent:12 --stagger 0 "One." "Two."')
    await maria.click(first, ids.START_BATCH)
    await answered(stack, first, "Started 2 runs")
    warned = await stack.fake.wait_for(lambda: channel_messages(stack, "⚠️") or None)
    assert len(warned) == 1
    assert "The workspace's daily cap is 50% used (past 50%)" in shown(warned[0])
    assert "$2.00 of $4.00 spent today" in shown(warned[0])

    second = await confirm(maria, 'batch agent:12 --stagger 0 "Three." "Four."')
    await maria.click(second, ids.START_BATCH)
    await answered(stack, second, "Started 2 runs")
    await stack.fake.wait_for(lambda: len(channel_messages(stack, "⚠️")) == 2 or None)
    latest = channel_messages(stack, "⚠️")[-1]
    assert "100% used (past 80%)" in shown(latest) and "$4.00 of $4.00" in shown(latest)

    # Over the cap now: the whole batch waits, however small a part would fit.
    third = await confirm(maria, 'batch agent:12 --stagger 0 "Five."')
    await maria.click(third, ids.START_BATCH)
    await answered(stack, third, "Waiting for an admin's approval")
    await approval_request(stack)
    await outbox_idle(stack)
    assert len(batch_posts(stack)) == 2
    assert len(channel_messages(stack, "⚠️")) == 2, "each level is said once per period"


async def test_a_channel_cap_holds_only_its_channel(stack: LocalStack) -> None:
    stack.fake.channels["C0OTHER"] = "voice-dev"
    await say(stack, "budget set day $0.50 here", user=ADMIN)
    elsewhere = stack.user("U0MARIA", channel_id="C0OTHER")
    confirmation = await confirm(elsewhere)
    await elsewhere.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Started")
    here = stack.user("U0MARIA")
    held = await confirm(here)
    await here.click(held, ids.START_RUN)
    await answered(stack, held, "Waiting for an admin's approval")
    assert f"<#{CHANNEL}>'s daily cap" in shown(held)


async def test_a_compare_counts_every_target_at_consent_and_starts_once_approved(
    stack: LocalStack,
) -> None:
    # Two targets, one run each, $1.00 each: $2.00 does not fit in $1.50, though one would.
    await say(stack, "budget set day $1.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria, 'compare "Ask about opening hours." agent:12 agent:14')
    await maria.click(confirmation, ids.START_COMPARE)
    text = await answered(stack, confirmation, "Waiting for an admin's approval")
    assert "These 2 runs (about $2.00)" in text
    request = await approval_request(stack)
    assert batch_posts(stack) == []

    await stack.user(ADMIN).click(request, ids.APPROVE_SPEND)
    await stack.fake.wait_for(lambda: len(batch_posts(stack)) == 2 or None)
    await outbox_idle(stack)
    assert [post.json["target_id"] for post in batch_posts(stack)] == [12, 14]
    [compare] = rows(stack, "compares")
    assert (compare["status"], compare["decided_by"]) == ("launched", "U0MARIA")
    assert "$2.00 of $1.50 today" in await say(stack, "budget")


async def test_a_smoke_test_counts_in_full_and_is_refused_over_a_refusing_cap(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set month $4.99 then refuse", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria, "smoke agent:12")
    await maria.click(confirmation, ids.START_BATCH)
    text = await answered(stack, confirmation, "Not started: over a spend cap")
    assert "These 5 runs (about $5.00)" in text and "$0.00 of $4.99 spent this month" in text
    await outbox_idle(stack)
    assert batch_posts(stack) == []
    assert [r["status"] for r in rows(stack, "batches")] == ["proposed"]


async def test_a_launch_started_another_way_closes_its_request_and_approve_starts_nothing(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $0.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    stale = copy.deepcopy(confirmation)
    await maria.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Waiting for an admin's approval")
    request = await approval_request(stack)
    old_request = copy.deepcopy(request)  # what another open Slack client still shows

    await say(stack, "budget set day $5", user=ADMIN)
    await maria.click(stale, ids.START_RUN)
    await answered(stack, stale, "Started")
    await outbox_idle(stack)
    assert "Closed" in shown(request), "the request gives way once the launch is decided"
    assert "<@U0MARIA> pressed Start again once the caps allowed it" in shown(request)
    assert ids.APPROVE_SPEND not in shown(request)
    await stack.user(ADMIN).click(old_request, ids.APPROVE_SPEND)
    await stack.fake.wait_for(
        lambda: any("This request was closed" in a for a in answers(stack)) or None
    )
    await outbox_idle(stack)
    assert len(launches_posted(stack)) == 1


async def test_a_held_batch_cancelled_by_its_requester_closes_the_request(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $0.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria, 'batch agent:12 --stagger 0 "One." "Two."')
    stale = copy.deepcopy(confirmation)
    await maria.click(confirmation, ids.START_BATCH)
    await answered(stack, confirmation, "Waiting for an admin's approval")
    request = await approval_request(stack)
    assert ids.DECLINE_SPEND in shown(request)

    await maria.click(stale, ids.CANCEL_BATCH)
    await answered(stack, stale, "Cancelled")
    await outbox_idle(stack)
    assert "Closed" in shown(request) and ids.DECLINE_SPEND not in shown(request)
    assert "cancelled by <@U0MARIA>, so nothing was started" in shown(request)
    assert [r["status"] for r in rows(stack, "budget_approvals")] == ["void"]
    assert batch_posts(stack) == []


async def test_approval_is_asked_of_every_admin_by_direct_message_from_a_dm() -> None:
    # Maria works with the bot in her direct message with it: no admin is in there to approve.
    async with LocalStack(
        step_seconds=None, poll_seconds=0.1, thunderbot_admins=f"{ADMIN},U0ADA"
    ) as two:
        two.fake.users.update({ADMIN: "admin", "U0ADA": "ada"})
        two.fake.add_channel("D0MARIA", "maria", members=["U0MARIA"], bot_member=True)
        await say(two, "budget set day $0.50", user=ADMIN)
        maria = two.user("U0MARIA", channel_id="D0MARIA")
        confirmation = await confirm(maria)
        await maria.click(confirmation, ids.START_RUN)
        text = await answered(two, confirmation, "Waiting for an admin's approval")
        assert "I've asked the admins (<@U0ADA>, <@U0ADMIN>) by direct message" in text
        assert "<#D0MARIA>" not in text

        ada_copy = await approval_request(two, "U0ADA")
        admin_copy = await approval_request(two, ADMIN)
        await outbox_idle(two)
        assert "in a direct message, over a spend cap" in shown(ada_copy)
        assert [m for m in two.fake.messages["D0MARIA"] if "Approval needed" in shown(m)] == []
        stale = copy.deepcopy(admin_copy)

        await two.user("U0ADA").click(ada_copy, ids.APPROVE_SPEND)
        await two.fake.wait_for(lambda: len(launches_posted(two)) == 1 or None)
        await outbox_idle(two)
        for seen in (ada_copy, admin_copy):
            assert "✅ Approved by <@U0ADA>" in shown(seen)
            assert ids.APPROVE_SPEND not in shown(seen), "every copy gives way"
        await two.user(ADMIN).click(stale, ids.APPROVE_SPEND)
        await two.fake.wait_for(
            lambda: any("Already approved by <@U0ADA>" in a for a in answers(two)) or None
        )
        await outbox_idle(two)
        assert len(launches_posted(two)) == 1


async def test_approve_checks_the_requester_may_still_start(stack: LocalStack) -> None:
    await say(stack, "budget set day $0.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await answered(stack, confirmation, "Waiting for an admin's approval")
    request = await approval_request(stack)

    assert "<@U0LI>" in await say(stack, "admin start <@U0LI>", user=ADMIN)
    await stack.user(ADMIN).click(request, ids.APPROVE_SPEND)
    await stack.fake.wait_for(lambda: any("I didn't start it" in a for a in answers(stack)) or None)
    await outbox_idle(stack)
    assert launches_posted(stack) == []
    assert "may no longer start test calls in <#C0QA>" in shown(request)
    assert ids.APPROVE_SPEND not in shown(request)
    assert [r["status"] for r in rows(stack, "budget_approvals")] == ["void"]
    assert [r["status"] for r in rows(stack, "launches")] == ["proposed"]
    told = [e for e in stack.fake.ephemerals if e.user == "U0MARIA" and "pressed Approve" in e.text]
    assert told and "you may no longer start test calls in <#C0QA>" in told[0].text


async def test_a_held_compare_whose_confirmation_expires_closes_the_request(
    stack: LocalStack,
) -> None:
    await say(stack, "budget set day $1.50", user=ADMIN)
    maria = stack.user("U0MARIA")
    confirmation = await confirm(maria, 'compare "Ask about opening hours." agent:12 agent:14')
    stale = copy.deepcopy(confirmation)
    await maria.click(confirmation, ids.START_COMPARE)
    await answered(stack, confirmation, "Waiting for an admin's approval")
    request = await approval_request(stack)

    # Two hours pass before Maria presses Start again.
    stack.services.db.execute("update compares set created_at = '2000-01-01T00:00:00.000+00:00'")
    await maria.click(stale, ids.START_COMPARE)
    await stack.fake.wait_for(lambda: "old" in shown(stale) or None)
    await outbox_idle(stack)
    assert "its confirmation expired, so nothing was started" in shown(request)
    assert ids.APPROVE_SPEND not in shown(request)
    assert [r["status"] for r in rows(stack, "compares")] == ["expired"]
    assert batch_posts(stack) == []
