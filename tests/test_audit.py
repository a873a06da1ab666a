"""The audit trail: every launch, consent, cancel, flag, bless and settings change is stored
with who, when, where and what it cost, and `/testcall audit` shows it to the person asking."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from syrupy.assertion import SnapshotAssertion

from bot import ids
from bot.audit import MAX_SHOWN, Trail
from bot.blocks.audit import audit_trail
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import LocalStack
from bot.suites import parse_suite, suite_record
from storage import runs as run_store
from storage import suites as suite_store
from storage.db import now_iso
from storage.models import AuditEvent, RunRecord
from tests.helpers import (
    PROMPT,
    cards,
    confirm,
    launches_posted,
    rows,
    shown,
    start_run,
    wait_for_card,
    wait_for_graded_result,
    wait_for_result,
)

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "refunds.json"

# ---------------------------------------------------------------------------------------------
# In Slack, end to end


def seed_history(stack: LocalStack, cost_cents: int = 16) -> None:
    """An earlier finished run on agent 12, so a consent has an estimate to record."""
    stamp = now_iso(timedelta(days=1))
    run_store.save_run(
        stack.services.db,
        RunRecord(
            run_id=100,
            team_id="T0SANDBOX",
            channel_id="C0QA",
            started_by="U0LI",
            target_type="agent",
            target_id=12,
            scenario_prompt="An earlier call.",
            status="completed",
            cost_cents=cost_cents,
            created_at=stamp,
            completed_at=stamp,
        ),
    )


async def audit(
    stack: LocalStack, text: str = "", channel: str = "C0QA", user: str = "U0MARIA"
) -> Ephemeral:
    reply = await stack.user(user, channel_id=channel).slash(f"audit {text}".strip())
    assert reply.status == 200 and reply.ephemeral is not None, reply.body_text
    return reply.ephemeral


def lines(reply: Ephemeral) -> list[str]:
    """The trail's lines as shown, newest first."""
    sections = [b["text"]["text"] for b in reply.blocks[1:] if b["type"] == "section"]
    return [line for text in sections for line in text.splitlines()]


def events(stack: LocalStack) -> list[dict[str, Any]]:
    return rows(stack, "audit_events")


def text_input(value: str) -> dict[str, object]:
    return {ids.INPUT_VALUE: {"type": "plain_text_input", "value": value}}


async def flag(stack: LocalStack, result: Message, title: str) -> Message:
    assert await stack.user().click(result, ids.FLAG_RUN) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    status, _ = await stack.user().submit_view(
        modal.id,
        {
            ids.FLAG_TITLE: text_input(title),
            ids.FLAG_SEVERITY: {
                ids.INPUT_VALUE: {
                    "type": "static_select",
                    "selected_option": {"value": "critical"},
                }
            },
        },
    )
    assert status == 200
    return await wait_for_result(stack, "Flagged for review")


async def test_a_run_started_and_flagged_shows_consent_launch_and_flag(
    live_stack: LocalStack,
) -> None:
    stack = live_stack
    seed_history(stack, cost_cents=16)
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    await flag(stack, result, "Agent <paused> too long")
    run_id = max(stack.sandbox.runs)
    billed = stack.sandbox.calls[stack.sandbox.runs[run_id]["call_id"]]["billing_total_cents"]

    reply = await audit(stack, str(run_id))

    assert f"*Audit trail of run {run_id}*" in shown(reply)
    shown_lines = lines(reply)
    assert len(shown_lines) == 3, shown_lines
    flagged, started, consented = shown_lines
    assert consented.endswith(" · <@U0MARIA> · consented to a test call · agent 12 · ~$0.16")
    assert started.endswith(f" · <@U0MARIA> · started run {run_id} · agent 12")
    assert flagged.endswith(
        f" · <@U0MARIA> · flagged run {run_id} for review · critical · "
        f"“Agent &lt;paused&gt; too long” · issue 4321 · ${billed / 100:.2f}"
    )
    for line in shown_lines:
        assert line.startswith("<!date^") and "^{date_short_pretty} {time}|" in line
    assert reply.text == f"Audit trail of run {run_id}: 3 events"

    stored = {row["action"]: row for row in events(stack)}
    assert set(stored) == {"consented", "launched", "flagged"}
    launch_id = rows(stack, "launches")[0]["id"]
    assert {k: stored["consented"][k] for k in ("subject_kind", "subject_id", "cost_cents")} == {
        "subject_kind": "launch",
        "subject_id": launch_id,
        "cost_cents": 16,
    }
    assert (stored["launched"]["subject_kind"], stored["launched"]["subject_id"]) == (
        "run",
        str(run_id),
    )
    assert stored["flagged"]["cost_cents"] == billed
    for row in stored.values():
        assert (row["team_id"], row["channel_id"], row["user_id"]) == (
            "T0SANDBOX",
            "C0QA",
            "U0MARIA",
        )
        assert row["at"].endswith("+00:00")


