"""Slack calls per run: what a 20-run batch costs in Slack Web API calls, and that a run whose
state did not change costs none.

Everything goes through the real path: `thunderbot serve` in a subprocess, a person typing
`/testcall batch agent:12 --stagger 0 "…" ×20` and pressing Start (signed as Slack signs),
the ThunderPhone sandbox in this process running the calls quickly and sending its signed
webhooks, the fake Slack in this process recording every call. Settings are production's
(post interval, grade grace, poll interval), so the card's edits are coalesced as they would be.

Counted: every request the fake Slack records, whatever its method (`chat.postMessage`,
`chat.update`, `chat.postEphemeral`, `conversations.*`, `views.*`, … and the POSTs to a
`response_url`), from the batch card's `chat.postMessage` until Slack has been quiet for a few
seconds after the last result, once the bot's outbox has nothing left to send.

Then every webhook the sandbox delivered for the batch is delivered again under a new event id
(the bot cannot tell them for duplicates): the runs are already in those states, so Slack must
hear nothing new.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp

from benchmarks.figure import Figure, figure, number
from benchmarks.slack_latency import wait_quiet
from bot import ids
from bot.sandbox.served import ServedBot
from bot.sandbox.slack import FakeSlack, Message
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from storage.messages import WORK_STATES

BATCH = 20
CHANNEL = "C0QA"
PER_RUN_TARGET = 1.5
QUIET = 3.0  # seconds without a Slack call: past the post interval, so nothing is pending
TIMEOUT = 180.0
PROMPTS = [f"[score: {70 + index}] Ask about delivery slot {index + 1}." for index in range(BATCH)]


def batch_command(prompts: list[str]) -> str:
    return "batch agent:12 --stagger 0 " + " ".join(f'"{prompt}"' for prompt in prompts)


def per_run(calls: int, runs: int) -> float:
    return calls / runs if runs else float("nan")


def bot_still_busy(db_path: Path) -> bool:
    """Whether the bot has webhooks not yet applied, or Slack messages not yet delivered
    (read beside the running bot: the database is in WAL mode)."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
        unapplied = db.execute(
            "select count(*) from webhook_events where processed_at is null"
        ).fetchone()[0]
        marks = ", ".join("?" * len(WORK_STATES))
        undelivered = db.execute(
            f"select count(*) from slack_messages where state in ({marks})", WORK_STATES
        ).fetchone()[0]
    return bool(unapplied or undelivered)


async def settle(served: ServedBot, timeout: float = TIMEOUT) -> None:
    """Until the bot has applied every webhook and delivered every message, and Slack has
    heard nothing for `QUIET` seconds."""
    fake = served.fake
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if (
            not bot_still_busy(served.db_path)
            and await wait_quiet(lambda: len(fake.calls), quiet=QUIET, timeout=QUIET * 4)
            and not bot_still_busy(served.db_path)
        ):
            return
        await asyncio.sleep(0.2)
    raise TimeoutError("the bot did not settle")


def batch_card(fake: FakeSlack) -> Message | None:
    return next(
        (m for m in fake.messages.get(CHANNEL, []) if m.thread_ts is None and m.bot_id), None
    )


async def run_batch(served: ServedBot) -> Message:
    """Type the batch, press Start, and wait until every run's result is in the thread."""
    fake = served.fake
    user = served.user()
    reply = await user.slash(batch_command(PROMPTS))
    if reply.ephemeral is None:
        raise RuntimeError(f"no confirmation for the batch: {reply.status} {reply.body_text}")
    status = await user.click(reply.ephemeral, ids.START_BATCH)
    if status != 200:
        raise RuntimeError(f"pressing Start answered {status}")

    def done() -> Message | None:
        card = batch_card(fake)
        return card if card is not None and len(fake.thread(CHANNEL, card.ts)) >= BATCH else None

    card = await fake.wait_for(done, timeout=TIMEOUT)
    assert served.thunderphone is not None
    await served.thunderphone.wait_until_settled(timeout=TIMEOUT)
    await settle(served)
    return card


async def deliver_again(sandbox: ThunderPhoneSandbox, url: str) -> Counter[int]:
    """Every webhook the sandbox delivered, once more, each under a new event id."""
    delivered: dict[str, bytes] = {}
    for delivery in sandbox.deliveries:
        if delivery.status is not None and 200 <= delivery.status < 300:
            delivered.setdefault(delivery.event_id, delivery.body)
    statuses: Counter[int] = Counter()
    async with aiohttp.ClientSession() as session:
        for body in delivered.values():
            envelope = json.loads(body)
            envelope["event_id"] = str(uuid.uuid4())
            again = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
            headers = sandbox.signature_headers(url, again, int(time.time()))
            async with session.post(url, data=again, headers=headers) as response:
                await response.read()
                statuses[response.status] += 1
    return statuses


async def measure() -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="thunderbot-bench-") as tmp:
        served = ServedBot(Path(tmp), step_seconds=0.05, poll_seconds=10.0)
        async with served:
            fake, sandbox = served.fake, served.thunderphone
            assert sandbox is not None
            card = await run_batch(served)
            calls = list(fake.calls)
            first = next(
                index
                for index, call in enumerate(calls)
                if call.method == "chat.postMessage" and (call.result or {}).get("ts") == card.ts
            )
            window = calls[first:]
            results = [
                index
                for index, call in enumerate(window)
                if call.method == "chat.postMessage" and call.args.get("thread_ts") == card.ts
            ]
            to_last_result = results[-1] + 1 if results else len(window)
            methods = Counter(call.method for call in window)
            before = Counter(call.method for call in calls[:first])
            replies = len(fake.thread(CHANNEL, card.ts))

            mark = len(fake.calls)
            statuses = await deliver_again(sandbox, served.webhook_url)
            await settle(served)
            again = fake.calls[mark:]
    cost = per_run(len(window), BATCH)
    detail = (
        f"{len(window)} calls for {BATCH} runs ({number(per_run(to_last_result, BATCH))}/run up "
        f"to the last result) · {dict(sorted(methods.items()))} · {replies} results in the "
        f"thread · before the card: {dict(before)}"
    )
    again_detail = (
        f"{sum(statuses.values())} webhooks delivered again under new event ids "
        f"({dict(statuses)})" + (f" · {dict(Counter(c.method for c in again))}" if again else "")
    )
    return [
        figure("Slack calls per run (20-run batch)", cost, "calls", "<=", PER_RUN_TARGET, detail),
        figure("Slack calls for unchanged runs", len(again), "calls", "==", 0, again_detail),
    ]


async def figures(options: object) -> list[Figure]:
    return await measure()
