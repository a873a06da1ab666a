"""The audit trail: every launch, consent, cancel, flag, bless and settings change is stored
with who, when, where and what it cost."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.sandbox.stack import LocalStack
from tests.helpers import PROMPT, cards, confirm, launches_posted, rows, shown


def events(stack: LocalStack) -> list[dict[str, Any]]:
    return rows(stack, "audit_events")


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
    assert (event["channel_id"], event["detail"], event["cost_cents"]) == ("C0QA", "agent 12", None)
    assert launches_posted(stack) == []


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
