"""Slash-command acks: how fast the bot answers `/testcall` on /slack/events, against a bare
Bolt app (same signing secret, its aiohttp adapter on one route) whose listener only acks.

- `ack /testcall run agent:12 "…"`: the bot parses the command, looks the agent up with
  ThunderPhone (cached for minutes, so once a round at most), stores the launch it proposes and
  answers with the confirmation. Target ≥ 0.80x, and p99 under 100 ms at the given concurrency.
- `ack /testcall help`: parse and answer the help text. Target ≥ 0.95x.
"""

from __future__ import annotations

from benchmarks import baselines
from benchmarks.common import (
    Figure,
    LoadResult,
    Options,
    ServerProcess,
    alternate,
    expect,
    median,
    probe,
    ratio_detail,
    ratios,
    run_loadgen,
)
from benchmarks.payloads import slash_requests
from benchmarks.served import served_bot
from bot.sandbox.served import ServedBot
from bot.server import SLACK_ROUTE
from handlers.commands import COMMAND

RUN_TARGET = 0.80
RUN_P99_TARGET_MS = 100.0
HELP_TARGET = 0.95
PROMPTS = (
    "Book a table for two on Friday at eight",
    "Ask to move an appointment to next Tuesday morning",
    "Complain about a late delivery and ask for a refund",
    "Ask whether the shop is open on public holidays",
)
# In the confirmation the bot answers a run with: the button that starts the paid call.
CONFIRMATION = "Start test call"
COPIES = 16  # requests per prompt, each with its own trigger id

assert (baselines.SLACK_ROUTE, baselines.COMMAND) == (SLACK_ROUTE, COMMAND)


async def figures(options: Options) -> list[Figure]:
    async with (
        served_bot(options, "ack") as bot,
        ServerProcess(
            "bolt",
            [
                "--signing-secret",
                _signing_secret(bot),
                "--slack-api-url",
                bot.fake.api_url,
                "--slack-token",
                bot.fake.token,
            ],
            options.workdir,
        ) as bolt,
    ):
        run_texts = [f'run agent:12 "{prompt}"' for prompt in PROMPTS]
        await _check(bot, bolt, run_texts[0])
        run = await _compare(options, bot, bolt, run_texts)
        help_ = await _compare(options, bot, bolt, ["help"])
    run_p99 = median([result.p99_ms for result in run["bot"]])
    return [
        Figure(
            'ack /testcall run agent:12 "…"',
            median(ratios(run["bot"], run["bolt"])),
            "x",
            target=RUN_TARGET,
            against="bare Bolt",
            detail=ratio_detail(run["bot"], run["bolt"]),
        ),
        Figure(
            f"ack /testcall run p99 at {options.concurrency}",
            run_p99,
            "ms",
            target=RUN_P99_TARGET_MS,
            comparison="<",
            detail="rounds " + ", ".join(f"{result.p99_ms:.1f}" for result in run["bot"]),
        ),
        Figure(
            "ack /testcall help",
            median(ratios(help_["bot"], help_["bolt"])),
            "x",
            target=HELP_TARGET,
            against="bare Bolt",
            detail=ratio_detail(help_["bot"], help_["bolt"]),
        ),
    ]


async def _check(bot: ServedBot, bolt: ServerProcess, run_text: str) -> None:
    """Each server answers as it should: the bot with a confirmation and the help, the bare
    Bolt app with an empty ack."""
    secret = _signing_secret(bot)
    (run,) = slash_requests(bot.fake, secret, [run_text])
    (help_,) = slash_requests(bot.fake, secret, ["help"])
    expect("the bot, to /testcall run", await probe(bot.url, run), contains=CONFIRMATION)
    expect("the bot, to /testcall help", await probe(bot.url, help_), contains=COMMAND)
    expect("the bare Bolt app", await probe(bolt.url, run), exact="")


def _signing_secret(bot: ServedBot) -> str:
    return bot.variables["SLACK_SIGNING_SECRET"]


async def _compare(
    options: Options, bot: ServedBot, bolt: ServerProcess, texts: list[str]
) -> dict[str, list[LoadResult]]:
    secret = _signing_secret(bot)

    async def against(url: str) -> LoadResult:
        # Signed as the round starts: Slack's signatures are good for five minutes.
        requests = slash_requests(bot.fake, secret, texts, copies=COPIES)
        return await run_loadgen(url, requests, options)

    async def bot_round() -> LoadResult:
        return await against(bot.url)

    async def bolt_round() -> LoadResult:
        return await against(bolt.url)

    return await alternate(options.rounds, {"bot": bot_round, "bolt": bolt_round})