async def test_a_cancel_is_recorded_and_nothing_is_charged(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria, f'run agent:12 "{PROMPT}"')
    await maria.click(confirmation, ids.CANCEL_RUN)
    assert "Cancelled." in shown(confirmation)

    [event] = events(stack)
    assert (event["action"], event["subject_kind"], event["user_id"]) == (
        "cancelled",
        "launch",
        "U0MARIA",
    )
    assert event["cost_cents"] is None
    [line] = lines(await audit(stack))
    assert line.endswith(" · <@U0MARIA> · cancelled a test call · agent 12")
    assert launches_posted(stack) == []


async def test_start_on_an_expired_confirmation_is_recorded(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    stack.services.db.execute("update launches set created_at = ?", [now_iso(timedelta(hours=2))])
    await maria.click(confirmation, ids.START_RUN)

    [event] = events(stack)
    assert (event["action"], event["subject_kind"]) == ("expired", "launch")
    [line] = lines(await audit(stack))
    assert "pressed Start too late on a test call · agent 12" in line


async def test_a_consent_that_cannot_be_recorded_launches_nothing(stack: LocalStack) -> None:
    db = stack.services.db
    db.execute(
        "create trigger no_consent before insert on audit_events when new.action = 'consented'"
        " begin select raise(abort, 'the disk is full'); end"
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    assert await maria.click(confirmation, ids.START_RUN) == 200

    assert "couldn't record your consent" in shown(confirmation)
    assert "Nothing was charged" in shown(confirmation)
    assert launches_posted(stack) == [], "no consent on record, no paid request"
    assert cards(stack) == []
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["decided_by"]) == ("proposed", None)
    assert events(stack) == []


async def test_a_batch_consent_shows_its_estimate(stack: LocalStack) -> None:
    seed_history(stack, cost_cents=16)
    prompts = ["[score: 92] Ask about refunds.", "[score: 88] Ask for hours.", "[fail] Hang up."]
    maria = stack.user()
    confirmation = await confirm(maria, "batch agent:12 " + " ".join(f'"{p}"' for p in prompts))
    await maria.click(confirmation, ids.START_BATCH)
    await stack.fake.wait_for(lambda: rows(stack, "batches")[0]["status"] == "launched" or None)
    batch_id = rows(stack, "batches")[0]["id"]
    assert f"batch {batch_id[:8]}" in shown(await wait_for_card(stack, "3 scenarios"))

    reply = await audit(stack, batch_id[:8])

    assert f"*Audit trail of batch {batch_id[:8]}*" in shown(reply)
    started, consented = lines(reply)
    assert consented.endswith(
        f" · <@U0MARIA> · consented to batch {batch_id[:8]} · 3 runs on agent 12 · ~$0.48"
    )
    assert started.endswith(f" · <@U0MARIA> · started batch {batch_id[:8]} · 3 runs on agent 12")
    consent = next(row for row in events(stack) if row["action"] == "consented")
    assert (consent["subject_kind"], consent["subject_id"], consent["cost_cents"]) == (
        "batch",
        batch_id,
        48,
    )
    # A run of the batch shows the batch's consent too: who agreed to pay for it.
    run_lines = lines(await audit(stack, str(min(stack.sandbox.runs))))
    assert any("consented to batch" in line for line in run_lines)


async def test_a_compare_consent_records_its_estimate_over_every_target(stack: LocalStack) -> None:
    seed_history(stack, cost_cents=16)  # agent 12 has a history, agent 14 none
    maria = stack.user()
    confirmation = await confirm(maria, 'compare "Ask about opening hours." agent:12 agent:14')
    await maria.click(confirmation, ids.START_COMPARE)
    await stack.fake.wait_for(lambda: "Started 2 runs" in shown(confirmation) or None)
    [compare] = rows(stack, "compares")

    shown_lines = lines(await audit(stack, compare["id"][:8]))

    assert len(shown_lines) == 3, shown_lines
    assert shown_lines[-1].endswith(
        f" · <@U0MARIA> · consented to compare {compare['id'][:8]} · one prompt · 2 runs on "
        "agent 12, agent 14 · estimate for 1 of 2 targets · ~$0.16"
    )
    batches = {row["target_id"]: row["id"][:8] for row in rows(stack, "batches")}
    started = sorted(line.split(" · ", 2)[2] for line in shown_lines[:2])
    assert started == sorted(
        [
            f"started batch {batches[12]} · 1 run on agent 12",
            f"started batch {batches[14]} · 1 run on agent 14",
        ]
    )
    # One target's batch shows the compare's consent: who agreed to pay for it.
    assert "consented to compare" in shown(await audit(stack, batches[14]))


async def test_a_suite_deleted_from_slack_is_recorded(stack: LocalStack) -> None:
    maria = stack.user()
    suite_store.save_suite(
        stack.services.db,
        suite_record(
            parse_suite(EXAMPLE.read_text(), name="refunds", filename=None), created_by="x"
        ),
    )
    asked = await maria.slash("suite delete refunds")
    assert asked.ephemeral is not None
    await maria.click(asked.ephemeral, ids.DELETE_SUITE)
    await stack.fake.wait_for(lambda: "Deleted suite" in shown(asked.ephemeral) or None)

    [event] = events(stack)
    assert (event["action"], event["subject_id"], event["user_id"], event["channel_id"]) == (
        "suite_deleted",
        "refunds",
        "U0MARIA",
        "C0QA",
    )
    [line] = lines(await audit(stack))
    assert line.endswith(" · <@U0MARIA> · ⚙️ deleted suite `refunds` · had 5 cases")


async def test_alias_changes_are_recorded_as_settings_changes(stack: LocalStack) -> None:
    maria = stack.user()
    await maria.slash("alias set support agent:12")
    await stack.user("U0LI").slash("alias set support agent:13")
    await maria.slash("alias remove support")

    stored = [
        (e["action"], e["subject_kind"], e["subject_id"], e["user_id"]) for e in events(stack)
    ]
    assert stored == [
        ("alias_set", "alias", "support", "U0MARIA"),
        ("alias_set", "alias", "support", "U0LI"),
        ("alias_removed", "alias", "support", "U0MARIA"),
    ]
    removed, changed, created = lines(await audit(stack))
    assert created.endswith(" · <@U0MARIA> · ⚙️ set alias `support` · agent 12")
    assert changed.endswith(" · <@U0LI> · ⚙️ set alias `support` · agent 13 (was agent 12)")
    assert removed.endswith(" · <@U0MARIA> · ⚙️ removed alias `support` · was agent 13")


async def test_an_id_with_no_record_is_named(stack: LocalStack) -> None:
    reply = await audit(stack, "999999")
    assert "I have no record of run 999999." in shown(reply)
    assert "Usage: `/testcall audit [run-id | batch-id]`" in shown(reply)

    reply = await audit(stack, "deadbeef")
    assert "I have no record of batch deadbeef." in shown(reply)

    reply = await audit(stack, "<b>")
    assert "I couldn't read" in shown(reply) and "&lt;b&gt;" in json.dumps(reply.blocks)


async def test_a_run_of_another_channel_is_shown_only_to_who_may_see_it(
    stack: LocalStack,
) -> None:
    run_id = await start_run(stack)
    stack.fake.leave("C0QA", "U0LI")
    reply = await audit(stack, str(run_id), channel="C0OTHER", user="U0LI")
    assert f"Run {run_id} ran in <#C0QA>, a channel you are not in" in shown(reply)
    assert "consented" not in shown(reply)
    # The person who started it may read its trail from anywhere.
    reply = await audit(stack, str(run_id), channel="C0OTHER")
    assert "consented to a test call" in shown(reply)


async def test_a_channel_without_events_says_so(stack: LocalStack) -> None:
    reply = await audit(stack)
    assert "Nothing is recorded for this channel yet." in shown(reply)


# ---------------------------------------------------------------------------------------------
# The builder


def event(action: str, **changes: Any) -> AuditEvent:
    fields: dict[str, Any] = {
        "id": 1,
        "at": "2026-12-01T14:05:00.000+00:00",
        "team_id": "T1",
        "channel_id": "C0QA",
        "user_id": "U0MARIA",
        "action": action,
        "subject_kind": "run",
        "subject_id": "7110",
        "detail": "agent 12",
    }
    fields.update(changes)
    return AuditEvent(**fields)


TRAIL = Trail(
    "run 7110",
    [
        event(
            "flagged",
            at="2026-12-01T14:09:00.000+00:00",
            detail="warning · “Agent paused too long” · issue 4321",
            cost_cents=16,
        ),
        event("launched", at="2026-12-01T14:05:03.000+00:00"),
        event("consented", subject_kind="launch", subject_id="a" * 32, cost_cents=48),
    ],
    more=False,
)
SETTINGS = Trail(
    "",
    [
        event(
            "suite_imported",
            user_id="cli:maria",
            subject_kind="suite",
            subject_id="refunds",
            detail="5 cases · replacing 4",
        ),
        event(
            "alias_set",
            subject_kind="alias",
            subject_id="support",
            detail="agent 13 (was agent 12)",
        ),
        event(
            "consented",
            subject_kind="batch",
            subject_id="3f9a0c12" + "0" * 24,
            detail="suite refunds · 5 runs on support (agent 12)",
        ),
        event(
            "blessed",
            user_id="U0LI",
            subject_kind="batch",
            subject_id="b" * 32,
            detail="baseline of suite refunds on agent 12",
        ),
    ],
    more=True,
)


@pytest.mark.parametrize(
    ("name", "trail"),
    [("run", TRAIL), ("channel", SETTINGS), ("empty", Trail("batch 3f9a0c12", [], False))],
)
def test_the_trail_is_valid_block_kit_and_pinned(
    name: str, trail: Trail, snapshot: SnapshotAssertion
) -> None:
    payload = audit_trail(trail)
    assert [block.to_dict() for block in Block.parse_all(payload["blocks"])] == payload["blocks"]
    assert payload["text"] and len(payload["blocks"]) <= 50
    assert payload == snapshot


def test_a_trail_line_says_when_who_what_and_cost() -> None:
    payload = audit_trail(TRAIL)
    assert payload["blocks"][1]["text"]["text"].splitlines()[-1] == (
        "<!date^1796133900^{date_short_pretty} {time}|Dec 1 14:05 UTC> · <@U0MARIA> · "
        "consented to a test call · agent 12 · ~$0.48"
    )
    line = audit_trail(SETTINGS)["blocks"][1]["text"]["text"].splitlines()
    assert line[0].endswith(" · cli:maria · ⚙️ imported suite `refunds` · 5 cases · replacing 4")
    assert line[2].endswith(
        " · consented to batch 3f9a0c12 · suite refunds · 5 runs on support (agent 12)"
        " · no estimate yet"
    )
    assert "`thunderbot audit` on the bot's host exports them all" in str(
        audit_trail(SETTINGS)["blocks"][-1]
    )


def test_typed_text_is_escaped_and_a_long_trail_stays_within_slack_limits() -> None:
    hostile = "<!channel> & <https://evil.example|click>"
    many = [
        event(
            "flagged",
            id=n,
            detail=f"critical · “{hostile} {'x' * 150}”",
            subject_id=f"{n}",
            user_id="U0MARIA",
        )
        for n in range(MAX_SHOWN)
    ]
    many.append(event("alias_set", subject_kind="alias", subject_id=hostile, user_id=hostile))
    payload = audit_trail(Trail(hostile, many, more=True))
    text = json.dumps(payload["blocks"])
    assert "<!channel>" not in text and "<https://evil" not in text
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text
    assert all(len(b["text"]["text"]) <= 3000 for b in payload["blocks"] if b["type"] == "section")
    Block.parse_all(payload["blocks"])
