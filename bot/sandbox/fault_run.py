"""The fault run: batches started from Slack while ThunderPhone and Slack misbehave and the bot
is killed, then a count of what people see.

`thunderbot serve` runs as a real process (`ServedBot`) against the fake Slack and the
ThunderPhone sandbox on loopback. People type `/testcall batch agent:12 "..." ...` and press
Start, one batch after another, in a few channels, while:

- ThunderPhone drops a share of its webhooks, sends a share twice, delays each a little and
  keeps no order between a run's events (`WebhookFaults`);
- a share of API requests answer 5xx, 429 or late (`ApiFaults`; a create's 5xx comes only
  after ThunderPhone made the runs, see `CREATE_FAULTS`);
- Slack answers a share of the bot's calls with 429 bursts, errors, lost answers and hangs
  (`SlackChaos`);
- the bot is killed with SIGKILL mid-way (`kills` times, while runs are moving and webhooks are
  arriving; the last `kills_while_sending` of them the moment a batch's create reaches
  ThunderPhone, after which the person presses Start again) and started again on the same
  database.

A batch ThunderPhone refuses (a 429 on the create) is typed again, as a person would. Once
everything has settled, the run counts, per run ThunderPhone made, the result replies Slack
shows; per launch, the creates ThunderPhone received; and checks every batch card's final
tally and what the bot still holds as work. It ends with the line

    runs N · results posted N · duplicates 0 · lost 0 · relaunches 0

`python -m bot.sandbox.fault_run` (`make faults`) runs 10 batches of 20 runs; it exits 1 when a
run's result is missing or repeated, a launch was sent twice, a card is wrong or work is left,
and 2 when it could not go on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import platform
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import sqlite_utils

from bot import ids
from bot.sandbox.served import ServedBot
from bot.sandbox.slack import Ephemeral, Message, SlackChaos
from bot.sandbox.slack_render import Json
from bot.sandbox.thunderphone import (
    ApiFaults,
    RecordedRequest,
    ThunderPhoneSandbox,
    WebhookFaults,
)
from storage import batches as batch_store
from storage import launches, messages
from storage import runs as run_store

BATCHES_PATH = "/v1/test-call-batches"
# What a create may meet. A create that fails before ThunderPhone made anything leaves the bot
# unsure; it calls the launch off only once ThunderPhone's list has not shown it for 10 minutes
# (`SEARCH_WINDOW`), longer than this run lasts, so that case is left to tests/test_run_flow.py
# and `--create-faults error --timeout 900`. A lost answer (made, then a 5xx) is looked up at
# once; a 429 is a clear refusal, and the person types the batch again.
CREATE_FAULTS = ("lost", "rate_limited", "slow")
# The Web API methods the bot's outbox uses for the messages it owns.
OUTBOX_METHODS = frozenset(
    {
        "chat.postMessage",
        "chat.update",
        "chat.delete",
        "conversations.history",
        "conversations.replies",
        "conversations.join",
    }
)
# Rate-limit bursts are what Slack sends most; errors, lost answers and hangs now and then.
SLACK_KINDS = ("burst", "burst", "burst", "error", "lost", "hang")
START_ANSWERS = (
    "Started",
    "Already started",
    "Already being started",
    "Couldn't start",
    "didn't start",
    "can't tell yet",
    "did not start",
)
REFUSED = ("Couldn't start", "didn't start", "did not start")
MAX_TRIES = 4  # times a person types a refused batch again
CARD_LINK = re.compile(r"/archives/(?P<channel>C[A-Z0-9]+)/p(?P<ts>\d{7,})")
THRESHOLD_SCORE = 80  # the bot's default threshold, as a percentage


@dataclass(frozen=True)
class FaultPlan:
    """What the run does; the defaults are `make faults`."""

    batches: int = 10
    runs_per_batch: int = 20
    kills: int = 2
    seed: int = 20261201
    drop: float = 0.2
    duplicate: float = 0.2
    api_fault_rate: float = 0.1
    slack_fault_rate: float = 0.1
    channels: int = 3
    step_seconds: float = 0.3  # each lifecycle step of a run in the sandbox
    poll_seconds: float = 0.5  # THUNDERBOT_POLL_SECONDS: how soon dropped webhooks are made up
    grade_grace: float = 2.0  # THUNDERBOT_GRADE_GRACE
    timeout: float = 420.0  # for the whole run
    create_faults: tuple[str, ...] = CREATE_FAULTS
    # Of the kills, how many (the last ones) land the moment a batch's create reaches
    # ThunderPhone, before the bot can read the answer, instead of after a batch has started.
    # The bot looks such a batch up only after `PART_ANSWER_TIMEOUT` (3 minutes).
    kills_while_sending: int = 1


@dataclass
class BatchSent:
    """One batch as a person started it: its prompts, where its card is, how many tries."""

    channel: str
    prompts: list[str]
    card_ts: str | None = None
    tries: int = 0
    answer: str = ""


@dataclass
class FaultReport:
    """What the run saw: runs ThunderPhone made, result replies Slack shows for them (repeated
    ones counted), runs with none, creates beyond one per launch, and everything else wrong."""

    runs: int = 0
    results_posted: int = 0
    duplicates: int = 0
    lost: int = 0
    relaunches: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def line(self) -> str:
        return (
            f"runs {self.runs} · results posted {self.results_posted} · "
            f"duplicates {self.duplicates} · lost {self.lost} · relaunches {self.relaunches}"
        )

    @property
    def ok(self) -> bool:
        counts_right = self.results_posted == self.runs and self.runs > 0
        zeros = self.duplicates == self.lost == self.relaunches == 0
        return counts_right and zeros and not self.problems


def prompts_for(batch: int, runs: int) -> list[str]:
    """Unique prompts whose outcomes are fixed: most pass, some calls fail, some score low."""
    prompts = []
    for n in range(runs):
        topic = f"Fault run batch {batch + 1} call {n + 1}: ask about refunds."
        if n % 10 == 3:
            prompts.append(f"[fail] {topic}")
        elif n % 10 == 7:
            prompts.append(f"[score: 40] {topic}")
        else:
            prompts.append(f"[score: {90 + n % 9}] {topic}")
    return prompts


def passes(prompt: str) -> bool:
    found = re.search(r"\[score: (\d+)\]", prompt)
    return found is not None and int(found.group(1)) >= THRESHOLD_SCORE


def shown(item: Message | Ephemeral) -> str:
    """Everything a message shows, as one searchable string."""
    return item.text + "\n" + repr(item.blocks)


def _card_ts(text: str) -> str | None:
    found = CARD_LINK.search(text)
    if found is None:
        return None
    digits = found.group("ts")
    return f"{digits[:-6]}.{digits[-6:]}"


def result_counts(
    runs: list[Json], sent: list[BatchSent], replies: dict[str, list[Message]]
) -> dict[int, int]:
    """For every run ThunderPhone made (its run objects): how many replies in its batch's
    channel (`replies`) show the run's prompt as their heading."""
    counts: dict[int, int] = {}
    by_prompt = {prompt: batch for batch in sent for prompt in batch.prompts}
    for run in runs:
        prompt = str(run["scenario_prompt"])
        batch = by_prompt.get(prompt)
        heading = f"“{prompt}”"
        found = replies.get(batch.channel, []) if batch is not None else []
        counts[int(run["id"])] = sum(heading in shown(reply) for reply in found)
    return counts


