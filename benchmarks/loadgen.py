"""The load generator, run as its own process so it never shares a core's time slice with the
server it measures:

    python -m benchmarks.loadgen --url http://127.0.0.1:8080 --requests requests.json \\
        [--connections 32] [--duration 5] [--warmup 1] [--once]

`requests.json` is `{"requests": [{"method", "path", "headers", "body"}, ...]}`, pre-built and
pre-signed. `--connections` keep-alive connections each send one request at a time, taking the
next from the list (cycling; with `--once` each is sent at most once and the run ends when the
list does). Responses completed during the warm-up are not counted. One JSON line is printed:

    {"requests": 21050, "ok": 21050, "errors": {}, "rps": 4210.0, "p50_ms": 6.1,
     "p99_ms": 19.8, "seconds": 5.0, "sent": 25300, "exhausted": false, "connections": 32}

`requests` counts every response and failure completed in the measured window; `errors` counts
the non-2xx ones by status and the failures by exception name; `rps` is 2xx per second of the
window; p50 and p99 are latencies in milliseconds of every counted request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

FAILURE_PAUSE = 0.01  # after a failed connection, so a dead server is not spun on
REQUEST_TIMEOUT = 30.0


@dataclass
class Tally:
    """What the connections counted, shared between them (one event loop, no locks needed)."""

    measure_from: float
    measure_until: float
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    sent: int = 0

    def record(self, started: float, ended: float, outcome: str | None) -> None:
        """`outcome` is None for a 2xx, else the status or failure it counts as."""
        if not self.measure_from <= ended <= self.measure_until:
            return
        self.latencies.append(ended - started)
        if outcome is None:
            self.ok += 1
        else:
            self.errors[outcome] += 1


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (0 for none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(tally: Tally, seconds: float, *, exhausted: bool, connections: int) -> dict[str, Any]:
    ordered = sorted(tally.latencies)
    window = max(seconds, 1e-9)
    return {
        "requests": len(ordered),
        "ok": tally.ok,
        "errors": dict(sorted(tally.errors.items())),
        "rps": round(tally.ok / window, 1),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
        "seconds": round(seconds, 3),
        "sent": tally.sent,
        "exhausted": exhausted,
        "connections": connections,
    }


class Cursor:
    """Hands out the requests in order, cycling, or each once."""

    def __init__(self, count: int, *, once: bool) -> None:
        self._count = count
        self._once = once
        self._next = 0

    def take(self) -> int | None:
        if self._once and self._next >= self._count:
            return None
        index = self._next % self._count
        self._next += 1
        return index

    @property
    def exhausted(self) -> bool:
        return self._once and self._next >= self._count


async def connection(
    session: aiohttp.ClientSession,
    base_url: str,
    requests: Sequence[dict[str, Any]],
    cursor: Cursor,
    tally: Tally,
    stop_at: float,
) -> None:
    while time.perf_counter() < stop_at:
        index = cursor.take()
        if index is None:
            return
        request = requests[index]
        body = request.get("body") or ""
        data = body.encode() if isinstance(body, str) else None
        started = time.perf_counter()
        tally.sent += 1
        try:
            async with session.request(
                request.get("method", "POST"),
                base_url + request["path"],
                headers=request.get("headers") or {},
                data=data,
            ) as response:
                await response.read()
                status = response.status
            outcome = None if 200 <= status < 300 else str(status)
        except (aiohttp.ClientError, TimeoutError) as error:
            outcome = type(error).__name__
            tally.record(started, time.perf_counter(), outcome)
            await asyncio.sleep(FAILURE_PAUSE)
            continue
        tally.record(started, time.perf_counter(), outcome)


async def generate(
    base_url: str,
    requests: Sequence[dict[str, Any]],
    *,
    connections: int,
    duration: float,
    warmup: float,
    once: bool,
) -> dict[str, Any]:
    if not requests:
        raise ValueError("no requests to send")
    cursor = Cursor(len(requests), once=once)
    start = time.perf_counter()
    tally = Tally(measure_from=start + warmup, measure_until=start + warmup + duration)
    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(
        base_url=None, connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
    ) as session:
        await asyncio.gather(
            *(
                connection(session, base_url, requests, cursor, tally, tally.measure_until)
                for _ in range(connections)
            )
        )
    ended = time.perf_counter()
    # With --once the list may run out early: the window is what was actually measured.
    window = max(0.0, min(ended, tally.measure_until) - tally.measure_from)
    return summarise(tally, window, exhausted=cursor.exhausted, connections=connections)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description=__doc__)
    parser.add_argument("--url", required=True, help="base URL, like http://127.0.0.1:8080")
    parser.add_argument("--requests", required=True, help="JSON file of pre-built requests")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured first")
    parser.add_argument("--once", action="store_true", help="send each request at most once")
    args = parser.parse_args(argv)
    with open(args.requests, encoding="utf-8") as file:
        requests = json.load(file)["requests"]
    result = asyncio.run(
        generate(
            args.url.rstrip("/"),
            requests,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            once=args.once,
        )
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
