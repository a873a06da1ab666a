"""Spend caps in Slack: `/testcall budget`, the answer to a Start click over a cap, the
approval asked of the admins, and the warnings at 50% and 80%."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot import ids
from bot.blocks.common import actions, button, clock, context, mention, message, money, section
from bot.budgets import Charge, OverBudget, Standing
from bot.privacy import place
from bot.routing import Route, encode
from storage.budgets import Approval, Cap, Period

_PERIOD_NOUN = {"day": "daily", "month": "monthly"}


def period_words(period: Period, start: datetime) -> str:
    """`today (Dec 1, UTC)`, `this month (December, UTC)`."""
    if period == "day":
        return f"today ({start:%b} {start.day}, UTC)"
    return f"this month ({start:%B}, UTC)"


def cap_name(cap: Cap, *, plain: bool = False) -> str:
    """`the workspace's daily cap`, `<#C0QA>'s monthly cap`."""
    where = "the workspace's" if not cap.channel_id else f"<#{cap.channel_id}>'s"
    if plain and cap.channel_id:
        where = f"channel {cap.channel_id}'s"
    return f"{where} {_PERIOD_NOUN[cap.period]} cap"


def _share(spent: int, cap_cents: int) -> str:
    return f"{spent * 100 // cap_cents}%"


def standing_words(standing: Standing) -> str:
    """`$9.40 of $10.00 spent today (Dec 1, UTC), $1.00 of it for runs in flight`."""
    cap = standing.cap
    text = (
        f"{money(standing.spent)} of {money(cap.cap_cents)} spent "
        f"{period_words(cap.period, standing.start)}"
    )
    if standing.held:
        text += f", {money(standing.held)} of it for runs in flight"
    return text


def breach_words(standing: Standing, adding: int, what: str, *, plain: bool = False) -> str:
    """Why a consent is over a cap, with the figures."""
    return (
        f"{what} (about {money(adding)}) would take {cap_name(standing.cap, plain=plain)} past "
        f"its limit: {standing_words(standing)}"
    )


def _admins(admins: Sequence[str]) -> str:
    if not admins:
        return "no admin is set (THUNDERBOT_ADMINS), so nobody can approve it"
    return "admins who can approve it: " + ", ".join(mention(a) for a in admins)


def over_budget(outcome: OverBudget) -> dict[str, Any]:
    """What replaces the confirmation when Start is pressed over a cap."""
    charge, breaches = outcome.charge, outcome.breaches
    reasons = "\n".join(f"• {breach_words(s, charge.total, _cap_what(charge))}." for s in breaches)
    if outcome.approval is None:
        text = (
            f"*Not started: over a spend cap.* Nothing was charged.\n{reasons}\n"
            "The cap is set to refuse launches over it. An admin can raise it with "
            "`/testcall budget set`, or wait for the next period."
        )
        return message(_fallback(text), [section(text)])
    text = (
        f"*Waiting for an admin's approval: over a spend cap.* Nothing was started or charged "
        f"yet.\n{reasons}\n{_asked(outcome)}"
    )
    return message(_fallback(text), [section(text)])


def _asked(outcome: OverBudget) -> str:
    """Where the approval was asked, as the person who pressed Start is told."""
    if not outcome.admins:
        return (
            "No admin is set (THUNDERBOT_ADMINS), so nobody can approve it: an admin must be "
            "named on the bot's host, or the cap raised."
        )
    who = ", ".join(mention(a) for a in outcome.admins)
    sent = "I already asked" if outcome.asked_before else "I've asked"
    if len(outcome.admins) == 1:
        return f"{sent} the admin ({who}) by direct message. It starts once they press Approve."
    return (
        f"{sent} the admins ({who}) by direct message. It starts once one of them presses Approve."
    )


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _cap_what(charge: Charge) -> str:
    return _upper_first(charge.what)


def _fallback(text: str) -> str:
    return text.replace("*", "")


def approval_request(
    approval: Approval, charge: Charge, breaches: Sequence[Standing], admins: Sequence[str]
) -> dict[str, Any]:
    """Sent to each admin: an admin's Approve (or Decline) lets a launch over a cap go on."""
    who = mention(approval.requested_by)
    where = place(approval.channel_id)
    heading = f"*⏸️ {who} pressed Start on {charge.what} in {where}, over a spend cap*"
    reasons = [f"• {breach_words(s, charge.total, _cap_what(charge))}." for s in breaches]
    value = encode(Route(approval_id=approval.id))
    blocks = [
        section("\n".join([heading, *reasons])),
        context(_upper_first(_admins(admins)) + "."),
        actions(
            f"approval_{approval.id}",
            button("Approve", ids.APPROVE_SPEND, value, style="primary"),
            button("Decline", ids.DECLINE_SPEND, value, style="danger"),
        ),
    ]
    text = f"Approval needed: {charge.what} would go over a spend cap (about {money(charge.total)})"
    return message(text, blocks)


