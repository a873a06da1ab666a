"""A bot killed with SIGKILL between Start and ThunderPhone's answer to the create: a run that
was made is found and adopted, never launched again; a create that never went out is called
off as soon as the click's answer is overdue, and the person is told nothing was charged. The
bot runs as `thunderbot serve`; every assertion is on what Slack shows and what ThunderPhone
received."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot import ids
from bot.launch import ANSWER_TIMEOUT
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import API_KEY
from bot.sandbox.thunderphone import ApiFaults, ThunderPhoneSandbox
from storage.db import now_iso
from tests.helpers import CHANNEL, PROMPT, shown
from tests.serve_process import ServedBot

OVERDUE = ANSWER_TIMEOUT + timedelta(seconds=10)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[ServedBot]:
    """`thunderbot serve` as a process; runs move only when a test moves them."""
    async with ServedBot(tmp_path, step_seconds=None) as bot:
        yield bot


@pytest.fixture
def sandbox(served: ServedBot) -> ThunderPhoneSandbox:
    assert served.thunderphone is not None
    return served.thunderphone


def creates(sandbox: ThunderPhoneSandbox) -> int:
    return sum(r.method == "POST" and r.path == "/v1/test-calls" for r in sandbox.requests)


def channel_cards(served: ServedBot) -> list[Message]:
    return [m for m in served.fake.messages.get(CHANNEL, []) if m.thread_ts is None]


def stored(served: ServedBot, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
    """One statement on the bot's database file, committed, as another process makes it."""
    db = sqlite3.connect(served.db_path, timeout=5)
    try:
        with db:
            return db.execute(sql, params).fetchall()
    finally:
        db.close()


def click_long_ago(served: ServedBot) -> None:
    """What the clock shows once the click's answer is overdue: its time moved back."""
    stored(
        served,
        "update launches set decided_at = ? where decided_at is not null",
        [now_iso(OVERDUE)],
    )


async def kill(served: ServedBot) -> None:
    killed = await served.stop_bot(signal.SIGKILL)
    assert killed.code == -signal.SIGKILL


async def press_start(served: ServedBot) -> Ephemeral:
    maria = served.user()
    reply = await maria.slash(f'run agent:12 "{PROMPT}"')
    assert reply.ephemeral is not None, reply.body_text
    assert await maria.click(reply.ephemeral, ids.START_RUN) == 200
    return reply.ephemeral


async def test_a_run_made_while_the_bot_was_killed_is_found_not_launched_again(
    served: ServedBot, sandbox: ThunderPhoneSandbox
) -> None:
    async with asyncio.timeout(150):
        # ThunderPhone makes the run 2 s after the create arrives: the bot is gone by then.
        sandbox.api_faults = ApiFaults(
            rate=1.0, kinds=(), create_kinds=("slow",), slow_seconds=(2.0, 2.0)
        )
        confirmation = await press_start(served)
        await served.fake.wait_for(lambda: creates(sandbox) or None, timeout=20)
        await kill(served)
        sandbox.api_faults = None
        [run_id] = await served.fake.wait_for(lambda: list(sandbox.runs) or None, timeout=10)

        await served.start_bot()
        # Someone who saw nothing happen presses Start again: nothing is sent twice.
        assert await served.user().click(confirmation, ids.START_RUN) == 200
        await served.fake.wait_for(
            lambda: "Already being started by <@U0MARIA>" in shown(confirmation) or None
        )
        click_long_ago(served)
        card = await served.fake.wait_for(
            lambda: next((c for c in channel_cards(served) if f"run {run_id}" in shown(c)), None),
            timeout=20,
        )

        assert "⏳ Queued" in shown(card)
        assert len(channel_cards(served)) == 1, "the launch's card became the run's"
        assert creates(sandbox) == 1
        launch = stored(served, "select status, run_id, sent_at from launches")
        assert [(status, found) for status, found, _ in launch] == [("launched", run_id)]
        assert launch[0][2] is not None


async def test_a_create_that_never_went_out_is_called_off_without_a_search(
    served: ServedBot, sandbox: ThunderPhoneSandbox
) -> None:
    async with asyncio.timeout(150):
        # Slack takes the card, but its answer never comes: the bot waits for it, before any
        # money is spent, and is killed there.
        served.fake.fault("chat.postMessage", error=None, handled=True, hang=60)
        await press_start(served)
        await served.fake.wait_for(lambda: channel_cards(served) or None, timeout=20)
        await kill(served)
        served.fake.clear_faults()

        await served.start_bot()
        # Someone else starts the same scenario from the dashboard: a search would take it
        # for this launch's run.
        async with httpx.AsyncClient(base_url=served.variables["THUNDERPHONE_BASE_URL"]) as tp:
            theirs = await tp.post(
                "/v1/test-calls",
                headers={"Authorization": f"Bearer {API_KEY}"},
                json={
                    "target_type": "agent",
                    "target_id": 12,
                    "direction": "outbound",
                    "mode": "bot",
                    "consent_to_charge": True,
                    "scenario_prompt": PROMPT,
                },
            )
        assert theirs.status_code == 201, theirs.text
        click_long_ago(served)  # overdue, but well within the 10 minutes a search would take
        told = await served.fake.wait_for(
            lambda: next((e for e in served.fake.ephemerals if "did not start" in e.text), None),
            timeout=20,
        )
        assert told.user == "U0MARIA"
        assert (
            "did not start: the bot was restarted before it sent the call to ThunderPhone, so "
            "nothing was charged. Run the command again if you still need it."
        ) in told.text
        [card] = await served.fake.wait_for(
            lambda: (
                channel_cards(served)
                if "❌ Did not start" in shown(channel_cards(served)[0])
                else None
            ),
            timeout=20,
        )
        assert "The bot was restarted before it sent the call to ThunderPhone" in shown(card)
        assert creates(sandbox) == 1, "only theirs"
        launch = stored(served, "select status, run_id, sent_at from launches")
        runs = stored(served, "select run_id from runs")
        assert launch == [("failed", None, None)] and runs == [], "theirs was not taken"
