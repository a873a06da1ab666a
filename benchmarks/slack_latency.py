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
them and posted at once over `--concurrency` keep-alive connections (32, as the targets are
set), each one's send time recorded just before its request goes out. The fake Slack records
when each Web API call arrives (both are `time.monotonic()` in this process); the first call
naming a run's card (its channel and `ts`, or the card as `thread_ts`) is when Slack first
hears of that run. The result reply waits for the grade (THUNDERBOT_GRADE_GRACE is long here),
so that first call is the card's `chat.update`.

Baseline. Once the bot has stopped, the same webhooks go to a bare relay in its own process
(`python -m benchmarks.baselines relay`): the V2 check, `json.loads`, the answer, then one
`chat.update` of the run's card through slack_sdk, with nothing stored. It shows what the same
load generator and fake Slack allow a receiver that does nothing more. Each figure is the median
of `--rounds` rounds, each round a fresh bot with fresh runs, then the relay.
"""

from __future__ import annotations

import asyncio
import gc
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

from benchmarks import baselines
from benchmarks.common import ServerProcess
from benchmarks.figure import Figure, figure, median, number, percentile
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
    payloads: dict[int, dict[str, Any]] = field(default_factory=dict)  # run -> its card


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
            flight.payloads[run_id] = payload
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


@dataclass(frozen=True)
class Burst:
    """What one burst of webhooks showed at the fake Slack."""

    latencies: list[float]  # ms per run, infinity for a run never touched
    cpu_per_run: float  # ms of the receiver's CPU per run, from the first send to the last touch
    own_cpu_per_run: float  # ms of this process's (load generator and fake Slack) CPU per run
    sending: float  # seconds to send every webhook
    statuses: Counter[int]
    span: float  # seconds from the first send to the last run's first touch
    methods: Counter[str]  # the first calls' Web API methods
    pace: float  # ms between one run's first touch and the next, once they start

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


async def burst(
    fake: FakeSlack,
    sandbox: ThunderPhoneSandbox,
    url: str,
    bodies: list[tuple[int, bytes]],
    flight: Flight,
    pid: int,
    connections: int,
) -> Burst:
    """Post every body to `url` at once and wait until Slack has heard of every run (or the
    timeout); `pid` is the receiver's process, whose CPU is read before and after."""
    before = len(fake.calls)
    # This process is the load generator and the fake Slack: a full garbage collection of what
    # earlier rounds and modules left would stop both for 100 ms or more, mid-burst.
    gc.collect()
    gc.disable()
    try:
        cpu_before, own_before = cpu_seconds(pid), time.process_time()
        started = time.monotonic()
        sent, statuses = await send_all(sandbox, url, bodies, connections)
        sending = time.monotonic() - started
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOUCH_TIMEOUT
        first: dict[int, SlackCall] = {}
        scanned = before
        while len(first) < len(bodies) and loop.time() < deadline:
            calls = fake.calls
            for run_id, call in first_touches(calls, flight.cards, start=scanned).items():
                first.setdefault(run_id, call)
            scanned = len(calls)
            await asyncio.sleep(0.05)
        # From the first webhook to the last run's first Slack call (and up to 50 ms after).
        cpu = cpu_seconds(pid) - cpu_before
        own = time.process_time() - own_before
    finally:
        gc.enable()
    touched = {run_id: call.at for run_id, call in first.items()}
    times = sorted(touched.values())
    return Burst(
        latencies=latencies_ms(sent, touched),
        cpu_per_run=cpu / len(bodies) * 1000,
        own_cpu_per_run=own / len(bodies) * 1000,
        sending=sending,
        statuses=statuses,
        span=(times[-1] - started) if len(touched) == len(bodies) else math.inf,
        methods=Counter(call.method for call in first.values()),
        pace=(times[-1] - times[0]) / (len(times) - 1) * 1000 if len(times) > 1 else math.nan,
    )


@dataclass(frozen=True)
class Round:
    """One round: the bot's burst, then the bare relay's with the same webhooks and cards."""

    bot: Burst
    relay: Burst
    startup: Counter[str]  # the bot's Slack calls when it started with the runs in flight


async def measure(runs: int, channels: int, connections: int) -> Round:
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
            startup = Counter(call.method for call in fake.calls[restart:])
            for run_id in run_ids:
                await sandbox.advance(run_id)  # in_progress -> completed, no webhook sent
            bodies = [(run_id, completion_body(sandbox.runs[run_id])) for run_id in run_ids]
            random.Random(7).shuffle(bodies)
            assert served.process is not None
            bot = await burst(
                fake, sandbox, served.webhook_url, bodies, flight, served.process.pid, connections
            )
            await served.stop_bot()
            relay = await relay_burst(workdir, fake, sandbox, bodies, flight, connections)
    return Round(bot=bot, relay=relay, startup=startup)


