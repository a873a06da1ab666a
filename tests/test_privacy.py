"""Private stays private: a run's prompt, transcript, result and flags are shown only to the
person who started it and the people in its channel; when Slack can't say who that is, only
to the person who started it, with the reason."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot import ids
from bot.sandbox.slack import Ephemeral, Message, View
from bot.sandbox.slack_user import SlackUser
from bot.sandbox.stack import LocalStack
from storage import runs as run_store
from storage.db import now_iso
from storage.models import RunRecord
from tests.helpers import (
    CHANNEL,
    PROMPT,
    confirm,
    rows,
    shown,
    slack_calls,
    wait_for_graded_result,
)
from tests.test_batches import import_suite

SAM = "U0SAM"  # in the workspace, not in #voice-qa


@pytest.fixture
async def finished(live_stack: LocalStack) -> AsyncIterator[tuple[LocalStack, Message]]:
    """Maria's run in #voice-qa, graded; Li is in the channel, Sam is not."""
    stack = live_stack
    stack.fake.users[SAM] = "sam"
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    yield stack, await wait_for_graded_result(stack)


async def home_of(stack: LocalStack, user_id: str) -> str:
    """The App Home `user_id` sees, once (re)published, as one searchable string."""
    before = {view.id: len(view.history) for view in stack.fake.views.values()}
    assert await stack.user(user_id).open_home() == 200

    def published() -> View | None:
        return next(
            (
                view
                for view in stack.fake.views.values()
                if view.type == "home"
                and view.user == user_id
                and len(view.history) > before.get(view.id, 0)
            ),
            None,
        )

    view = await stack.fake.wait_for(published)
    return json.dumps(view.view["blocks"], ensure_ascii=False)


def ephemerals_of(stack: LocalStack, user_id: str) -> list[Ephemeral]:
    return [e for e in stack.fake.ephemerals if e.user == user_id and not e.deleted]


async def told(stack: LocalStack, user_id: str, needle: str) -> Ephemeral:
    return await stack.fake.wait_for(
        lambda: next((e for e in ephemerals_of(stack, user_id) if needle in shown(e)), None)
    )


def seed_run(
    stack: LocalStack,
    run_id: int,
    channel: str,
    started_by: str,
    prompt: str,
    *,
    minutes_ago: float = 0,
) -> None:
    run_store.save_run(
        stack.services.db,
        RunRecord(
            run_id=run_id,
            team_id=stack.fake.team_id,
            channel_id=channel,
            started_by=started_by,
            target_type="agent",
            target_id=12,
            scenario_prompt=prompt,
            status="completed",
            created_at=now_iso(timedelta(minutes=minutes_ago)),
        ),
    )


def seed_private_runs(stack: LocalStack, count: int, *, member: str) -> None:
    """`count` runs in #secret-qa, where only `member` is, newer than the runs seeded before
    them (an hour ago or earlier)."""
    stack.fake.add_channel("C0PRIV", "secret-qa", private=True, bot_member=True, members=[member])
    for number in range(count):
        seed_run(
            stack, 9000 + number, "C0PRIV", member, f"Secret scenario {number}.", minutes_ago=59
        )


# ---------------------------------------------------------------------------------------------
# App Home


