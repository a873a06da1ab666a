"""Ephemeral replies to the person who typed the command: confirmation, refusals, help."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.blocks.budgets import over_budget
from bot.blocks.common import (
    actions,
    button,
    clock,
    context,
    direction_text,
    escape,
    last_runs,
    linked,
    mention,
    message,
    money,
    plural,
    run_ref,
    section,
    target_text,
    thread_link,
    trim,
    unlinked,
)
from bot.budgets import OverBudget
from bot.commands import USAGE
from bot.outcomes import (
    AlreadyDecided,
    Cancelled,
    CannotPost,
    ConfirmationExpired,
    LaunchOutcome,
    NotRecorded,
    Refused,
    Started,
    Unclear,
)
from bot.routing import Route, encode
from storage.models import Alias, Launch

PROMPT_PREVIEW_CHARS = 2500


def cost_note(recent_costs: list[int], target_type: str) -> str:
    note = "billed at 2× the normal rate"
    if recent_costs:
        average = sum(recent_costs) / len(recent_costs)
        noun = "agent" if target_type == "agent" else "number"
        note += (
            f" · about {money(average)} (average of {last_runs(len(recent_costs))} on this {noun})"
        )
    else:
        note += " · no estimate yet: this target has no finished runs"
    return note


def with_tier(target: str, tier: str) -> str:
    """A confirmation's target and the agent's product tier when known:
    `Support agent (agent 12), alias support · spark`."""
    return f"{target} · {escape(trim(tier, 40))}" if tier.strip() else target


def unchecked_note(target_type: str, target_id: int, reason: str) -> dict[str, Any]:
    """Under a confirmation whose target ThunderPhone could not be asked about."""
    return context(
        f"⚠️ I couldn't check {target_text(target_type, target_id)} with ThunderPhone "
        f"({escape(reason)}). Start only if you are sure it is the right target."
    )


def confirmation(
    launch: Launch,
    recent_costs: list[int],
    *,
    name: str = "",
    tier: str = "",
    unchecked: str = "",
) -> dict[str, Any]:
    """Ask before money is spent; only the Start button gives consent to charge. `name` and
    `tier` are the agent's, as ThunderPhone gives them, when known; `unchecked` says why the
    target could not be looked up."""
    target = target_text(launch.target_type, launch.target_id, name, alias=launch.target_label)
    prompt = launch.scenario_prompt
    shown = escape(trim(prompt, PROMPT_PREVIEW_CHARS))
    lines = [
        f"*Target*  {with_tier(target, tier)}",
        f"*Direction*  {direction_text(launch.direction, launch.mode)}"
        + (
            " (the test bot places the call)"
            if launch.direction == "outbound"
            else " (the agent calls the test bot)"
        ),
    ]
    if launch.caller_number:
        lines.append(f"*Caller id*  {escape(launch.caller_number)}")
    lines.append(f"*Cost*  {cost_note(recent_costs, launch.target_type)}")
    blocks = [section("*Start a test call?*\n" + "\n".join(lines))]
    if unchecked:
        blocks.append(unchecked_note(launch.target_type, launch.target_id, unchecked))
    blocks.append(section(f"*Scenario*\n“{shown}”"))
    if len(prompt) > PROMPT_PREVIEW_CHARS:
        blocks.append(context(f"Shortened here; all {len(prompt):,} characters are sent."))
    route = encode(Route(launch_id=launch.id))
    blocks.append(
        actions(
            f"launch:{launch.id}",
            button("Start test call", ids.START_RUN, route, style="primary"),
            button("Cancel", ids.CANCEL_RUN, route),
        )
    )
    return message(f"Start a test call on {target}? It is billed at 2× the normal rate.", blocks)


def decided(text: str) -> dict[str, Any]:
    """What replaces the confirmation once a button has done its job."""
    return message(unlinked(text).replace("*", ""), [section(text)])


def _card_link(channel: str, card_ts: str | None) -> str | None:
    return thread_link(channel, card_ts) if channel and card_ts else None


def started(launch: Launch, run_id: int, card_ts: str | None = None) -> dict[str, Any]:
    """`card_ts`: the run's card, which the run id then links to."""
    who = mention(launch.decided_by or launch.user_id)
    run = run_ref(run_id, _card_link(launch.channel_id, card_ts))
    return decided(f"Started {run} — see the card below. ({who} at {clock(launch.decided_at)})")


