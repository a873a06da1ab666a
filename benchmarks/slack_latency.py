"""Webhook to Slack: how soon after a `test-call.completed` webhook reaches the bot does Slack
hear about that run, with many runs in flight across many channels?

Set-up. The fake Slack and the ThunderPhone sandbox run in this process; the bot runs as
`thunderbot serve` in a subprocess, as in production. The runs are created in the sandbox
through its own API and moved to `in_progress` there, then stored in the bot's database
through the storage functions exactly as the bot stores them (`save_run`, then `merge_run` of
what ThunderPhone reports), each with its card already in Slack: a message in the fake Slack
and a `slack_messages` row in state `sent` whose digest is the card the bot itself renders for
that state. Launching 1,000 runs through Slack would take over 1,000 s at Slack's pace of one
post a second per channel, and measures the launch, not this.

Measurement. The sandbox finishes every call (without grading it, and without sending
webhooks itself); then all the `test-call.completed` webhooks are signed as ThunderPhone signs
them and posted at once over a few dozen connections, each one's send time recorded just
before its request goes out. The fake Slack records when each Web API call arrives (both are
`time.monotonic()` in this process); the first call naming a run's card (its channel and `ts`,
or the card as `thread_ts`) is when Slack first hears of that run. The result reply waits for
the grade (THUNDERBOT_GRADE_GRACE is long here), so that first call is the card's `chat.update`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.figure import Figure, figure, number, percentile
from bot.blocks.runs import run_card
from bot.config import Settings
from bot.outbox import digest
from bot.publish import run_card_key
from bot.runs import run_changes
from bot.sandbox.served import ServedBot
from bot.sandbox.slack import FakeSlack, SlackCall
from bot.sandbox.stack import API_KEY
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from bot.thunderphone import TestCallRequest, ThunderPhoneClient, parse_test_call_completed
from storage import messages
from storage import runs as run_store
from storage.db import now_iso, open_db
from storage.models import RunRecord

RUNS = 1000
CHANNELS = 200
CONNECTIONS = 32
P50_TARGET_MS = 20.0
P99_TARGET_MS = 200.0
TOUCH_TIMEOUT = 120.0  # seconds after the last send before untouched runs count as never
AGENTS = (12, 13, 14)
USERS = ("U0MARIA", "U0LI", "U0SAM", "U0ANA", "U0KOFI")


@dataclass
class Flight:
    """The runs in flight: where each one's card is."""

    run_ids: list[int] = field(default_factory=list)
    cards: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, ts) -> run