def _creates(requests: list[RecordedRequest]) -> list[RecordedRequest]:
    return [r for r in requests if r.method == "POST" and r.path == BATCHES_PATH]


def tally(counts: dict[int, int], requests: list[RecordedRequest]) -> FaultReport:
    """The counts of the last line: results per run, and creates per launch (a batch part is
    sent with a name of its own) among the requests ThunderPhone received."""
    creates = Counter(str((request.json or {}).get("name")) for request in _creates(requests))
    return FaultReport(
        runs=len(counts),
        results_posted=sum(counts.values()),
        duplicates=sum(max(0, count - 1) for count in counts.values()),
        lost=sum(count == 0 for count in counts.values()),
        relaunches=sum(count - 1 for count in creates.values()),
    )


def kill_points(plan: FaultPlan) -> set[int]:
    """After which batches (0-based) the bot is killed: spread over the middle of the run."""
    return {plan.batches * (k + 1) // (plan.kills + 1) - 1 for k in range(plan.kills)} - {-1}


class FaultRun:
    """One fault run: the bot as a process, the fakes with their faults, the people typing."""

    def __init__(self, plan: FaultPlan, workdir: Path, say: Callable[[str], None]) -> None:
        self.plan = plan
        self.say = say
        self.random = random.Random(plan.seed)
        self.served = ServedBot(
            workdir,
            step_seconds=plan.step_seconds,
            poll_seconds=plan.poll_seconds,
            env={
                "THUNDERBOT_GRADE_GRACE": str(plan.grade_grace),
                # A short call timeout keeps the wait before a lost post is looked for short.
                "THUNDERBOT_SLACK_TIMEOUT": "2",
                "THUNDERBOT_POST_INTERVAL": "0.1",
            },
        )
        self.channels = [f"C0FAULT{n + 1}" for n in range(plan.channels)]
        self.sent: list[BatchSent] = []
        self.kills = 0

    @property
    def sandbox(self) -> ThunderPhoneSandbox:
        assert self.served.thunderphone is not None
        return self.served.thunderphone

    async def run(self) -> FaultReport:
        plan = self.plan
        fake = self.served.fake
        for n, channel in enumerate(self.channels):
            fake.add_channel(channel, f"fault-qa-{n + 1}")
        async with self.served:
            sandbox = self.sandbox
            sandbox.webhook_faults = WebhookFaults(
                drop=plan.drop,
                duplicate=plan.duplicate,
                shuffle=True,
                delay=(0.0, 0.5),
                seed=plan.seed,
            )
            sandbox.api_faults = ApiFaults(
                rate=plan.api_fault_rate, seed=plan.seed + 1, create_kinds=plan.create_faults
            )
            fake.chaos = SlackChaos(
                rate=plan.slack_fault_rate,
                seed=plan.seed + 2,
                methods=OUTBOX_METHODS,
                kinds=SLACK_KINDS,
                hang_seconds=(0.5, 3.0),
            )
            kills = kill_points(plan)
            while_sending = set(sorted(kills)[max(0, len(kills) - plan.kills_while_sending) :])
            for index in range(plan.batches):
                channel = self.channels[index % len(self.channels)]
                batch = BatchSent(channel, prompts_for(index, plan.runs_per_batch))
                self.sent.append(batch)
                if index in while_sending:
                    await self.start_batch_killed_while_sending(batch)
                else:
                    await self.start_batch(batch)
                self.say(
                    f"batch {index + 1}/{plan.batches} in {channel}: {batch.answer}"
                    + (f" (typed {batch.tries} times)" if batch.tries > 1 else "")
                )
                if index in kills - while_sending:
                    await self.kill_and_restart()
            await self.settle()
            return self.report()

    async def start_batch(self, batch: BatchSent) -> None:
        """Type the command and press Start; type it again if ThunderPhone refused it."""
        quoted = " ".join(f'"{prompt}"' for prompt in batch.prompts)
        text = f"batch agent:12 --stagger 0 {quoted}"
        for _ in range(MAX_TRIES):
            batch.tries += 1
            user = self.served.user("U0MARIA", batch.channel)
            reply = await user.slash(text)
            if reply.ephemeral is None:
                raise FaultRunError(f"/testcall {text[:60]}… got {reply.status}: {reply.body_text}")
            confirmation = reply.ephemeral
            status = await user.click(confirmation, ids.START_BATCH)
            if status != 200:
                raise FaultRunError(f"Start got HTTP {status}")
            answer = await self.served.fake.wait_for(partial(_answer, confirmation), timeout=90)
            batch.answer = answer.split("\n")[0][:80]
            if not any(word in answer for word in REFUSED):
                batch.card_ts = _card_ts(answer)
                if batch.card_ts is None and "can't tell yet" in answer:
                    # No link in this answer: the card went up in the channel before the send.
                    cards = self._cards(batch.channel)
                    batch.card_ts = cards[-1].ts if cards else None
                return
        raise FaultRunError(f"ThunderPhone refused a batch {MAX_TRIES} times: {batch.answer}")

    async def start_batch_killed_while_sending(self, batch: BatchSent) -> None:
        """Type the command and press Start; kill the bot the moment its create reaches
        ThunderPhone, before it can read the answer; start it again, and press Start once more,
        as a person who saw nothing happen would."""
        sandbox = self.sandbox
        faults = sandbox.api_faults
        # This create is answered 3 s late: ThunderPhone makes the runs after the bot is gone.
        sandbox.api_faults = ApiFaults(
            rate=1.0, kinds=(), create_kinds=("slow",), slow_seconds=(3.0, 3.0)
        )
        quoted = " ".join(f'"{prompt}"' for prompt in batch.prompts)
        batch.tries += 1
        user = self.served.user("U0MARIA", batch.channel)
        reply = await user.slash(f"batch agent:12 --stagger 0 {quoted}")
        if reply.ephemeral is None:
            raise FaultRunError(f"/testcall batch got {reply.status}: {reply.body_text}")
        confirmation = reply.ephemeral
        creates = len(_creates(sandbox.requests))
        if (status := await user.click(confirmation, ids.START_BATCH)) != 200:
            raise FaultRunError(f"Start got HTTP {status}")
        await self.served.fake.wait_for(
            lambda: len(_creates(sandbox.requests)) > creates or None, timeout=90
        )
        await self.kill_and_restart(pause=False)
        sandbox.api_faults = faults
        if ids.START_BATCH not in shown(confirmation):
            # The click was taken before the kill: the confirmation no longer offers Start.
            batch.answer = "killed while sending; the confirmation shows: " + confirmation.text
            return
        again = self.served.user("U0MARIA", batch.channel)
        if (status := await again.click(confirmation, ids.START_BATCH)) != 200:
            raise FaultRunError(f"Start got HTTP {status} after the restart")
        answer = await self.served.fake.wait_for(partial(_answer, confirmation), timeout=90)
        batch.answer = "killed while sending; Start again: " + answer.split("\n")[0][:60]
        batch.card_ts = _card_ts(answer)

    async def kill_and_restart(self, *, pause: bool = True) -> None:
        """SIGKILL (after a moment, while runs are moving and webhooks arrive, unless `pause`
        is False), then start on the same database."""
        if pause:
            await asyncio.sleep(self.random.uniform(0.2, 1.5))
        exited = await self.served.stop_bot(signal.SIGKILL)
        if exited.code != -signal.SIGKILL:
            raise FaultRunError(f"the bot was not killed: exit code {exited.code}")
        self.kills += 1
        await asyncio.sleep(self.random.uniform(0.5, 1.5))  # webhooks fail meanwhile
        await self.served.start_bot()
        self.say(f"killed the bot with SIGKILL and started it again ({self.kills})")

    async def settle(self) -> None:
        """Until ThunderPhone is done, every run has its result and the bot holds no work, and
        it stays so for a moment (a late duplicate would show then)."""
        await self.sandbox.wait_until_settled(timeout=self.plan.timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.plan.timeout
        quiet_since: float | None = None
        while loop.time() < deadline:
            if self._complete():
                quiet_since = quiet_since or loop.time()
                if loop.time() - quiet_since >= 3 * self.plan.poll_seconds + 2:
                    return
            else:
                quiet_since = None
            await asyncio.sleep(0.25)

    def _complete(self) -> bool:
        counts = self._result_counts()
        if not counts or any(count == 0 for count in counts.values()):
            return False
        if any(self._pending().values()):
            return False
        return all(self._card_problem(batch) is None for batch in self.sent)

    # ---------------------------------------------------------------- what people see

    def _cards(self, channel: str) -> list[Message]:
        return [m for m in self.served.fake.messages.get(channel, []) if m.thread_ts is None]

    def _replies(self, channel: str) -> list[Message]:
        return [m for m in self.served.fake.messages.get(channel, []) if m.thread_ts is not None]

    def _result_counts(self) -> dict[int, int]:
        """For every run ThunderPhone made: how many result replies Slack shows for it."""
        replies = {channel: self._replies(channel) for channel in self.channels}
        return result_counts(list(self.sandbox.runs.values()), self.sent, replies)

    def _card_of(self, batch: BatchSent) -> str | None:
        """The ts of a batch's card: linked from the answer to Start, else the thread its
        results went to (an answer given after a restart may not link it)."""
        if batch.card_ts is not None:
            return batch.card_ts
        headings = {f"“{prompt}”" for prompt in batch.prompts}
        threads = {
            reply.thread_ts
            for reply in self._replies(batch.channel)
            if any(heading in shown(reply) for heading in headings)
        }
        return threads.pop() if len(threads) == 1 else None

    def _card_problem(self, batch: BatchSent) -> str | None:
        card_ts = self._card_of(batch)
        if card_ts is None:
            return f"no card for the batch answered {batch.answer!r}"
        card = self.served.fake.find_message(batch.channel, card_ts)
        if card is None:
            return f"the card {card_ts} is not in {batch.channel}"
        total = len(batch.prompts)
        passed = sum(passes(p) for p in batch.prompts)
        failed = total - passed
        tally = f"{total}/{total} · {passed} passed · {failed} failed"
        verdict = f"❌ {failed} of {total} failed" if failed else f"✅ All {total} passed"
        text = shown(card)
        if tally not in text or verdict not in text:
            return f"the card in {batch.channel} shows {card.text!r}, not {verdict!r} ({tally})"
        return None

    def _reply_problems(self) -> list[str]:
        """Every reply in its batch's thread, with the verdict its prompt fixes."""
        problems = []
        for batch in self.sent:
            for prompt in batch.prompts:
                heading = f"“{prompt}”"
                for reply in self._replies(batch.channel):
                    if heading not in shown(reply):
                        continue
                    if reply.thread_ts != self._card_of(batch):
                        problems.append(f"the result of {prompt!r} is not under its card")
                    if passes(prompt) != ("✅ Passed" in shown(reply)):
                        problems.append(f"the result of {prompt!r} shows {reply.text!r}")
        return problems

    def _pending(self) -> dict[str, int]:
        """Work the bot still holds: deliveries not applied, messages not delivered, launches
        and batch parts not settled, runs not over."""
        db = sqlite_utils.Database(self.served.db_path)
        try:
            inbox = db.execute(
                "select count(*) from webhook_events where processed_at is null"
            ).fetchone()[0]
            outbox = db.execute(
                "select count(*) from slack_messages where state in (?, ?, ?)",
                list(messages.WORK_STATES),
            ).fetchone()[0]
            return {
                "inbox": int(inbox),
                "outbox": int(outbox),
                "launches": int(launches.any_unsettled(db)),
                "batch parts": int(batch_store.any_unsettled_parts(db)),
                "runs": len(run_store.active_run_ids(db)),
            }
        finally:
            db.close()

    def _failed_messages(self) -> int:
        db = sqlite_utils.Database(self.served.db_path)
        try:
            row = db.execute("select count(*) from slack_messages where state = 'failed'")
            return int(row.fetchone()[0])
        finally:
            db.close()

    def report(self) -> FaultReport:
        report = tally(self._result_counts(), self.sandbox.requests)
        singles = [
            r for r in self.sandbox.requests if r.method == "POST" and r.path == "/v1/test-calls"
        ]
        if singles:
            report.problems.append(f"{len(singles)} single test calls were created")
        prompts = Counter(str(run["scenario_prompt"]) for run in self.sandbox.runs.values())
        twice = [prompt for prompt, count in prompts.items() if count > 1]
        if twice:
            report.problems.append(f"{len(twice)} prompts were run more than once")
        expected = sum(len(batch.prompts) for batch in self.sent)
        if report.runs != expected:
            report.problems.append(f"ThunderPhone made {report.runs} runs, {expected} were started")
        report.problems += [p for b in self.sent if (p := self._card_problem(b)) is not None]
        report.problems += self._reply_problems()
        pending = {name: count for name, count in self._pending().items() if count}
        if pending:
            report.problems.append(f"left pending: {pending}")
        if failed := self._failed_messages():
            report.problems.append(f"{failed} Slack messages were given up")
        tops = [
            m
            for channel in self.channels
            for m in self.served.fake.messages.get(channel, [])
            if m.thread_ts is None
        ]
        cards = len(tops)
        started = {self._card_of(batch) for batch in self.sent}
        for card in tops:
            if card.ts not in started and "did not start" not in shown(card):
                report.problems.append(f"a card of a refused batch shows {card.text!r}")
        # Each Start puts one card up before anything is spent; a refused batch's card stays,
        # saying it did not start.
        tries = sum(batch.tries for batch in self.sent)
        if cards != tries:
            report.problems.append(f"{cards} cards for {tries} Start clicks")
        report.notes = self._notes()
        return report

    def _notes(self) -> list[str]:
        sandbox, fake = self.sandbox, self.served.fake
        webhooks = sandbox.webhook_faults
        api = sandbox.api_faults
        chaos = fake.chaos
        sent = len({d.event_id for d in sandbox.deliveries})
        notes = [f"bot killed with SIGKILL and restarted: {self.kills}"]
        if webhooks is not None:
            notes.append(
                f"webhooks: {sent} events delivered, {len(webhooks.dropped)} dropped, "
                f"{webhooks.duplicated} sent twice, order shuffled"
            )
        if api is not None:
            notes.append(f"ThunderPhone API faults: {_tally(api.injected)}")
        if chaos is not None:
            notes.append(f"Slack faults: {_tally(chaos.injected)}")
        retyped = sum(batch.tries - 1 for batch in self.sent)
        if retyped:
            notes.append(f"batches typed again after a refusal: {retyped}")
        return notes


class FaultRunError(Exception):
    """The run could not go on (the bot did not answer, or refused everything)."""


def machine() -> str:
    """Cores and Python version, for the record of a run."""
    return f"{os.cpu_count() or 0} cores, Python {platform.python_version()}, {platform.system()}"


def _answer(confirmation: Ephemeral) -> str | None:
    text = shown(confirmation)
    return text if any(word in text for word in START_ANSWERS) else None


def _tally(counts: Counter[tuple[str, str]]) -> str:
    kinds: Counter[str] = Counter()
    for (_, kind), count in counts.items():
        kinds[kind] += count
    return ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())) or "none"