def decided_earlier(
    what: str, *, status: str, by: str | None, at: str | None, error: str | None
) -> dict[str, Any]:
    """A confirmation someone else (or an earlier click) already decided; `what` names it."""
    who = mention(by) if by else "someone"
    if status == "cancelled":
        return decided(f"Cancelled by {who} at {clock(at)}.")
    if status == "expired":
        return decided("This confirmation has expired. Run the command again.")
    if status == "failed":
        reason = escape(error or "see the card")
        return decided(f"This {what} did not start ({reason}). Run the command again.")
    return decided(f"Already started by {who} at {clock(at)}.")


def already_decided(launch: Launch, card_ts: str | None = None) -> dict[str, Any]:
    """`card_ts`: the card of the run it started, which the run id then links to."""
    if launch.status == "launched":
        who = mention(launch.decided_by) if launch.decided_by else "someone"
        run = run_ref(launch.run_id, _card_link(launch.channel_id, card_ts))
        return decided(f"Already started by {who} at {clock(launch.decided_at)} ({run}).")
    if launch.status in ("launching", "unknown"):
        who = mention(launch.decided_by) if launch.decided_by else "someone"
        return decided(f"Already being started by {who} at {clock(launch.decided_at)}.")
    return decided_earlier(
        "test call",
        status=launch.status,
        by=launch.decided_by,
        at=launch.decided_at,
        error=launch.error,
    )


def started_runs(
    by: str,
    started: int,
    total: int,
    problem: str | None,
    *,
    channel: str = "",
    card_ts: str | None = None,
) -> dict[str, Any]:
    """What replaces a batch's or a compare's confirmation once runs started; `card_ts`, its
    card in `channel`, which the words "the card" then link to."""
    count = plural(total, "run") if started == total else f"{started} of {plural(total, 'run')}"
    card = linked("the card", _card_link(channel, card_ts))
    text = f"Started {count} — see {card} below. ({mention(by)})"
    if problem:
        text += f"\nThe rest did not start: {escape(problem)}"
    return decided(text)


def not_started(outcome: object, what: str) -> dict[str, Any] | None:
    """The answers every kind of launch shares when nothing (new) started; `what` names it
    ("the test call", "the batch"…). None for any other outcome."""
    match outcome:
        case Cancelled():
            return decided("Cancelled. Nothing was started or charged.")
        case ConfirmationExpired():
            return decided(
                "This confirmation is more than an hour old, so I didn't start anything. "
                "Run the command again to get a fresh one."
            )
        case CannotPost(_, False):
            return decided(
                "Slack hasn't taken my card in this channel yet (it is busy, or asking me to "
                f"slow down), so I didn't start {what}. Try again in a minute."
            )
        case CannotPost(problem):
            return decided(
                f"I can't post in this channel ({escape(problem)}), so I didn't start {what}. "
                "Invite me with `/invite @thunderbot`, or run it in a channel I'm in."
            )
        case Refused(reason):
            return decided(f"Couldn't start {what}. {escape(reason)}")
        case NotRecorded(_, record):
            return decided(
                f"I couldn't record {record}, so I didn't start {what}. "
                "Nothing was charged; try again in a minute."
            )
        case OverBudget():
            return over_budget(outcome)
        case Unclear(reason):
            return decided(
                f"{escape(reason)}, so I can't tell yet whether {what} started. I'm checking: "
                "the card in the channel will show it if it did. Please don't start it again "
                "until then."
            )
    return None


