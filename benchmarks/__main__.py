"""`python -m benchmarks`: run every figure module (or those named by --only), print one line per
figure, append the run to docs/benchmarks.md, exit 1 when a figure missed its target."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import pkgutil
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import benchmarks
from benchmarks.common import (
    Figure,
    Options,
    exit_status,
    format_line,
    machine_description,
    summary,
)
from bot.sandbox.served import REPO

FigureModule = Callable[[Options], Awaitable[list[Figure]]]
MIN_ROUNDS = 3

INTRO = """# Benchmarks

`make bench` (or `python -m benchmarks`) measures the bot against baselines started in the same
run on the same machine: the bot as production runs it (`thunderbot serve`, against the fake
Slack and the ThunderPhone sandbox on loopback) and each baseline in its own process, driven by
the same load generator in a third process (32 keep-alive connections by default). Rounds
alternate between the bot and its baseline, and each figure is the median of the rounds.

How to read it: machines are noisy and this one is shared, so absolute numbers are only context.
The ratio is the figure, and only ratios from one run are compared with each other; a
ratio of 0.71x means the bot answered 71% as many requests per second as the baseline. p50 and
p99 are latencies of the median round. Each entry says what machine it ran on.

Two cautions. The load generator is Python (aiohttp's client): against the bare aiohttp handler
it may be the bottleneck rather than the server, so ratios against bare aiohttp read higher than
the servers alone would. The bare Bolt app checks its token once with `auth.test` against the
fake Slack, as the bot's Bolt app does; after that, both pay only for dispatch.

The figures:

- **webhook ingest**: POST /webhooks/thunderphone with `test-call.completed` events for runs the
  bot does not know, each with its own event id, so every one is checked (V2 signature),
  deduplicated and stored in SQLite before the 2xx; against a bare aiohttp handler that reads
  the body and answers 200. Target ≥ 0.60x.
- **minimal careful receiver** (information): the official package's V2 check, `json.loads` and
  one committed SQLite insert, against the same bare handler: what care costs without the bot.
- **webhook ingest, launched runs**: `test-call.completed` and `call.graded` for runs the bot
  launched (seeded in its database, cards already in Slack), sent as fast as the bot takes
  them. Passes when the inbox (deliveries stored and not yet applied) is empty within 5 s of the
  load in every round, and its peak does not grow round over round. The value is the slowest
  drain.
- **ack /testcall run agent:12 "…"**: the slash command's answer (parse, ThunderPhone lookup,
  cached for minutes, launch stored, confirmation) against a bare Bolt app whose listener only
  acks. Target ≥ 0.80x, and p99 under 100 ms at 32 concurrent.
- **ack /testcall help**: against the same bare Bolt app. Target ≥ 0.95x.

Entries are appended by each run, newest last.
"""


def figure_modules() -> dict[str, ModuleType]:
    """Every module of the package that defines `figures`, by name."""
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if callable(getattr(module, "figures", None)):
            found[info.name] = module
    return found


def parse_options(argv: Sequence[str] | None) -> tuple[Options, bool]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds a round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections")
    parser.add_argument("--only", default="", help="comma-separated figure modules, like ack")
    parser.add_argument(
        "--no-write", action="store_true", help="do not append to docs/benchmarks.md"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds <= 0 or args.concurrency < 1 or args.warmup < 0:
        parser.error("rounds, seconds and concurrency must be positive")
    workdir = Path(tempfile.mkdtemp(prefix="thunderbot-bench-"))
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    options = Options(
        rounds=args.rounds,
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        only=only,
        write=not args.no_write,
        workdir=workdir,
    )
    return options, args.keep


async def run_all(options: Options, modules: dict[str, ModuleType]) -> list[Figure]:
    figures: list[Figure] = []
    for name, module in modules.items():
        measure: FigureModule = module.figures
        try:
            measured = await measure(options)
        except Exception as error:
            traceback.print_exc()
            measured = [Figure(f"{name} (not measured)", 0, "", detail=repr(error), passed=False)]
        for figure in measured:
            print(format_line(figure), flush=True)
        figures += measured
    return figures


def commit() -> str:
    """The checkout's commit, marked when it has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" with uncommitted changes" if dirty else "")


def entry(options: Options, figures: Sequence[Figure], when: datetime) -> str:
    """One run as appended to docs/benchmarks.md."""
    lines = [format_line(figure) for figure in figures] + [summary(figures)]
    command = (
        f"python -m benchmarks --rounds {options.rounds} --seconds {options.seconds:g}"
        f" --concurrency {options.concurrency}"
    )
    if options.only:
        command += " --only " + ",".join(sorted(options.only))
    body = "\n".join(lines)
    return (
        f"\n## {when:%Y-%m-%d %H:%M} UTC\n\n"
        f"Machine: {machine_description()}. Commit {commit()}. `{command}`.\n\n"
        f"```text\n{body}\n```\n"
    )


def write_entry(path: Path, text: str) -> None:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(INTRO)
    with path.open("a") as file:
        file.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    options, keep = parse_options(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        modules = figure_modules()
        unknown = sorted(options.only - set(modules))
        if unknown:
            print(f"no figure module named {', '.join(unknown)}; there are {', '.join(modules)}")
            return 2
        chosen = {n: m for n, m in modules.items() if not options.only or n in options.only}
        print(f"Machine: {machine_description()}")
        print(
            f"{options.rounds} rounds of {options.seconds:g} s (after {options.warmup:g} s of "
            f"warm-up) at {options.concurrency} connections; modules: {', '.join(chosen)}",
            flush=True,
        )
        if options.rounds < MIN_ROUNDS:
            print(f"fewer than {MIN_ROUNDS} rounds: a quick look, not a measurement")
        figures = asyncio.run(run_all(options, chosen))
        print(summary(figures))
        if options.write:
            write_entry(options.docs, entry(options, figures, datetime.now(UTC)))
            print(f"appended to {options.docs}")
        return exit_status(figures)
    finally:
        if keep:
            print(f"work directory kept: {options.workdir}")
        else:
            shutil.rmtree(options.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
