"""What every figure module shares: the options, a figure and how it is reported, the load
generator's result, and servers started as processes on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp

from bot.sandbox.served import REPO, free_port, process_environment

Comparison = Literal[">=", "<=", "<", ">", "=="]
START_TIMEOUT = 30.0  # a fresh interpreter importing Bolt on a busy machine
LOADGEN_GRACE = 60.0  # beyond warm-up and duration, before a load generator is given up on


@dataclass(frozen=True)
class Options:
    """What `python -m benchmarks` was asked for; every figure module receives it."""

    rounds: int = 3
    seconds: float = 5.0
    warmup: float = 1.0
    concurrency: int = 32
    only: frozenset[str] = frozenset()  # module names; empty means every module
    write: bool = True
    docs: Path = REPO / "docs" / "benchmarks.md"
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))


@dataclass(frozen=True)
class Figure:
    """One measured figure. `value` is compared with `target` (when there is one) as
    `comparison` says: `value >= target` for ">=". A figure without a target is shown for
    information and passes or fails nothing. `passed` may be given when the verdict is not a
    comparison of `value` (a check made of several conditions); otherwise it is computed."""

    name: str
    value: float
    unit: str  # "x" for a ratio against a baseline, else the unit of `value` ("ms", "s", ...)
    target: float | None = None
    comparison: Comparison = ">="
    detail: str = ""
    passed: bool | None = None
    against: str = ""  # what a ratio is against, e.g. "bare aiohttp"

    def __post_init__(self) -> None:
        if self.passed is None and self.target is not None:
            object.__setattr__(self, "passed", meets(self.value, self.comparison, self.target))

    @property
    def informative(self) -> bool:
        return self.passed is None


def meets(value: float, comparison: str, target: float) -> bool:
    """Whether `value comparison target` holds; a value not measured (NaN) never does."""
    if math.isnan(value):
        return False
    if comparison == ">=":
        return value >= target
    if comparison == "<=":
        return value <= target
    if comparison == "<":
        return value < target
    if comparison == ">":
        return value > target
    if comparison == "==":
        return value == target
    raise ValueError(f"unknown comparison {comparison!r}")


SYMBOLS = {">=": "≥", "<=": "≤", "<": "<", ">": ">", "==": "="}
NAME_WIDTH = 34


def format_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "not measured"
    if math.isinf(value):
        return f"∞ {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in {"", "count"}:
        return f"{value:,.0f}"
    return f"{value:,.1f} {unit}"


def format_line(figure: Figure) -> str:
    """One line: name, value (with what a ratio is against), target, detail, verdict."""
    shown = format_value(figure.value, figure.unit)
    if figure.against:
        shown += f" {figure.against}"
    parts = [f"{figure.name:<{NAME_WIDTH}} {shown}"]
    if figure.target is not None:
        target = format_value(figure.target, figure.unit)
        parts.append(f"(target {SYMBOLS[figure.comparison]} {target})")
    if figure.detail:
        parts.append(f" {figure.detail}")
    verdict = "info" if figure.passed is None else "PASS" if figure.passed else "FAIL"
    return " ".join(parts) + f"  {verdict}"


def summary(figures: Sequence[Figure]) -> str:
    judged = [figure for figure in figures if figure.passed is not None]
    failed = [figure.name for figure in judged if not figure.passed]
    line = f"{len(judged) - len(failed)} of {len(judged)} figures met their targets"
    if failed:
        line += ": missed " + "; ".join(failed)
    return line


def exit_status(figures: Sequence[Figure]) -> int:
    """1 when any figure missed its target (or none was measured), else 0."""
    if not figures:
        return 1
    return 1 if any(figure.passed is False for figure in figures) else 0


# ---------------------------------------------------------------- load generator results


@dataclass(frozen=True)
class LoadResult:
    """What one run of `benchmarks.loadgen` printed."""

    requests: int  # responses (any status) and failures completed in the measured window
    ok: int  # 2xx among them
    errors: dict[str, int]  # non-2xx by status, failures by exception name
    rps: float  # 2xx per second of the measured window
    p50_ms: float
    p99_ms: float
    seconds: float
    sent: int  # every request sent, warm-up included
    exhausted: bool  # `--once`: the list ran out before the duration did

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadResult:
        return cls(
            requests=int(data["requests"]),
            ok=int(data["ok"]),
            errors={str(key): int(value) for key, value in data["errors"].items()},
            rps=float(data["rps"]),
            p50_ms=float(data["p50_ms"]),
            p99_ms=float(data["p99_ms"]),
            seconds=float(data["seconds"]),
            sent=int(data["sent"]),
            exhausted=bool(data.get("exhausted", False)),
        )

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def describe(self) -> str:
        text = f"{self.rps:,.0f} req/s p50 {self.p50_ms:.1f} ms p99 {self.p99_ms:.1f} ms"
        if self.errors:
            text += " errors " + ", ".join(f"{k}×{v}" for k, v in sorted(self.errors.items()))
        return text


def median_result(results: Sequence[LoadResult]) -> LoadResult:
    """The round with the median rate (its latencies stay those of one real round)."""
    ranked = sorted(results, key=lambda result: result.rps)
    return ranked[(len(ranked) - 1) // 2]


def median(values: Sequence[float]) -> float:
    """The middle value; NaN when there is none."""
    return float(statistics.median(values)) if values else math.nan


Request = dict[str, Any]  # {"method", "path", "headers", "body"}: one pre-built request


async def run_loadgen(
    url: str,
    requests: Sequence[Request],
    options: Options,
    *,
    once: bool = False,
    seconds: float | None = None,
    warmup: float | None = None,
) -> LoadResult:
    """Drive `url` with `benchmarks.loadgen` in its own process, cycling through `requests`
    (each sent at most once with `once`)."""
    duration = options.seconds if seconds is None else seconds
    warm = options.warmup if warmup is None else warmup
    with tempfile.NamedTemporaryFile(
        "w", suffix=".json", prefix="requests-", dir=options.workdir, delete=False
    ) as file:
        json.dump({"requests": list(requests)}, file)
        path = file.name
    try:
        args = [
            sys.executable,
            "-m",
            "benchmarks.loadgen",
            "--url",
            url,
            "--requests",
            path,
            "--connections",
            str(options.concurrency),
            "--duration",
            str(duration),
            "--warmup",
            str(warm),
            *(["--once"] if once else []),
        ]
        process = await asyncio.create_subprocess_exec(
            *args,
            env=process_environment({}),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(duration + warm + LOADGEN_GRACE):
                stdout, stderr = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError("the load generator did not finish in time") from None
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed:\n{stderr.decode(errors='replace')}")
        last = stdout.decode().strip().splitlines()[-1]
        return LoadResult.from_json(json.loads(last))
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


async def probe(url: str, request: Request) -> tuple[int, str]:
    """Send one request as the load generator would; its status and body. A figure module
    checks each server answers as it should before measuring it, so a server that answers
    every request with an error is never mistaken for a fast one."""
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.request(
            request.get("method", "POST"),
            url + request["path"],
            headers=request.get("headers") or {},
            data=str(request.get("body") or "").encode(),
        ) as response,
    ):
        return response.status, await response.text()


def expect(
    what: str,
    answer: tuple[int, str],
    *,
    status: int = 200,
    contains: str = "",
    exact: str | None = None,
) -> None:
    """Refuse to measure a server that does not answer as it should."""
    code, body = answer
    if code != status or contains not in body or (exact is not None and body != exact):
        wanted = repr(exact) if exact is not None else f"a body with {contains!r}"
        raise RuntimeError(f"{what} answered {code} {body[:500]!r}, not {status} and {wanted}")


# ---------------------------------------------------------------- servers as processes


class ServerProcess:
    """A baseline server (`python -m benchmarks.baselines KIND ...`) on a free loopback port,
    output to files; `stop` (idempotent) makes sure it is gone."""

    def __init__(self, kind: str, args: Sequence[str], workdir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.args = [
            sys.executable,
            "-m",
            "benchmarks.baselines",
            kind,
            "--port",
            str(self.port),
            *args,
        ]
        self.workdir = workdir
        self.log = workdir / f"baseline-{kind}.log"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self.args,
                env=process_environment({}),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        await wait_until_healthy(self.url + "/healthz", self._process, self.log)
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.terminate()
        try:
            async with asyncio.timeout(10):
                await self._process.wait()
        except TimeoutError:
            self._process.kill()
            await self._process.wait()

    async def __aenter__(self) -> ServerProcess:
        try:
            return await self.start()
        except BaseException:
            await self.stop()
            raise

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def wait_until_healthy(
    url: str, process: asyncio.subprocess.Process, log: Path, timeout: float = START_TIMEOUT
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"{url} exited while starting:\n{log.read_text()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            if loop.time() >= deadline:
                raise RuntimeError(f"{url} did not answer within {timeout}s:\n{log.read_text()}")
            await asyncio.sleep(0.1)


# ---------------------------------------------------------------- rounds


async def alternate(
    rounds: int, contenders: Mapping[str, Callable[[], Awaitable[LoadResult]]]
) -> dict[str, list[LoadResult]]:
    """Run each contender (a coroutine function giving a LoadResult) `rounds` times, turning
    the order round by round (bot first, then baseline first, ...), so a noisy moment of the
    machine hits them all alike."""
    names = list(contenders)
    results: dict[str, list[LoadResult]] = {name: [] for name in names}
    for number in range(rounds):
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            results[name].append(await contenders[name]())
    return results


def ratios(ours: Sequence[LoadResult], theirs: Sequence[LoadResult]) -> list[float]:
    """Throughput ratio of each round (0 when the baseline answered nothing)."""
    return [a.rps / b.rps if b.rps else 0.0 for a, b in zip(ours, theirs, strict=True)]


def ratio_detail(
    ours: Sequence[LoadResult], theirs: Sequence[LoadResult], *, label: str = "bot"
) -> str:
    """The median round of each side, and the ratio of every round."""
    each = ", ".join(f"{value:.2f}" for value in ratios(ours, theirs))
    return (
        f"{label} {median_result(ours).describe()} · baseline {median_result(theirs).describe()}"
        f" · rounds {each}"
    )


# ---------------------------------------------------------------- the machine


def machine_description() -> str:
    """Cores, CPU model, Python version and OS, for the record of a run."""
    cores = os.cpu_count() or 0
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    system = platform.platform(terse=True)
    with contextlib.suppress(OSError):
        release = platform.freedesktop_os_release()
        system = f"{release.get('PRETTY_NAME', '')} ({platform.system()} {platform.release()})"
    python = f"Python {platform.python_version()}"
    parts = [f"{cores} cores", model, python, system]
    return ", ".join(part for part in parts if part)
