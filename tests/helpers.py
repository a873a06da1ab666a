"""Reading what a person would see, and what ThunderPhone received, in the running stack."""

from __future__ import annotations

import json
from typing import Any

from bot import ids
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.slack_user import SlackUser
from bot.sandbox.stack import LocalStack
from bot.sandbox.thunderphone import RecordedRequest
from storage import messages

CHANNEL = "C0QA"
PROMPT = "You are a polite caller asking about refund policy for order 12345."


def shown(item: Message | Ephemeral | None) -> str:
    """Everything a message shows, as one searchable string."""
    if item is None:
        return ""
    return item.text + "\n" + json.dumps(item.blocks, ensure_ascii=False)


def cards(stack: LocalStack) -> list[Message]:
    return [m for m in stack.fake.messages.get(CHANNEL, []) if m.thread_ts is None]


def results(stack: LocalStack) -> list[Message]:
    found = cards(stack)
    return stack.fake.thread(CHANNEL, found[0].ts) if found else []


def launches_posted(stack: LocalStack) -> list[RecordedRequest]:
    return [r for r in stack.sandbox.requests if r.method == "POST" and r.path == "/v1/test-calls"]


def rows(stack: LocalStack, table: str) -> list[dict[str, Any]]:
    return list(stack.services.db.table(table).rows)


async def outbox_idle(stack: LocalStack, timeout: float = 10) -> None:
    """Wait until every message the bot owns shows what it should (edits are paced, so a
    change may still be on its way for a second)."""
    await stack.fake.wait_for(
        lambda: not messages.channels_with_work(stack.services.db) or None, timeout=timeout
    )


def slack_calls(stack: LocalStack, method: str) -> int:
    return len(stack.fake.calls_to(method))


async def confirm(user: SlackUser, text: str = f'run agent:12 "{PROMPT}"') -> Ephemeral:
    reply = await user.slash(text)
    assert reply.status == 200, reply.body_text
    assert reply.ephemeral is not None, reply.body_text
    return reply.ephemeral


async def wait_for_result(stack: LocalStack, needle: str, timeout: float = 10) -> Message:
    def ready() -> Message | None:
        found = results(stack)
        return found[0] if found and needle in shown(found[0]) else None

    return await stack.fake.wait_for(ready, timeout=timeout)


async def wait_for_card(stack: LocalStack, needle: str, timeout: float = 10) -> Message:
    def ready() -> Message | None:
        found = cards(stack)
        return found[0] if found and needle in shown(found[0]) else None

    return await stack.fake.wait_for(ready, timeout=timeout)


async def wait_for_graded_result(stack: LocalStack, timeout: float = 10) -> Message:
    def ready() -> Message | None:
        found = results(stack)
        done = (
            found
            and "Not graded yet" not in shown(found[0])
            and "not in yet" not in shown(found[0])
        )
        return found[0] if done else None

    return await stack.fake.wait_for(ready, timeout=timeout)


async def start_run(stack: LocalStack, text: str = f'run agent:12 "{PROMPT}"') -> int:
    """Type the command, press Start, and return the run's id once its card is up."""
    user = stack.user()
    await user.click(await confirm(user, text), ids.START_RUN)
    await wait_for_card(stack, "⏳ Queued")
    return max(stack.sandbox.runs)


async def finish_run(stack: LocalStack, run_id: int) -> Message:
    """Move a run (manual clock) through in progress, completed and graded."""
    for _ in range(3):
        await stack.sandbox.advance(run_id)
    return await wait_for_graded_result(stack)
