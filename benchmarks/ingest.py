"""Webhook ingest: POST /webhooks/thunderphone (signature check, dedup, stored durably before the
2xx) against a bare aiohttp handler, and whether the worker keeps up with events of runs the bot
launched.

- `webhook ingest`: `test-call.completed` events for runs the bot does not know, each with its
  own event id, against a bare aiohttp app that reads the body and answers 200. Target ≥ 0.60x.
- `minimal careful receiver` (information): the official package's V2 check, json.loads and one
  committed SQLite insert, against the same bare app: what care costs without the bot.
- `webhook ingest, launched runs`: `test-call.completed` and `call.graded` for runs seeded in the
  bot's database, their cards already shown in Slack, sent as fast as the bot takes them for as
  long as a round lasts. The inbox (deliveries not yet applied) must drain within a few seconds
  of the load and its peak must not grow round over round.
"""

from __future__ import annotations

import asyncio
import json
import math
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from sqlite_utils import Database

from benchmarks import baselines
from benchmarks.common import (
    Figure,
    LoadResult,
    Options,
    ServerProcess,
    alternate,
    expect,
    median,
    median_result,
    probe,
    ratio_detail,
    ratios,
    run_loadgen,
)
from benchmarks.payloads import CallTemplate, Ids, call_template, event, webhook_requests
from benchmarks.served import THRESHOLD, Inbox, served_bot, thunderphone_url
from bot.blocks.runs import run_card
from bot.outbox import digest
from bot.publish import run_card_key
from bot.sandbox.served import ServedBot
from bot.sandbox.slack import FakeSlack
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from handlers.webhooks import ROUTE
from storage import messages
from storage import runs as run_store
from storage.db import now_iso, open_db
from storage.models import RunRecord

INGEST_TARGET = 0.60
# Requests built per round and per second of it: more than the bot takes on this kind of
# machine, so an event id is not sent twice (a duplicate is answered before it is stored).
EVENTS_PER_SECOND = 12_000
MAX_EVENTS = 80_000
# Launched runs: how soon after the load the inbox must be empty, and how long it is watched.
DRAIN_TARGET = 5.0
DRAIN_WATCH = 15.0
SAMPLE_EVERY = 0.25
CHANNELS = 20  # runs are spread over channels, as a team's would be
STARTED_BY = "U0MARIA"
LAUNCHED = "webhook ingest, launched runs"

assert baselines.WEBHOOK_ROUTE == ROUTE


async def figures(options: Options) -> list[Figure]:
    found = await _ingest(options)
    bot_rate = median([result.rps for result in found.bot]) or float(EVENTS_PER_SECOND)
    ratio = median(ratios(found.bot, found.bare))
    careful = median(ratios(found.careful, found.bare))
    figures = [
        Figure(
            "webhook ingest",
            ratio,
            "x",
            target=INGEST_TARGET,
            against="bare aiohttp",
            detail=ratio_detail(found.bot, found.bare) + _repeats(found.bot, found.sizes),
        ),
        Figure(
            "minimal careful receiver",
            careful,
            "x",
            against="bare aiohttp",
            detail=ratio_detail(found.careful, found.bare, label="careful"),
        ),
    ]
    try:
        figures.append(await _launched(options, bot_rate))
    except Exception as error:
        traceback.print_exc()
        figures.append(Figure(LAUNCHED, 0, "", detail=f"not measured: {error!r}", passed=False))
    return figures


@dataclass
class _Ingest:
    bot: list[LoadResult]
    bare: list[LoadResult]
    careful: list[LoadResult]
    sizes: list[int]


def events_per_round(options: Options) -> int:
    return min(MAX_EVENTS, math.ceil((options.seconds + options.warmup) * EVENTS_PER_SECOND))


def _repeats(results: Sequence[LoadResult], sizes: Sequence[int]) -> str:
    """A warning when a round sent more requests than it had distinct events."""
    repeated = sum(result.sent > size for result, size in zip(results, sizes, strict=True))
    return f" · {repeated} round(s) repeated event ids" if repeated else ""


