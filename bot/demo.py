"""`thunderbot demo`: a person starts a test call, reads the result and flags it for review,
all on loopback against the ThunderPhone sandbox and a fake Slack workspace."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot import ids
from bot.sandbox.slack import Message
from bot.sandbox.stack import LocalStack

T = TypeVar("T")
CHANNEL = "C0QA"
SCENARIO = "You are a polite caller asking about refund policy for order 12345."


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
                ids.FLAG_SEVERITY: {
                    ids.INPUT_VALUE: {
                        "type": "static_select",
                        "selected_option": {"value": "warning"},
                    }
                },
                ids.FLAG_DESCRIPTION: {
                    ids.INPUT_VALUE: {
                        "type": "plain_text_input",
                        "value": "The agent did not confirm the order number back.",
                    }
                },
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
        say(
            f"\nThunderPhone received issue report {report['id']} "
            f"({report['severity']}: {report['title']!r}) with a link back to the thread."
        )


def _shown(message: Message | None) -> str:
    return json.dumps(message.blocks, ensure_ascii=False) if message else ""


async def _wait(waiting: Awaitable[T], what: str) -> T:
    try:
        return await waiting
    except (AssertionError, TimeoutError) as error:
        raise DemoFailed(f"timed out waiting for {what}: {error}") from error
