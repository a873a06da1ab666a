"""The benchmark machinery: the load generator counts what it sends and what failed, and a run's
figures are reported and judged as documented. No timing value is asserted on."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from thunderphone.webhooks import SIGNATURE_HEADER

from benchmarks import baselines, slack_latency
from benchmarks.__main__ import figure_modules
from benchmarks.common import (
    Figure,
    LoadResult,
    Options,
    ServerProcess,
    exit_status,
    format_line,
    run_loadgen,
    summary,
)
from benchmarks.ingest import DRAIN_TARGET, LaunchedRound, keeps_up, launched_figure
from benchmarks.loadgen import percentile
from bot.sandbox.slack import FakeSlack
from bot.sandbox.thunderphone import ThunderPhoneSandbox

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
KEYS = {
    "requests",
    "ok",
    "errors",
    "rps",
    "p50_ms",
    "p99_ms",
    "seconds",
    "sent",
    "exhausted",
    "connections",
}


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def ok_server() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": True})

    async for url in serve(answer):
        yield url


@pytest.fixture
async def failing_server() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"ok": False}, status=500)

    async for url in serve(answer):
        yield url


def short(tmp_path: Path) -> Options:
    return Options(seconds=0.5, warmup=0.1, concurrency=4, workdir=tmp_path, write=False)


REQUESTS = [
    {"method": "POST", "path": f"/hook/{n}", "headers": {"X-N": str(n)}, "body": f'{{"n":{n}}}'}
    for n in range(3)
]


async def test_the_load_generator_counts_every_answer(ok_server: str, tmp_path: Path) -> None:
    result = await run_loadgen(ok_server, REQUESTS, short(tmp_path))

    assert result.requests > 0
    assert result.ok == result.requests
    assert result.errors == {}
    assert result.sent >= result.requests
    assert result.rps > 0
    assert not result.exhausted


async def test_the_load_generator_counts_errors_by_status(
    failing_server: str, tmp_path: Path
) -> None:
    result = await run_loadgen(failing_server, REQUESTS, short(tmp_path))

    assert result.requests > 0
    assert result.ok == 0
    assert result.errors == {"500": result.requests}
    assert result.rps == 0


async def test_once_sends_each_request_once(ok_server: str, tmp_path: Path) -> None:
    result = await run_loadgen(ok_server, REQUESTS, short(tmp_path), once=True, warmup=0)

    assert result.sent == len(REQUESTS)
    assert result.exhausted


def test_the_printed_line_has_every_key() -> None:
    from benchmarks.loadgen import Tally, summarise

    tally = Tally(measure_from=0.0, measure_until=10.0)
    tally.record(1.0, 1.5, None)
    tally.record(2.0, 2.1, "503")
    tally.record(11.0, 11.5, None)  # after the window: not counted
    printed = summarise(tally, 10.0, exhausted=False, connections=4)

    assert set(printed) == KEYS
    assert (printed["requests"], printed["ok"], printed["errors"]) == (2, 1, {"503": 1})
    assert LoadResult.from_json(printed).error_count == 1


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]

    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.99) == 0.0


def test_a_ratio_line_shows_value_baseline_target_detail_and_verdict() -> None:
    figure = Figure(
        "webhook ingest",
        0.712,
        "x",
        target=0.6,
        against="bare aiohttp",
        detail="bot 4,210 req/s · baseline 5,930 req/s",
    )

    line = format_line(figure)

    assert line.startswith("webhook ingest ")
    assert "0.71x bare aiohttp (target ≥ 0.60x)  bot 4,210 req/s · baseline 5,930 req/s" in line
    assert line.endswith("  PASS")


def test_a_missed_target_fails_and_an_informative_figure_is_neither() -> None:
    slow = Figure("ack p99", 120.0, "ms", target=100.0, comparison="<")
    info = Figure("minimal careful receiver", 0.3, "x", against="bare aiohttp")

    assert slow.passed is False
    assert format_line(slow).endswith("120.0 ms (target < 100.0 ms)  FAIL")
    assert info.passed is None
    assert format_line(info).endswith("  info")


def test_the_exit_status_is_1_when_any_figure_missed_its_target() -> None:
    passing = Figure("a", 0.9, "x", target=0.8)
    failing = Figure("b", 0.5, "x", target=0.8)
    info = Figure("c", 0.1, "x")
    judged = Figure("d", 3.0, "s", target=5.0, comparison="<=", passed=False)

    assert exit_status([passing, info]) == 0
    assert exit_status([passing, failing, info]) == 1
    assert exit_status([judged]) == 1
    assert exit_status([]) == 1
    assert summary([passing, failing, info]) == "1 of 2 figures met their targets: missed b"


def launched(peak: int, drained_after: float | None, left: int = 0) -> LaunchedRound:
    load = LoadResult(
        requests=100,
        ok=100,
        errors={},
        rps=50.0,
        p50_ms=1.0,
        p99_ms=2.0,
        seconds=2.0,
        sent=100,
        exhausted=True,
    )
    return LaunchedRound(load, 100, peak, drained_after, left, worker_rate=40.0)


def test_the_worker_keeps_up_when_every_round_drains_and_the_backlog_does_not_grow() -> None:
    steady = [launched(400, 1.0), launched(450, 1.2), launched(380, 0.9)]
    slow_drain = [launched(400, 1.0), launched(400, DRAIN_TARGET + 1)]
    never = [launched(400, None, left=250)]
    growing = [launched(400, 1.0), launched(900, 2.0), launched(1500, 3.0)]

    assert keeps_up(steady)
    assert not keeps_up(slow_drain)
    assert not keeps_up(never)
    assert not keeps_up(growing)
    assert not keeps_up([])
    assert launched_figure(steady).passed is True
    line = format_line(launched_figure(never))
    assert "250 left" in line
    assert line.endswith("FAIL")


def test_figure_modules_are_found_by_their_figures_function() -> None:
    modules = figure_modules()

    assert {"ingest", "ack"} <= set(modules)
    assert "loadgen" not in modules


async def test_the_bare_relay_updates_the_card_a_signed_webhook_names(tmp_path: Path) -> None:
    fake = FakeSlack(channels={"C0RELAY": "relay"})
    await fake.start()
    sandbox = ThunderPhoneSandbox()
    card = fake.add_message("C0RELAY", text="Run 41 · in progress")
    payload = {"text": "Run 41 · completed", "blocks": []}
    cards = tmp_path / "cards.json"
    cards.write_text(json.dumps({"41": ["C0RELAY", card.ts, payload]}))
    relay = ServerProcess(
        "relay",
        [
            *("--secret", sandbox.webhook_secret),
            *("--slack-api-url", fake.api_url),
            *("--slack-token", fake.token),
            *("--cards", str(cards)),
        ],
        tmp_path,
    )
    url = ""
    try:
        await relay.start()
        url = relay.url + baselines.WEBHOOK_ROUTE
        body = json.dumps({"type": "test-call.completed", "data": {"test_call_run": {"id": 41}}})
        async with aiohttp.ClientSession() as session:
            forged = {"Content-Type": "application/json", SIGNATURE_HEADER: "t=1,v1=00"}
            async with session.post(url, data=body, headers=forged) as response:
                assert response.status == 401
            signed = sandbox.signature_headers(url, body.encode(), int(time.time()))
            async with session.post(url, data=body, headers=signed) as response:
                assert response.status == 200
        for _ in range(200):
            if fake.calls_to("chat.update"):
                break
            await asyncio.sleep(0.02)
    finally:
        await relay.stop()
        await fake.close()

    updates = fake.calls_to("chat.update")
    assert [(call.args["channel"], call.args["ts"]) for call in updates] == [("C0RELAY", card.ts)]
    shown = fake.find_message("C0RELAY", card.ts)
    assert shown is not None and shown.text == "Run 41 · completed"


async def test_the_latency_figures_measure_the_bot_and_the_relay_at_the_concurrency_asked() -> None:
    """One small round end to end: every run's card is edited, by the bot and by the relay,
    with the webhooks sent over the connections asked for."""
    options = SimpleNamespace(quick=True, rounds=1, concurrency=4)

    p50, p99, relay = await slack_latency.figures(options)

    assert (p50.name, p99.name, relay.name) == (
        "webhook to Slack p50",
        "webhook to Slack p99",
        "webhook to Slack p50, bare relay",
    )
    assert "200 runs · 40 channels · 4 connections" in p50.detail
    assert "all 200/200 touched" in p50.detail
    assert "first calls {'chat.update': 200}" in p50.detail
    assert "so 4 webhooks in flight wait" in p99.detail
    assert "all 200/200 touched" in relay.detail
    assert math.isfinite(p50.value) and math.isfinite(relay.value)