async def _ingest(options: Options) -> _Ingest:
    count = events_per_round(options)
    sizes: list[int] = []
    careful_db = options.workdir / "careful.db"
    async with (
        served_bot(options, "ingest") as bot,
        ServerProcess("aiohttp", [], options.workdir) as bare,
        ServerProcess(
            "careful",
            ["--secret", _secret(bot), "--db", str(careful_db)],
            options.workdir,
        ) as careful,
    ):
        assert bot.thunderphone is not None
        sandbox = bot.thunderphone
        template = await _template(bot)
        ids = Ids()
        await _check(sandbox, template, ids, bot.url, bare.url, careful.url)

        def requests() -> list[dict[str, object]]:
            envelopes = (
                event("test-call.completed", template.completed(run_id, call_id))
                for run_id, call_id in islice(ids, count)
            )
            return webhook_requests(sandbox, envelopes)

        async def bot_round() -> LoadResult:
            sizes.append(count)
            return await run_loadgen(bot.url, requests(), options)

        async def bare_round() -> LoadResult:
            return await run_loadgen(bare.url, requests(), options)

        async def careful_round() -> LoadResult:
            return await run_loadgen(careful.url, requests(), options)

        results = await alternate(
            options.rounds, {"bot": bot_round, "bare": bare_round, "careful": careful_round}
        )
    return _Ingest(results["bot"], results["bare"], results["careful"], sizes)


async def _check(
    sandbox: ThunderPhoneSandbox,
    template: CallTemplate,
    ids: Ids,
    bot: str,
    bare: str,
    careful: str,
) -> None:
    """Each server takes a signed event as it should (the bot stores it as new)."""
    run_id, call_id = next(ids)
    (delivery,) = webhook_requests(
        sandbox, [event("test-call.completed", template.completed(run_id, call_id))]
    )
    expect("the bot", await probe(bot, delivery), contains='"duplicate": false')
    expect("the bare aiohttp app", await probe(bare, delivery), contains='"ok": true')
    expect("the careful receiver", await probe(careful, delivery), contains='"ok": true')


def _secret(bot: ServedBot) -> str:
    return bot.variables["THUNDERPHONE_WEBHOOK_SECRET"].split(",")[0]


async def _template(bot: ServedBot) -> CallTemplate:
    """One call placed on the bot's sandbox, with nothing delivered to the bot meanwhile."""
    sandbox = bot.thunderphone
    assert sandbox is not None
    address, sandbox.webhook_url = sandbox.webhook_url, None
    try:
        return await call_template(sandbox, thunderphone_url(bot))
    finally:
        sandbox.webhook_url = address


# ---------------------------------------------------------------- launched runs


@dataclass(frozen=True)
class LaunchedRound:
    load: LoadResult
    events: int
    peak_backlog: int
    drained_after: float | None  # seconds after the load ended; None: not within the watch
    left: int  # deliveries still not applied when the watch ended
    worker_rate: float  # events applied per second, from the load's start until drained


def keeps_up(rounds: Sequence[LaunchedRound]) -> bool:
    """Every round's inbox drained within DRAIN_TARGET seconds of its load, and the backlog's
    peak did not grow round over round (half again as high as the first round's, plus a
    hundred, counts as growing)."""
    if not rounds:
        return False
    drained = all(r.drained_after is not None and r.drained_after <= DRAIN_TARGET for r in rounds)
    first = rounds[0].peak_backlog
    growing = any(r.peak_backlog > first * 1.5 + 100 for r in rounds[1:])
    return drained and not growing


def launched_figure(rounds: Sequence[LaunchedRound]) -> Figure:
    drains = [r.drained_after if r.drained_after is not None else math.inf for r in rounds]
    worst = max(drains) if drains else math.inf
    shown = ", ".join(
        f"{d:.1f} s"
        if r.drained_after is not None
        else f"not in {DRAIN_WATCH:g} s ({r.left:,} left)"
        for r, d in zip(rounds, drains, strict=True)
    )
    peaks = ", ".join(f"{r.peak_backlog:,}" for r in rounds)
    rates = median([r.load.rps for r in rounds]) if rounds else 0.0
    worker = median([r.worker_rate for r in rounds]) if rounds else 0.0
    events = median([float(r.events) for r in rounds]) if rounds else 0.0
    p99 = median_result([r.load for r in rounds]).p99_ms if rounds else 0.0
    detail = (
        f"{events:,.0f} events a round at {rates:,.0f} req/s (p99 {p99:.1f} ms)"
        f" · inbox peak {peaks} · drained after {shown} · worker {worker:,.0f} events/s"
    )
    return Figure(
        LAUNCHED,
        worst if not math.isinf(worst) else DRAIN_WATCH,
        "s",
        target=DRAIN_TARGET,
        comparison="<=",
        detail=detail,
        passed=keeps_up(rounds),
    )