def approval_decided(approval: Approval, what: str, why: str | None = None) -> dict[str, Any]:
    """The request once decided: its buttons give way to a line of record (`why` a closed
    request was closed, when there is more to say than the usual)."""
    who = mention(approval.requested_by)
    heading = f"*{who} pressed Start on {what} in {place(approval.channel_id)}, over a spend cap*"
    by = mention(approval.decided_by) if approval.decided_by else "someone"
    at = clock(approval.decided_at)
    if approval.status == "approved":
        line = f"✅ Approved by {by} · {at}"
    elif approval.status == "declined":
        line = f"🚫 Declined by {by} · {at} · nothing was started"
    else:
        line = f"Closed · {at} · {why or 'decided another way, or asked too long ago'}"
    return message(_fallback(f"{heading}: {line}"), [section(heading), context(line)])


def warning(standing: Standing, level: int) -> dict[str, Any]:
    """Posted in the channel once a cap reaches `level`% in its period."""
    cap = standing.cap
    text = (
        f"⚠️ {_upper_first(cap_name(cap))} is {_share(standing.spent, cap.cap_cents)} used "
        f"(past {level}%): {standing_words(standing)}."
    )
    after = "refused" if cap.over == "refuse" else "held for an admin's approval"
    note = f"Launches that would pass {money(cap.cap_cents)} are {after}. `/testcall budget`"
    return message(_fallback(text), [section(text), context(note)])


def _row(label: str, standing: Standing | None, billed: int, held: int, period: str) -> str:
    if standing is None:
        spent = f"{money(billed + held)} {period}, no cap"
        if held:
            spent += f" ({money(held)} in flight)"
        return f"{label}: {spent}"
    cap = standing.cap
    share = _share(standing.spent, cap.cap_cents)
    over = "refused over it" if cap.over == "refuse" else "an admin approves over it"
    text = f"{label}: {money(standing.spent)} of {money(cap.cap_cents)} {period} ({share})"
    if standing.held:
        text += f", {money(standing.held)} in flight"
    return f"{text} · {over}"


Spend = tuple[int, int]  # billed, held


def budget_status(
    channel_id: str,
    rows: Sequence[tuple[Period, bool, Standing | None, Spend]],
    start: dict[Period, datetime],
    admins: Sequence[str],
) -> dict[str, Any]:
    """`/testcall budget`: spend against each cap, for the workspace and this channel."""
    lines = ["*Spend on test calls* (billed, plus the estimates of runs in flight):"]
    for period, in_channel, standing, (billed, held) in rows:
        label = f"<#{channel_id}>" if in_channel else "Workspace"
        lines.append(
            "• " + _row(label, standing, billed, held, period_words(period, start[period])) + "."
        )
    who = ", ".join(mention(a) for a in admins) or "nobody (THUNDERBOT_ADMINS is empty)"
    note = (
        f"Admins: {who}. An admin sets a cap with `/testcall budget set day|month $AMOUNT "
        "[#channel|here] [then wait|refuse]`; warnings come at 50% and 80%."
    )
    return message(_fallback("\n".join(lines)), [section("\n".join(lines)), context(note)])


def cap_saved(cap: Cap, previous: Cap | None) -> dict[str, Any]:
    after = "refused" if cap.over == "refuse" else "held for an admin's approval"
    was = f" (was {money(previous.cap_cents)})" if previous is not None else ""
    text = (
        f"{_upper_first(cap_name(cap))} is now {money(cap.cap_cents)}{was}. Launches that would "
        f"pass it are {after}."
    )
    return message(text, [section(text)])


def cap_cleared(cap: Cap | None, name: str) -> dict[str, Any]:
    if cap is None:
        text = f"There was no {name} to clear."
    else:
        text = f"Cleared {name} (it was {money(cap.cap_cents)}): no cap now."
    return message(text, [section(text)])