async def run_faults(
    plan: FaultPlan, workdir: Path, say: Callable[[str], None] = print
) -> FaultReport:
    """Run the plan with the bot's files in `workdir`; the report says what people saw."""
    async with asyncio.timeout(plan.timeout * 2):
        return await FaultRun(plan, workdir, say).run()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.fault_run", description=__doc__)
    defaults = FaultPlan()
    parser.add_argument("--batches", type=int, default=defaults.batches)
    parser.add_argument("--runs", type=int, default=defaults.runs_per_batch, help="per batch")
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--drop", type=float, default=defaults.drop, help="webhooks dropped")
    parser.add_argument("--duplicate", type=float, default=defaults.duplicate)
    parser.add_argument("--api-faults", type=float, default=defaults.api_fault_rate)
    parser.add_argument("--slack-faults", type=float, default=defaults.slack_fault_rate)
    parser.add_argument(
        "--create-faults",
        default=",".join(defaults.create_faults),
        help="what a create may meet, among error,lost,rate_limited,slow (error and lost "
        "leave a batch unclear for minutes: give --timeout 900)",
    )
    parser.add_argument("--timeout", type=float, default=defaults.timeout)
    parser.add_argument(
        "--kills-while-sending",
        type=int,
        default=defaults.kills_while_sending,
        help="how many of the kills land the moment a create reaches ThunderPhone",
    )
    parser.add_argument("--workdir", type=Path, help="keep the bot's database and logs here")
    args = parser.parse_args(argv)
    plan = FaultPlan(
        batches=args.batches,
        runs_per_batch=args.runs,
        kills=args.kills,
        seed=args.seed,
        drop=args.drop,
        duplicate=args.duplicate,
        api_fault_rate=args.api_faults,
        slack_fault_rate=args.slack_faults,
        create_faults=tuple(kind for kind in args.create_faults.split(",") if kind),
        timeout=args.timeout,
        kills_while_sending=min(args.kills_while_sending, args.kills),
    )
    logging.basicConfig(level=logging.ERROR)
    began = time.monotonic()
    print(f"fault run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}")
    print(
        f"{plan.batches} batches of {plan.runs_per_batch} runs, seed {plan.seed}: webhooks "
        f"{plan.drop:.0%} dropped, {plan.duplicate:.0%} duplicated, shuffled; "
        f"{plan.api_fault_rate:.0%} of API calls and {plan.slack_fault_rate:.0%} of Slack "
        f"calls failing; {plan.kills} SIGKILLs, {plan.kills_while_sending} of them while a "
        "create is on its way"
    )
    with contextlib.ExitStack() as stack:
        workdir = args.workdir
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="faults-")))
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            report = asyncio.run(run_faults(plan, workdir))
        except FaultRunError as error:
            print(f"fault run stopped: {error}", file=sys.stderr)
            return 2
        for note in report.notes:
            print(note)
        for problem in report.problems:
            print(f"problem: {problem}")
        print(f"took {time.monotonic() - began:.0f} s")
        print(report.line)
        return 0 if report.ok else 1
    return 1  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