async def _launched(options: Options, bot_rate: float) -> Figure:
    # Enough events to keep the bot busy for a round at the rate it ingested unknown runs.
    runs = max(100, math.ceil(bot_rate * (options.seconds + options.warmup) / 2))
    runs = min(runs, MAX_EVENTS // 2)
    async with served_bot(options, "launched") as bot:
        assert bot.thunderphone is not None
        template = await _template(bot)
        channels = [f"C0BENCH{number:02d}" for number in range(CHANNELS)]
        for channel in channels:
            bot.fake.add_channel(channel, f"voice-qa-{channel[-2:]}")
        ids = Ids()
        # Every round's runs are stored before the first round: while the worker applies
        # events, a second writer on the database would only measure itself waiting.
        batches = [list(islice(ids, runs)) for _ in range(options.rounds)]
        for pairs in batches:
            seed_runs(bot, template, pairs, channels)
        inbox = Inbox(bot.db_path)
        try:
            rounds = [
                await _launched_round(bot, template, pairs, inbox, options) for pairs in batches
            ]
        finally:
            inbox.close()
    return launched_figure(rounds)


def seed_runs(
    bot: ServedBot, template: CallTemplate, pairs: Sequence[tuple[int, int]], channels: list[str]
) -> None:
    """Runs the bot launched and whose calls are under way: stored as the bot stores them,
    their cards already shown in Slack, their calls known to the sandbox."""
    assert bot.thunderphone is not None
    db = open_db(str(bot.db_path))
    try:
        for number, (run_id, call_id) in enumerate(pairs):
            channel = channels[number % len(channels)]
            template.add_call(bot.thunderphone, call_id)
            stamp = now_iso()
            run = run_store.save_run(
                db,
                RunRecord(
                    run_id=run_id,
                    team_id=bot.fake.team_id,
                    channel_id=channel,
                    started_by=STARTED_BY,
                    target_type="agent",
                    target_id=int(template.run["target_id"]),
                    target_name=str(template.run["target_name"]),
                    scenario_prompt=str(template.run["scenario_prompt"]),
                    status="in_progress",
                    call_id=call_id,
                    started_at=stamp,
                ),
            )
            _show_card(db, bot.fake, run)
    finally:
        db.close()


def _show_card(db: Database, fake: FakeSlack, run: RunRecord) -> None:
    payload = run_card(run, None, THRESHOLD)
    posted = fake.add_message(run.channel_id, text=payload["text"], blocks=payload.get("blocks"))
    row = messages.want_shown(
        db,
        run_card_key(run.run_id),
        channel=run.channel_id,
        payload=json.dumps(payload),
        digest=digest(payload),
        notify_user=run.started_by,
    )
    messages.mark_posting(db, row.id, row.digest)
    messages.mark_shown(db, row.id, ts=posted.ts, digest=row.digest)


def _launched_events(
    template: CallTemplate, pairs: Sequence[tuple[int, int]]
) -> Iterator[dict[str, Any]]:
    for run_id, call_id in pairs:
        yield event("test-call.completed", template.completed(run_id, call_id))
        yield event("call.graded", template.graded(call_id))


async def _launched_round(
    bot: ServedBot,
    template: CallTemplate,
    pairs: Sequence[tuple[int, int]],
    inbox: Inbox,
    options: Options,
) -> LaunchedRound:
    assert bot.thunderphone is not None
    requests = webhook_requests(bot.thunderphone, _launched_events(template, pairs))
    loop = asyncio.get_running_loop()
    peak = 0
    applied_before = inbox.applied()

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, inbox.backlog())
            await asyncio.sleep(SAMPLE_EVERY)

    sampler = asyncio.create_task(sample())
    started = loop.time()
    try:
        load = await run_loadgen(bot.url, requests, options, once=True)
        ended = loop.time()
        drained_after: float | None = None
        while loop.time() - ended < DRAIN_WATCH:
            if inbox.backlog() == 0:
                drained_after = loop.time() - ended
                break
            await asyncio.sleep(0.1)
    finally:
        sampler.cancel()
    left = inbox.backlog()
    applied = inbox.applied() - applied_before
    elapsed = loop.time() - started
    return LaunchedRound(
        load=load,
        events=len(requests),
        peak_backlog=peak,
        drained_after=drained_after,
        left=left,
        worker_rate=applied / elapsed if elapsed > 0 else 0.0,
    )
