"""`thunderbot demo`: a person starts a test call, reads the result and flags it for review,
all on loopback against the ThunderPhone sandbox and a fake Slack workspace."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bot import ids
from bot.sandbox.slack import FakeSlack, Message
from bot.sandbox.slack_render import clean_mrkdwn, render_body
from bot.sandbox.stack import LocalStack
from bot.suites import parse_suite, suite_record
from storage.suites import save_suite

T = TypeVar("T")
CHANNEL = "C0QA"
SCENARIO = "You are a polite caller asking about the return policy for order 12345."
# What @maria types into the flag form: the grade says the agent answered clearly, she disagrees.
FLAG_TITLE = "Return policy never explained"
FLAG_DESCRIPTION = (
    "The agent read out the shipping status and hung up without ever explaining the return policy."
)
FLAG_TURN = "5"  # the agent's answer, as numbered in the transcript


class DemoFailed(Exception):
    pass


def _rule(title: str) -> str:
    return f"\n── {title} " + "─" * max(0, 74 - len(title))


async def run_demo(say: Callable[[str], None] = print, timeout: float = 20.0) -> None:
    """Play the conversation and print it as a person reads it; raise DemoFailed if it breaks."""
    async with LocalStack(step_seconds=0.3, poll_seconds=0.5) as stack:
        fake, maria = stack.fake, stack.user("U0MARIA", CHANNEL)
        say(f"Fake Slack workspace at {fake.base_url}, ThunderPhone sandbox and bot on loopback.")
        text = f'run agent:12 "{SCENARIO}"'
        say(_rule(f"@maria types  /testcall {text}"))
        reply = await maria.slash(text)
        if reply.status != 200 or reply.ephemeral is None:
            raise DemoFailed(f"/testcall answered HTTP {reply.status}: {reply.body_text}")
        say(fake.render_ephemerals("U0MARIA", CHANNEL))

        say(_rule("@maria presses  Start test call"))
        await maria.click(reply.ephemeral, ids.START_RUN)

        def finished() -> Message | None:
            cards = [m for m in fake.messages.get(CHANNEL, []) if m.thread_ts is None]
            if not cards:
                return None
            card = cards[0]
            replies = fake.thread(CHANNEL, card.ts)
            done = replies and "grading" not in replies[-1].text
            return replies[-1] if done else None

        result = await _wait(fake.wait_for(finished, timeout=timeout), "the graded result")
        say(fake.render_ephemerals("U0MARIA", CHANNEL))
        say(_rule("#voice-qa, after the call and its grade"))
        say(fake.render_channel(CHANNEL))

        say(_rule("@maria presses  Flag for review  and files the report"))
        await maria.click(result, ids.FLAG_RUN)
        view = await _wait(
            fake.wait_for(lambda: next(iter(fake.open_stack("U0MARIA")), None), timeout=timeout),
            "the flag modal",
        )
        status, body = await maria.submit_view(
            view.id,
            {
                ids.FLAG_TITLE: {ids.INPUT_VALUE: _typed(FLAG_TITLE)},
                ids.FLAG_SEVERITY: {
                    ids.INPUT_VALUE: {
                        "type": "static_select",
                        "selected_option": {"value": "warning"},
                    }
                },
                ids.FLAG_DESCRIPTION: {ids.INPUT_VALUE: _typed(FLAG_DESCRIPTION)},
                ids.FLAG_TURN: {ids.INPUT_VALUE: _typed(FLAG_TURN)},
            },
        )
        if status != 200:
            raise DemoFailed(f"submitting the flag answered HTTP {status}: {body}")
        await _wait(
            fake.wait_for(lambda: stack.sandbox.issue_reports or None, timeout=timeout),
            "the issue report in ThunderPhone",
        )
        await _wait(
            fake.wait_for(
                lambda: "Flagged for review" in _shown(fake.find_message(CHANNEL, result.ts)),
                timeout=timeout,
            ),
            "the flag record in the thread",
        )
        report = next(iter(stack.sandbox.issue_reports.values()))
        say(_rule("#voice-qa, after the flag"))
        say(fake.render_channel(CHANNEL))
        say(_rule("ThunderPhone, the issue report it received"))
        say(_issue_report(report))
        await _batch(stack, say, timeout)
        await _suite(stack, say, timeout)


BATCH_CHANNEL, SUITE_CHANNEL = "C0BATCH", "C0SUITE"
BATCH_PROMPTS = (
    "[score: 92] Ask about the refund policy for order 12345.",
    "[score: 88] Ask for the opening hours on Sunday.",
    "[fail] Call about a damaged parcel.",
    "[score: 95] Ask to change the delivery address.",
    "[score: 90] Ask where order 67890 is.",
)
SUITE_V1: list[dict[str, Any]] = [
    {
        "name": "refund-policy",
        "scenario_prompt": "[score: 91] Ask about the refund policy.",
        "expected_outcome": "success",
    },
    {
        "name": "human-handoff",
        "scenario_prompt": "[score: 55] Ask to speak to a person.",
        "expected_outcome": {"min_score": 80},
    },
    {
        "name": "order-status",
        "scenario_prompt": "[score: 90] [tool: lookup_order order=12345] Ask where order 12345 is.",
        "expected_outcome": {
            "tools_called": [{"name": "lookup_order", "arguments": {"order": "12345"}}]
        },
    },
]


def _cards(stack: LocalStack, channel: str) -> list[Message]:
    return [m for m in stack.fake.messages.get(channel, []) if m.thread_ts is None]


async def _finished_card(stack: LocalStack, channel: str, nth: int, timeout: float) -> Message:
    def done() -> Message | None:
        cards = _cards(stack, channel)
        text = _shown(cards[nth]) if len(cards) > nth else ""
        return cards[nth] if ("passed" in text and "█████" in text) else None

    return await _wait(stack.fake.wait_for(done, timeout=timeout * 3), "the batch's verdict")


async def _batch(stack: LocalStack, say: Callable[[str], None], timeout: float) -> None:
    fake = stack.fake
    fake.add_channel(BATCH_CHANNEL, "voice-batches")
    maria = stack.user("U0MARIA", BATCH_CHANNEL)
    text = "batch agent:12 --stagger 0 " + " ".join(f'"{p}"' for p in BATCH_PROMPTS)
    say(_rule("@maria types  /testcall batch agent:12 … (five scenarios)"))
    reply = await maria.slash(text)
    if reply.ephemeral is None:
        raise DemoFailed(f"/testcall batch answered: {reply.body_text}")
    say(fake.render_ephemerals("U0MARIA", BATCH_CHANNEL))
    say(_rule("@maria presses  Start test calls"))
    await maria.click(reply.ephemeral, ids.START_BATCH)
    card = await _finished_card(stack, BATCH_CHANNEL, 0, timeout)
    await _wait(
        fake.wait_for(lambda: len(fake.thread(BATCH_CHANNEL, card.ts)) == 5 or None, timeout),
        "the five results",
    )
    say(_rule("#voice-batches, one card and a reply per run"))
    say(fake.render_channel(BATCH_CHANNEL))


async def _suite(stack: LocalStack, say: Callable[[str], None], timeout: float) -> None:
    fake = stack.fake
    fake.add_channel(SUITE_CHANNEL, "voice-regressions")
    maria, li = stack.user("U0MARIA", SUITE_CHANNEL), stack.user("U0LI", SUITE_CHANNEL)
    _import(stack, SUITE_V1)
    say(_rule("the team imports suite refunds (thunderbot suite import refunds.json)"))
    say(f"Suite refunds: {len(SUITE_V1)} cases, default target agent:12.")

    async def run(nth: int) -> Message:
        reply = await maria.slash("suite run refunds --stagger 0")
        if reply.ephemeral is None:
            raise DemoFailed(f"/testcall suite run answered: {reply.body_text}")
        await maria.click(reply.ephemeral, ids.START_BATCH)
        return await _finished_card(stack, SUITE_CHANNEL, nth, timeout)

    say(_rule("@maria runs  /testcall suite run refunds  and @li blesses it"))
    first = await run(0)
    await li.click(first, ids.BLESS_BATCH)
    await _wait(
        fake.wait_for(lambda: "Blessed as baseline" in _shown(_cards(stack, SUITE_CHANNEL)[0])),
        "the blessing",
    )
    say(_render(fake, SUITE_CHANNEL, _cards(stack, SUITE_CHANNEL)[0]))

    changed = [dict(case) for case in SUITE_V1]
    changed[0]["scenario_prompt"] = "[score: 62] Ask about the refund policy."
    changed[1]["scenario_prompt"] = "[score: 88] Ask to speak to a person."
    _import(stack, changed)
    say(_rule("after a prompt change, @maria runs the suite again"))
    second = await run(1)

    def summary() -> Message | None:
        replies = fake.thread(SUITE_CHANNEL, second.ts)
        return next((m for m in replies if "Compared with the baseline" in _shown(m)), None)

    found = await _wait(fake.wait_for(summary, timeout=timeout), "the regression summary")
    say(_render(fake, SUITE_CHANNEL, second))
    say(_render(fake, SUITE_CHANNEL, found))


def _import(stack: LocalStack, cases: list[dict[str, Any]]) -> None:
    suite = parse_suite(
        json.dumps({"name": "refunds", "target": "agent:12", "cases": cases}),
        name=None,
        filename=None,
    )
    save_suite(stack.services.db, suite_record(suite, created_by="U0MARIA"))


def _typed(text: str) -> dict[str, str]:
    """A plain text input as a person leaves it after typing ``text``."""
    return {"type": "plain_text_input", "value": text}


def _issue_report(report: dict[str, Any]) -> str:
    """The issue report as ThunderPhone holds it: what was filed, and where it came from."""
    turn = report.get("failing_turn_index")
    at = report.get("timestamp_seconds")
    when = f" (at {at // 60}:{at % 60:02d} in the call)" if isinstance(at, int) else ""
    link = (report.get("metadata") or {}).get("slack_permalink") or "none"
    rows = [
        ("Title", report["title"]),
        ("Severity", report["severity"]),
        ("Description", report["description"] or "(none)"),
        ("Turn", f"{turn + 1}{when}" if isinstance(turn, int) else "(none)"),
        ("Link", link),
    ]
    head = (
        f"ThunderPhone received issue report {report['id']} on call {report['call_id']} "
        f"({report['status']}):"
    )
    return "\n".join([head, *(f"  {name:<12} {value}" for name, value in rows)])


def _render(fake: FakeSlack, channel: str, message: Message) -> str:
    now = fake.now()
    body = render_body(message.text, message.blocks, message.files, fake.name_of, now=now)
    return "\n".join(clean_mrkdwn(line, fake.name_of, now=now) for line in body)


def _shown(message: Message | None) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) if message else ""


async def _wait(waiting: Awaitable[T], what: str) -> T:
    try:
        return await waiting
    except (AssertionError, TimeoutError) as error:
        raise DemoFailed(f"timed out waiting for {what}: {error}") from error