async def wait_quiet(
    probe: Callable[[], Hashable], *, quiet: float = 1.0, timeout: float = 60.0
) -> bool:
    """Until `probe()` has not changed for `quiet` seconds; False if `timeout` came first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = probe(), loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.05)
        now = probe()
        if now != last:
            last, since = now, loop.time()
        elif loop.time() - since >= quiet:
            return True
    return False


def channel_ids(count: int) -> list[str]:
    return [f"C0LOAD{index:04d}" for index in range(count)]


def touched_run(call: SlackCall, cards: dict[tuple[str, str], int]) -> int | None:
    """The run whose card (or card's thread) a Web API call names, if any."""
    channel = call.args.get("channel")
    if not isinstance(channel, str):
        return None
    for key in ("ts", "thread_ts"):
        value = call.args.get(key)
        if value is not None and (channel, str(value)) in cards:
            return cards[(channel, str(value))]
    return None


def first_touches(
    calls: list[SlackCall], cards: dict[tuple[str, str], int], *, start: int = 0
) -> dict[int, SlackCall]:
    """The first call (from index `start` on) naming each run's card."""
    first: dict[int, SlackCall] = {}
    for call in calls[start:]:
        run_id = touched_run(call, cards)
        if run_id is not None and run_id not in first:
            first[run_id] = call
    return first


def latencies_ms(sent: dict[int, float], touched: dict[int, float]) -> list[float]:
    """Per run, milliseconds from its webhook's send to Slack's first call about it; a run
    never touched counts as infinitely late."""
    return [(touched[run] - at) * 1000 if run in touched else math.inf for run, at in sent.items()]


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process has used so far; NaN where /proc is not there."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def create_runs(sandbox: ThunderPhoneSandbox, base_url: str, count: int) -> list[int]:
    """Start `count` runs in the sandbox through its API, then move each to `in_progress`."""
    gate = asyncio.Semaphore(16)
    async with ThunderPhoneClient(base_url=base_url, api_key=API_KEY) as client:

        async def one(index: int) -> int:
            request = TestCallRequest(
                target_type="agent",
                target_id=AGENTS[index % len(AGENTS)],
                consent_to_charge=True,
                scenario_prompt=f"[score: 91] Ask about the refund of order {10_000 + index}.",
            )
            async with gate:
                created = await client.create_test_call(request)
            return created.id

        run_ids = list(await asyncio.gather(*(one(index) for index in range(count))))
    for run_id in run_ids:
        await sandbox.advance(run_id)  # queued -> in_progress: the call is under way
    return run_ids


def seed_in_flight(
    db_path: Path,
    fake: FakeSlack,
    sandbox: ThunderPhoneSandbox,
    run_ids: list[int],
    channels: list[str],
    threshold: float,
) -> Flight:
    """Store each run as the bot would after its launch, its card shown in Slack."""
    flight = Flight(run_ids=list(run_ids))
    for channel in channels:
        fake.add_channel(channel, channel.lower())
    db = open_db(str(db_path))
    try:
        for index, run_id in enumerate(run_ids):
            report = parse_test_call_completed({"test_call_run": sandbox.runs[run_id]})
            channel, user = channels[index % len(channels)], USERS[index % len(USERS)]
            with db.atomic():
                run_store.save_run(
                    db,
                    RunRecord(
                        run_id=run_id,
                        team_id=fake.team_id,
                        channel_id=channel,
                        started_by=user,
                        target_type=report.target_type or "agent",
                        target_id=AGENTS[index % len(AGENTS)],
                        scenario_prompt=report.scenario_prompt,
                        status="queued",
                        created_at=now_iso(),
                    ),
                )
                run, _ = run_store.merge_run(db, run_id, run_changes(report))
                payload = run_card(run, None, threshold)
                shown = fake.add_message(channel, text=payload["text"], blocks=payload["blocks"])
                row = messages.want_shown(
                    db,
                    run_card_key(run_id),
                    channel=channel,
                    payload=json.dumps(payload),
                    digest=digest(payload),
                    notify_user=user,
                )
                messages.mark_shown(db, row.id, ts=shown.ts, digest=row.digest)
            flight.cards[(channel, shown.ts)] = run_id
    finally:
        db.close()
    return flight


def completion_body(run: dict[str, Any]) -> bytes:
    """A `test-call.completed` delivery as ThunderPhone sends it."""
    envelope = {
        "event_id": str(uuid.uuid4()),
        "type": "test-call.completed",
        "data": {"test_call_run": run},
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


async def send_all(
    sandbox: ThunderPhoneSandbox,
    url: str,
    bodies: list[tuple[int, bytes]],
    connections: int,
) -> tuple[dict[int, float], Counter[int]]:
    """POST every signed body over `connections` connections at once; returns each run's send
    time (monotonic, just before its request) and the count of each answer status."""
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in bodies:
        queue.put_nowait(item)
    sent: dict[int, float] = {}
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            while not queue.empty():
                run_id, body = queue.get_nowait()
                headers = sandbox.signature_headers(url, body, int(time.time()))
                sent[run_id] = time.monotonic()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return sent, statuses


async def measure(runs: int, channels: int, connections: int) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="thunderbot-bench-") as tmp:
        workdir = Path(tmp)
        served = ServedBot(
            workdir,
            step_seconds=None,  # the benchmark moves every run itself
            poll_seconds=3600,  # only the start-up check: webhooks alone move the runs
            env={"THUNDERBOT_GRADE_GRACE": "3600"},
        )
        async with served:
            sandbox = served.thunderphone
            assert sandbox is not None
            sandbox.webhook_url = None  # the benchmark delivers the webhooks itself
            await served.stop_bot()  # it made the database; it starts again once seeded
            run_ids = await create_runs(sandbox, served.variables["THUNDERPHONE_BASE_URL"], runs)
            threshold = Settings.model_fields["thunderbot_score_threshold"].default
            flight = seed_in_flight(
                served.db_path, served.fake, sandbox, run_ids, channel_ids(channels), threshold
            )
            fake = served.fake
            restart = len(fake.calls)
            await served.start_bot()
            # The worker's start-up check asks ThunderPhone about every active run; the cards
            # already show what it learns, so it should cost Slack nothing.
            await wait_quiet(lambda: (len(fake.calls), len(sandbox.requests)), quiet=1.5)
            before = len(fake.calls)
            startup = Counter(call.method for call in fake.calls[restart:before])
            for run_id in run_ids:
                await sandbox.advance(run_id)  # in_progress -> completed, no webhook sent
            bodies = [(run_id, completion_body(sandbox.runs[run_id])) for run_id in run_ids]
            random.Random(7).shuffle(bodies)
            assert served.process is not None
            bot_pid = served.process.pid
            cpu_before = cpu_seconds(bot_pid)
            started = time.monotonic()
            sent, statuses = await send_all(sandbox, served.webhook_url, bodies, connections)
            sending = time.monotonic() - started
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TOUCH_TIMEOUT
            first: dict[int, SlackCall] = {}
            scanned = before
            while len(first) < len(run_ids) and loop.time() < deadline:
                calls = fake.calls
                for run_id, call in first_touches(calls, flight.cards, start=scanned).items():
                    first.setdefault(run_id, call)
                scanned = len(calls)
                await asyncio.sleep(0.05)
            # The bot's CPU from the first webhook to the last run's first Slack call (and up
            # to 50 ms after it).
            burst_cpu = cpu_seconds(bot_pid) - cpu_before
    touched = {run_id: call.at for run_id, call in first.items()}
    lat = latencies_ms(sent, touched)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    methods = Counter(call.method for call in first.values())
    span = (max(touched.values()) - started) if len(touched) == len(run_ids) else math.inf
    detail = (
        f"{runs} runs · {channels} channels · {connections} connections · "
        f"webhooks sent in {number(sending)} s ({dict(sorted(statuses.items()))}) · "
        f"all {len(touched)}/{runs} touched {number(span)} s after the first send · "
        f"first calls {dict(methods)} · Slack calls at start-up {dict(startup)}"
    )
    times = sorted(touched.values())
    pace = (times[-1] - times[0]) / (len(times) - 1) * 1000 if len(times) > 1 else math.nan
    per_run = burst_cpu / runs * 1000
    tail = (
        f"max {number(max(lat))} ms · one run's card after another every {number(pace)} ms "
        f"once they start · the bot's CPU {number(per_run)} ms a run during the burst, so "
        f"{connections} webhooks in flight wait about {number(connections * per_run)} ms"
    )
    return [
        figure("webhook to Slack p50", p50, "ms", "<", P50_TARGET_MS, detail),
        figure("webhook to Slack p99", p99, "ms", "<", P99_TARGET_MS, tail),
    ]


async def figures(options: object) -> list[Figure]:
    quick = bool(getattr(options, "quick", False))
    runs, channels = (200, 40) if quick else (RUNS, CHANNELS)
    return await measure(runs, channels, CONNECTIONS)