async def relay_burst(
    workdir: Path,
    fake: FakeSlack,
    sandbox: ThunderPhoneSandbox,
    bodies: list[tuple[int, bytes]],
    flight: Flight,
    connections: int,
) -> Burst:
    """The same webhooks through the bare relay (`benchmarks.baselines relay`), which updates
    the same cards with the payloads they were seeded with."""
    cards_path = workdir / "cards.json"
    by_run = {run_id: [channel, ts] for (channel, ts), run_id in flight.cards.items()}
    cards = {run_id: [*where, flight.payloads[run_id]] for run_id, where in by_run.items()}
    cards_path.write_text(json.dumps(cards))
    relay = ServerProcess(
        "relay",
        [
            *("--secret", sandbox.webhook_secret),
            *("--slack-api-url", fake.api_url),
            *("--slack-token", fake.token),
            *("--cards", str(cards_path)),
        ],
        workdir,
    )
    try:
        await relay.start()
        url = relay.url + baselines.WEBHOOK_ROUTE
        return await burst(fake, sandbox, url, bodies, flight, relay.pid, connections)
    finally:
        await relay.stop()


def median_round(bursts: list[Burst]) -> Burst:
    """The burst with the median p50 (its other numbers stay those of one real burst)."""
    ranked = sorted(bursts, key=lambda one: one.p50)
    return ranked[(len(ranked) - 1) // 2]


def latency_figures(
    rounds: list[Round], runs: int, channels: int, connections: int = CONNECTIONS
) -> list[Figure]:
    """The p50 and p99, each the median of the rounds, with the bare relay's beside them."""
    bot = median_round([one.bot for one in rounds])
    relay = median_round([one.relay for one in rounds])
    p50 = median([one.bot.p50 for one in rounds])
    p99 = median([one.bot.p99 for one in rounds])
    relay_p50 = median([one.relay.p50 for one in rounds])
    ratio = p50 / relay_p50 if relay_p50 > 0 else math.nan
    detail = (
        f"{runs} runs · {channels} channels · {connections} connections · "
        f"{number(ratio)}x the bare relay's {number(relay_p50)} ms · "
        f"rounds {', '.join(number(one.bot.p50) for one in rounds)} · median round: "
        f"webhooks sent in {number(bot.sending)} s ({dict(sorted(bot.statuses.items()))}), "
        f"all {sum(math.isfinite(x) for x in bot.latencies)}/{runs} touched "
        f"{number(bot.span)} s after the first send, first calls {dict(bot.methods)}, "
        f"Slack calls at start-up {dict(rounds[0].startup)}"
    )
    tail = (
        f"rounds {', '.join(number(one.bot.p99) for one in rounds)} · median round: "
        f"max {number(max(bot.latencies))} ms, one run's card after another every "
        f"{number(bot.pace)} ms once they start, the bot's CPU {number(bot.cpu_per_run)} ms a "
        f"run during the burst, so {connections} webhooks in flight wait about "
        f"{number(connections * bot.cpu_per_run)} ms; the load generator and fake Slack's "
        f"{number(bot.own_cpu_per_run)} ms a run"
    )
    relay_detail = (
        "the same webhooks to a bare relay (V2 check, json.loads, the answer, then one "
        "chat.update through slack_sdk; nothing stored) · "
        f"rounds {', '.join(number(one.relay.p50) for one in rounds)} · median round: p99 "
        f"{number(relay.p99)} ms, its CPU {number(relay.cpu_per_run)} ms a run (the load "
        f"generator and fake Slack's {number(relay.own_cpu_per_run)} ms), "
        f"all {sum(math.isfinite(x) for x in relay.latencies)}/{runs} touched"
    )
    return [
        figure("webhook to Slack p50", p50, "ms", "<", P50_TARGET_MS, detail),
        figure("webhook to Slack p99", p99, "ms", "<", P99_TARGET_MS, tail),
        Figure("webhook to Slack p50, bare relay", relay_p50, "ms", detail=relay_detail),
    ]


async def figures(options: object) -> list[Figure]:
    quick = bool(getattr(options, "quick", False))  # 200 runs, for the tests
    runs, channels = (200, 40) if quick else (RUNS, CHANNELS)
    count = max(1, int(getattr(options, "rounds", 3)))
    connections = max(1, int(getattr(options, "concurrency", CONNECTIONS)))
    rounds = [await measure(runs, channels, connections) for _ in range(count)]
    return latency_figures(rounds, runs, channels, connections)