def launch_outcome(outcome: LaunchOutcome) -> dict[str, Any]:
    """What replaces the confirmation after Start or Cancel."""
    match outcome:
        case Started(launch, run_id, card_ts):
            return started(launch, run_id, card_ts)
        case AlreadyDecided(None):
            return decided("This confirmation has expired. Run the command again.")
        case AlreadyDecided(launch, card_ts):
            assert launch is not None
            return already_decided(launch, card_ts)
    answer = not_started(outcome, "the test call")
    assert answer is not None, outcome
    return answer


def gone(named: str | None = None) -> dict[str, Any]:
    """A button about a test call the bot has no record of; `named`, an id it could not even
    read (like `run 99999999999999999999`)."""
    if named:
        return plain(f"I have no test call {named}: that id is beyond any the bot keeps.")
    return plain("I have no record of that test call any more.")


def plain(text: str) -> dict[str, Any]:
    """A message of one section, its text escaped in both the section and the fallback."""
    return message(escape(text), [section(escape(text))])


def refusal(problem: str, usage: str | None = None) -> dict[str, Any]:
    """Name the problem and the fix, then the usage."""
    blocks = [section(escape(problem))]
    if usage:
        blocks.append(context(f"Usage: `{escape(usage)}`"))
    text = problem if not usage else f"{problem} Usage: {usage}"
    return message(escape(text), blocks)


def help_message() -> dict[str, Any]:
    lines = [
        "*Test your ThunderPhone agents from Slack.* Every test call is a real call, billed at "
        "2× the normal rate; I always ask before starting one.",
        f"• `{escape(USAGE['run'])}`",
        '   e.g. `/testcall run agent:12 "You are a polite caller asking about refund policy '
        'for order 12345."`',
        "   `outbound`: the test bot calls the agent (default) · `inbound`: the agent calls the "
        "test bot · `--sip`: SIP loopback instead of bot-to-bot · `--caller`: the caller id the "
        "agent sees",
        f"• `{escape(USAGE['batch'])}`",
        "   several scenarios in one go, up to 100 runs; `/testcall batch agent:12` alone opens "
        "a form",
        f"• `{escape(USAGE['suite'])}`",
        "   saved regression suites, compared with their blessed baseline",
        f"• `{escape(USAGE['smoke'])}`: the target's smoke suite, or five happy-path calls",
        f"• `{escape(USAGE['compare'])}`: the same scenarios against several targets",
        '• `/testcall alias set support agent:12` then `/testcall run support "…"`',
        "• `/testcall alias list` · `/testcall alias remove support`",
        f"• `{escape(USAGE['audit'])}`: who started, consented to, cancelled, flagged or "
        "blessed what, and who changed which setting, with what it cost; with no id, this "
        "channel's latest",
        f"• `{escape(USAGE['budget'])}`: spend caps per day and month, for the workspace or "
        "one channel; over a cap a launch waits for an admin's approval (or is refused); "
        "anyone can look, admins set them",
        "• `/testcall admin`: the bot's admins say who may start test calls, bless baselines "
        "and file critical reports, like `/testcall admin start @maria @qa-leads in "
        "#voice-qa`; until they do, everyone may",
    ]
    return message(
        "thunderbot: /testcall run, batch, suite, alias, audit, admin, help",
        [section("\n".join(lines))],
    )


def alias_saved(alias: Alias, previous: Alias | None = None) -> dict[str, Any]:
    """What an alias now means, and what it replaced."""
    target = target_text(alias.target_type, alias.target_id)
    was = ""
    if previous is not None:
        before = target_text(previous.target_type, previous.target_id)
        was = " (unchanged)" if before == target else f" (was {before})"
    return decided(
        f"Saved: `{escape(alias.name)}` now means {target}{was}. Try "
        f'`/testcall run {escape(alias.name)} "…"`.'
    )


def alias_list(aliases: list[Alias]) -> dict[str, Any]:
    if not aliases:
        return refusal("No aliases yet.", USAGE["alias"])
    lines = [
        f"• `{escape(a.name)}` → {target_text(a.target_type, a.target_id)}"
        f" (set by {mention(a.created_by)})"
        for a in aliases
    ]
    return message(
        plural(len(aliases), "alias", "aliases"),
        [section("*Aliases in this workspace*\n" + "\n".join(lines))],
    )