async def test_app_home_lists_only_runs_in_the_viewers_channels(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, _ = finished
    assert "refund policy" in await home_of(stack, "U0MARIA"), "her own run"
    assert "refund policy" in await home_of(stack, "U0LI"), "Li is in #voice-qa"
    sam = await home_of(stack, SAM)
    assert "refund policy" not in sam and "None yet" in sam, "Sam is not"
    asked = [call.args.get("channel") for call in stack.fake.calls_to("conversations.members")]
    assert set(asked) == {CHANNEL}


async def test_app_home_lists_the_viewers_own_run_behind_a_hundred_newer_hidden_ones(
    stack: LocalStack,
) -> None:
    stack.fake.users["U0ZED"] = "zed"
    seed_run(stack, 601, CHANNEL, "U0MARIA", "Maria's own older scenario.", minutes_ago=60)
    seed_private_runs(stack, 100, member="U0ZED")
    maria = await home_of(stack, "U0MARIA")
    assert "Maria's own older scenario" in maria
    assert "None yet" not in maria and "Secret scenario" not in maria


async def test_app_home_looks_past_a_page_of_runs_hidden_from_the_viewer(
    stack: LocalStack,
) -> None:
    stack.fake.users["U0ZED"] = "zed"
    stack.fake.users[SAM] = "sam"
    seed_run(stack, 602, CHANNEL, SAM, "Sam's scenario in voice-qa.", minutes_ago=60)
    seed_private_runs(stack, 150, member="U0ZED")
    li = await home_of(stack, "U0LI")
    assert "Sam's scenario in voice-qa" in li, "Li is in #voice-qa"
    assert "Secret scenario" not in li


async def test_app_home_says_truthfully_when_it_stopped_looking(stack: LocalStack) -> None:
    stack.fake.users["U0ZED"] = "zed"
    stack.fake.users[SAM] = "sam"
    seed_run(stack, 603, CHANNEL, "U0LI", "Li's scenario in voice-qa.", minutes_ago=60)
    seed_private_runs(stack, 300, member="U0ZED")
    sam = await home_of(stack, SAM)
    assert "None yet" not in sam
    assert "None you can see among the latest 300 test calls" in sam
    assert "runs in channels you are not in are not shown" in sam
    assert "Secret scenario" not in sam and "Li's scenario" not in sam

    seed_run(stack, 604, "C0QA", SAM, "Sam's own old scenario.", minutes_ago=120)
    sam = await home_of(stack, SAM)
    assert "Sam's own old scenario" in sam
    assert "older ones may be missing here" in sam


async def test_slack_is_asked_once_a_minute_per_channel(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, _ = finished
    await home_of(stack, "U0LI")
    await home_of(stack, "U0LI")
    await home_of(stack, SAM)
    assert slack_calls(stack, "conversations.members") == 1


async def test_when_slack_cannot_say_only_the_starter_sees_a_run_and_is_told_why(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, _ = finished
    stack.fake.fault(
        "conversations.members", error="missing_scope", status=200, retry_after=None, times=0
    )
    li = await home_of(stack, "U0LI")
    assert "refund policy" not in li
    assert "Only your own runs are shown from <#C0QA> (missing_scope)" in li
    maria = await home_of(stack, "U0MARIA")
    assert "refund policy" in maria, "the person who started it still sees it"
    assert "refund policy" not in await home_of(stack, "U0LI")
    assert slack_calls(stack, "conversations.members") == 1, "a failure is remembered briefly"


async def test_direct_message_runs_are_shown_to_their_participants_only(
    stack: LocalStack,
) -> None:
    stack.fake.users[SAM] = "sam"
    stack.fake.add_channel(
        "D0PAIR", "maria-li", private=True, bot_member=True, members=["U0MARIA", "U0LI"]
    )
    seed_run(stack, 501, "D0PAIR", "U0MARIA", "A scenario typed in a direct message.")
    assert "typed in a direct message" in await home_of(stack, "U0LI")
    assert "typed in a direct message" not in await home_of(stack, SAM)

    # A direct message the bot is not in: Slack won't say who is in it, so only its starter.
    stack.fake.add_channel("D0HIDDEN", "maria-sam", private=True, members=["U0MARIA", SAM])
    seed_run(stack, 502, "D0HIDDEN", "U0MARIA", "Another private scenario.")
    sam = await home_of(stack, SAM)
    assert "Another private scenario" not in sam
    assert "Only your own runs are shown from a direct message (channel_not_found)" in sam
    assert "Another private scenario" in await home_of(stack, "U0MARIA")


# ---------------------------------------------------------------------------------------------
# Transcript and Flag


async def test_transcript_opens_only_for_people_in_the_runs_channel(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    assert await stack.user(SAM).click(result, ids.SHOW_TRANSCRIPT) == 200
    refusal = await told(stack, SAM, "a channel you are not in")
    assert "only its members can see its prompt, transcript and result" in shown(refusal)
    assert PROMPT not in shown(refusal)
    assert stack.fake.open_stack(SAM) == [], "no transcript was opened"
    assert slack_calls(stack, "views.open") == 0

    assert await stack.user("U0LI").click(result, ids.SHOW_TRANSCRIPT) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0LI")), None))
    assert modal.callback_id == ids.TRANSCRIPT_MODAL


async def test_flag_opens_only_for_people_in_the_runs_channel(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    assert await stack.user(SAM).click(result, ids.FLAG_RUN) == 200
    await told(stack, SAM, "a channel you are not in")
    assert stack.fake.open_stack(SAM) == []

    assert await stack.user("U0LI").click(result, ids.FLAG_RUN) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0LI")), None))
    assert modal.callback_id == ids.FLAG_MODAL


async def test_transcript_fails_closed_with_the_reason(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    stack.fake.fault("conversations.members", error="missing_scope", status=200, retry_after=None)
    assert await stack.user("U0LI").click(result, ids.SHOW_TRANSCRIPT) == 200
    refusal = await told(stack, "U0LI", "couldn't ask Slack who is in <#C0QA> (missing_scope)")
    assert "only the person who started run" in shown(refusal)
    assert stack.fake.open_stack("U0LI") == []

    # The person who started it is not asked about: it is hers.
    assert await stack.user().click(result, ids.SHOW_TRANSCRIPT) == 200
    await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))


async def test_run_again_is_refused_to_someone_who_cannot_see_the_run(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    assert await stack.user(SAM).click(result, ids.RUN_AGAIN) == 200
    await told(stack, SAM, "a channel you are not in")
    assert len(rows(stack, "launches")) == 1, "no second proposal stored"


# ---------------------------------------------------------------------------------------------
# Audit


async def test_audit_of_a_run_follows_channel_membership(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, _ = finished
    run_id = max(stack.sandbox.runs)
    reply = await stack.user("U0LI", channel_id="C0ELSE").slash(f"audit {run_id}")
    assert reply.ephemeral is not None
    assert f"Audit trail of run {run_id}" in shown(reply.ephemeral), "Li is in #voice-qa"

    reply = await stack.user(SAM, channel_id="C0ELSE").slash(f"audit {run_id}")
    assert reply.ephemeral is not None
    assert f"Run {run_id} ran in <#C0QA>, a channel you are not in" in shown(reply.ephemeral)
    assert "consented" not in shown(reply.ephemeral)


async def test_audit_of_a_direct_message_run_fails_closed(stack: LocalStack) -> None:
    stack.fake.add_channel("D0HIDDEN", "maria-li", private=True, members=["U0MARIA", "U0LI"])
    seed_run(stack, 503, "D0HIDDEN", "U0MARIA", "Private.")
    reply = await stack.user("U0LI").slash("audit 503")
    assert reply.ephemeral is not None
    assert (
        "I couldn't ask Slack who is in a direct message (channel_not_found), so only the "
        "person who started run 503 can see it"
    ) in shown(reply.ephemeral)
    reply = await stack.user("U0MARIA").slash("audit 503")
    assert reply.ephemeral is not None
    assert "Audit trail of run 503" in shown(reply.ephemeral)


# ---------------------------------------------------------------------------------------------
# A suite run compared with a baseline of another channel


async def test_a_baseline_from_another_channel_is_compared_without_quoting_it(
    live_stack: LocalStack,
) -> None:
    stack = live_stack
    stack.fake.add_channel("C0PRIV", "secret-qa", private=True, bot_member=True, members=["U0LI"])
    case = {"name": "refunds", "expected_outcome": "success"}
    secret = "Your account code is 4411, I have refunded it."
    import_suite(
        stack,
        "refunds",
        [{**case, "scenario_prompt": f"[score: 91] [say: {secret}] Ask about a refund."}],
        target="agent:12",
    )
    li = stack.user("U0LI", channel_id="C0PRIV")
    baseline = await suite_card(stack, li, "C0PRIV")
    await li.click(baseline, ids.BLESS_BATCH)
    await stack.fake.wait_for(lambda: rows(stack, "suite_baselines") or None)

    import_suite(
        stack,
        "refunds",
        [{**case, "scenario_prompt": "[score: 40] [say: I can't help.] Ask about a refund."}],
        target="agent:12",
    )
    card = await suite_card(stack, stack.user(), CHANNEL)
    summary = await stack.fake.wait_for(
        lambda: next(
            (m for m in stack.fake.thread(CHANNEL, card.ts) if "Compared with" in shown(m)),
            None,
        ),
        timeout=30,
    )
    text = shown(summary)
    assert "refunds" in text and "passed → failed" in text and "diverged at turn" in text
    assert "The baseline ran in another channel, so its turns are not quoted here." in text
    assert "4411" not in text, "the other channel's transcript stays there"


async def suite_card(stack: LocalStack, user: SlackUser, channel: str) -> Message:
    """Run suite `refunds` from `channel` and wait for its finished card there."""
    reply = await user.slash("suite run refunds")
    assert reply.ephemeral is not None, reply.body_text
    await user.click(reply.ephemeral, ids.START_BATCH)

    def finished() -> Message | None:
        found = [m for m in stack.fake.messages.get(channel, []) if m.thread_ts is None]
        return found[0] if found and "case passed" in shown(found[0]) else None

    return await stack.fake.wait_for(finished, timeout=30)


async def test_a_suite_trend_charts_only_the_runs_of_its_channel(live_stack: LocalStack) -> None:
    stack = live_stack
    stack.fake.add_channel("C0PRIV", "secret-qa", private=True, bot_member=True, members=["U0LI"])
    import_suite(
        stack,
        "refunds",
        [{"name": "refunds", "scenario_prompt": "[score: 91] Ask.", "expected_outcome": "success"}],
        target="agent:12",
    )
    li = stack.user("U0LI", channel_id="C0PRIV")
    await suite_card(stack, li, "C0PRIV")

    asked = await stack.user().slash("suite trend refunds")
    assert asked.ephemeral is not None and "Drawing the trend" in shown(asked.ephemeral)
    note = await told(stack, "U0MARIA", "no finished runs")
    assert "Suite `refunds` has no finished runs yet in this channel" in shown(note)
    assert [m for m in stack.fake.messages[CHANNEL] if m.files] == []

    await li.slash("suite trend refunds")
    charted = await stack.fake.wait_for(
        lambda: [m for m in stack.fake.messages["C0PRIV"] if m.files] or None
    )
    assert "Trend of suite `refunds`" in charted[0].text


async def test_a_big_channels_members_are_read_page_by_page(stack: LocalStack) -> None:
    stack.fake.users["U0ZED"] = "zed"
    crowd = [f"U0P{number:05d}" for number in range(1500)]
    stack.fake.add_channel("C0BIG", "everyone-big", members=[*crowd, "U0ZED"])
    seed_run(stack, 504, "C0BIG", "U0MARIA", "A scenario in a big channel.")
    assert "in a big channel" in await home_of(stack, "U0ZED"), "on the second page"
    assert slack_calls(stack, "conversations.members") == 2
