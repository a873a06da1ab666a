"""`python -m benchmarks.extra`: the Slack figures and the scale figures, one line each.

    python -m benchmarks.extra                  # all three groups, full size
    python -m benchmarks.extra --quick          # smaller loads, for a first look
    python -m benchmarks.extra --only scale     # one group (repeatable)

Exits 1 when any figure misses its target.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable

from benchmarks import scale, slack_calls, slack_latency
from benchmarks.figure import Figure, line

GROUPS: dict[str, Callable[[object], Awaitable[list[Figure]]]] = {
    "slack_latency": slack_latency.figures,
    "slack_calls": slack_calls.figures,
    "scale": scale.figures,
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.extra", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller loads")
    parser.add_argument("--only", action="append", choices=list(GROUPS), help="run only these")
    return parser.parse_args(argv)


async def run(options: argparse.Namespace) -> list[Figure]:
    found: list[Figure] = []
    for name in options.only or list(GROUPS):
        began = time.monotonic()
        figures = await GROUPS[name](options)
        for item in figures:
            print(line(item), flush=True)
        print(f"  ({name}: {time.monotonic() - began:.0f} s)", file=sys.stderr, flush=True)
        found += figures
    return found


def main(argv: list[str] | None = None) -> int:
    figures = asyncio.run(run(parse(argv)))
    return 0 if figures and all(item.passed for item in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
