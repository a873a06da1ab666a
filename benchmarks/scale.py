"""Scale: does the bot stay small and quick with a long history stored?

The same set-up twice, once with 100 runs stored and once with 100,000: the database is seeded
with plain inserts in the bot's own schema (several teams, channels and people; completed,
failed and a few active runs; grades, transcripts, review flags, the webhook inbox, the Slack
messages of every card and result; single runs and batches, some of them suite and smoke runs
of a dozen saved suites), then `thunderbot serve` starts on it in a subprocess, against the
fake Slack and the ThunderPhone sandbox in this process, with production's settings.

Measured, each as the median of several requests end to end once warmed up:
- App Home: an `app_home_opened` event, signed as Slack sends it, until the fake Slack receives
  the `views.publish`;
- the suite list: `/testcall suite list` until its ack;
and the bot's resident memory (VmRSS in /proc/<pid>/status) after start-up and after the App
Home renders. The figures are the ratios big/small, and the memory with the big history.

When a ratio misses, the queries behind that surface are explained (`EXPLAIN QUERY PLAN`) and
timed on the big database, and the index that would avoid a full scan is added to the
benchmark's own copy and the surface measured again, so the report says what fixes it.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from benchmarks.figure import Figure, figure, median, number
from benchmarks.slack_latency import wait_quiet
from bot.sandbox.served import ServedBot
from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_user import SlackUser
from storage.db import open_db

SMALL, BIG = 100, 100_000
REQUESTS, WARM_UP = 15, 3
RSS_TARGET_MB = 150.0
RATIO_TARGET = 2.0
TEAM = "T0SANDBOX"  # the fake Slack's workspace: App Home reads its runs
TEAMS = ((TEAM, 0.8), ("T0NORTH", 0.12), ("T0SOUTH", 0.08))
CHANNELS_PER_TEAM = 30
USERS_PER_TEAM = 20
AGENTS = (12, 13, 14, 15, 16, 17, 18, 19)
NUMBERS = (34, 35)
SUITES = 12
ACTIVE = 3  # runs still under way: the newest ones
OLDEST_DAYS, NEWEST_DAYS = 365, 2
END_REASONS = ("caller_hangup", "agent_hangup", "max_duration", "silence_timeout")
OUTCOMES = ("success", "partial", "failure")
TOPICS = (
    "a refund for order {n}",
    "opening hours on public holidays",
    "changing the delivery address of order {n}",
    "a late delivery, order {n}",
    "cancelling a subscription",
    "a damaged item in order {n}",
    "booking a table for {n} people",
    "a wrong charge of ${n}",
)


# ------------------------------------------------------------------------ seeding


@dataclass
class History:
    """Rows for each table, in the bot's schema, built by `build_history`."""

    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, table: str, row: dict[str, Any]) -> None:
        self.tables.setdefault(table, []).append(row)

    def count(self, table: str) -> int:
        return len(self.tables.get(table, []))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _ts(moment: datetime, counter: int) -> str:
    """A Slack message ts at `moment`, unique through `counter`."""
    return f"{int(moment.timestamp())}.{counter % 1_000_000:06d}"


def _digest(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def _payload(text: str, lines: int) -> str:
    """A stored message payload about as long as the bot's cards and results."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    blocks += [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{text} · line {n}"}]}
        for n in range(lines)
    ]
    return json.dumps({"text": text, "blocks": blocks}, ensure_ascii=False)


class _Builder:
    def __init__(self, runs: int, seed: int, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.runs = runs
        self.history = History()
        self.run_id = 100_000
        self.call_id = 500_000_000
        self.message_id = 0
        self.counter = 0
        self.teams = [name for name, _ in TEAMS]
        self.weights = [weight for _, weight in TEAMS]
        self.suite_cases: dict[str, list[dict[str, Any]]] = {}
        self.baselines: dict[tuple[str, str, int], dict[str, Any]] = {}

    # -- people and places

    def team(self) -> str:
        return self.rng.choices(self.teams, self.weights)[0]

    def channel(self, team: str) -> str:
        return f"C0{team[2:6]}{self.rng.randrange(CHANNELS_PER_TEAM):03d}"

    def user(self, team: str) -> str:
        return f"U0{team[2:6]}{self.rng.randrange(USERS_PER_TEAM):03d}"

    def target(self) -> tuple[str, int]:
        if self.rng.random() < 0.1:
            return "phone_number", self.rng.choice(NUMBERS)
        return "agent", self.rng.choice(AGENTS)

    def prompt(self) -> str:
        topic = self.rng.choice(TOPICS).format(n=self.rng.randrange(2, 99_999))
        return f"You are a caller asking about {topic}. Be polite but insist on an answer."

    # -- messages

    def message(
        self,
        owner: tuple[str, str, str],
        channel: str,
        at: datetime,
        text: str,
        *,
        parent_id: int | None = None,
        notify: str | None = None,
    ) -> int:
        self.message_id += 1
        self.counter += 1
        payload = _payload(text, 2 if owner[2] == "card" else 3)
        digest = _digest(payload)
        self.history.add(
            "slack_messages",
            {
                "id": self.message_id,
                "owner_kind": owner[0],
                "owner_id": owner[1],
                "role": owner[2],
                "channel": channel,
                "parent_id": parent_id,
                "ts": _ts(at, self.counter),
                "payload": payload,
                "digest": digest,
                "shown_digest": digest,
                "state": "sent",
                "attempts": 0,
                "next_attempt_at": None,
                "posted_at": _iso(at),
                "error": None,
                "notify_user": notify,
                "created_at": _iso(at),
                "updated_at": _iso(at),
            },
        )
        return self.message_id

    # -- suites

    def suites(self) -> None:
        start = self.now - timedelta(days=OLDEST_DAYS + 30)
        for index in range(SUITES):
            name = f"regression-{index:02d}"
            target_type, target_id = "agent", AGENTS[index % len(AGENTS)]
            stamp = _iso(start + timedelta(days=index))
            self.history.add(
                "suites",
                {
                    "name": name,
                    "target_type": target_type,
                    "target_id": target_id,
                    "settings": json.dumps({"repeat": 1 + index % 3}),
                    "created_by": self.user(TEAM),
                    "created_at": stamp,
                    "updated_at": stamp,
                },
            )
            cases = []
            for position in range(1, 5 + self.rng.randrange(26)):
                expected = None if position % 3 else json.dumps(f"resolves case {position}")
                case = {
                    "suite": name,
                    "position": position,
                    "name": f"case-{position:02d}",
                    "scenario_prompt": self.prompt(),
                    "expected_outcome": expected,
                }
                cases.append(case)
                self.history.add("suite_cases", case)
            self.suite_cases[name] = cases
        for index, (kind, target) in enumerate((("agent", 12), ("agent", 13))):
            self.history.add(
                "smoke_suites",
                {
                    "target_type": kind,
                    "target_id": target,
                    "suite": f"regression-{index:02d}",
                    "marked_by": self.user(TEAM),
                    "marked_at": _iso(start),
                },
            )
        for index in range(5):
            kind, target = self.target()
            self.history.add(
                "aliases",
                {
                    "team_id": TEAM,
                    "name": f"alias-{index}",
                    "target_type": kind,
                    "target_id": target,
                    "created_by": self.user(TEAM),
                    "created_at": _iso(start),
                },
            )

    # -- runs

    def run(
        self,
        at: datetime,
        *,
        team: str,
        channel: str,
        user: str,
        target: tuple[str, int],
        prompt: str,
        active: bool,
        batch_id: str | None = None,
        position: int | None = None,
        launch_id: str | None = None,
    ) -> dict[str, Any]:
        self.run_id += 1
        roll = self.rng.random()
        status = (
            self.rng.choice(("queued", "in_progress"))
            if active
            else ("failed" if roll < 0.12 else "completed")
        )
        started = at + timedelta(seconds=self.rng.uniform(1, 20))
        duration = self.rng.randrange(20, 300)
        done = status in ("completed", "failed")
        call_id = None
        if status in ("completed", "in_progress"):
            self.call_id += 1
            call_id = self.call_id
        completed = started + timedelta(seconds=duration) if done else None
        row = {
            "run_id": self.run_id,
            "launch_id": launch_id,
            "team_id": team,
            "channel_id": channel,
            "started_by": user,
            "target_type": target[0],
            "target_id": target[1],
            "target_name": f"{target[0]}-{target[1]}",
            "direction": "outbound" if self.rng.random() < 0.8 else "inbound",
            "mode": "bot" if self.rng.random() < 0.9 else "sip",
            "caller_number": None,
            "scenario_prompt": prompt,
            "status": status,
            "call_id": call_id,
            "error_message": "The call could not be connected." if status == "failed" else None,
            "duration_seconds": duration if status == "completed" else None,
            "cost_cents": self.rng.randrange(10, 400) if status == "completed" else None,
            "end_reason": self.rng.choice(END_REASONS) if status == "completed" else None,
            "created_at": _iso(at),
            "started_at": _iso(started) if status != "queued" else None,
            "completed_at": _iso(completed) if completed else None,
            "updated_at": _iso((completed or at) + timedelta(seconds=5)),
            "batch_id": batch_id,
            "position": position,
        }
        self.history.add("runs", row)
        for action, cost in (("consented", self.rng.randrange(10, 400)), ("launched", None)):
            self.history.add(
                "audit_events",
                {
                    "at": _iso(at),
                    "team_id": team,
                    "channel_id": channel,
                    "user_id": user,
                    "action": action,
                    "subject_kind": "run",
                    "subject_id": str(self.run_id),
                    "detail": "",
                    "cost_cents": cost,
                },
            )
        if status == "completed" and call_id is not None:
            self.details(row, call_id, completed or at)
        if done:
            self.webhook(row, completed or at)
        return row

    def details(self, run: dict[str, Any], call_id: int, at: datetime) -> None:
        entries = [
            {
                "speaker": "agent" if turn % 2 else "caller",
                "text": f"Turn {turn}: " + self.rng.choice(TOPICS).format(n=turn),
                "start_ms": turn * 4000,
                "end_ms": turn * 4000 + 3500,
            }
            for turn in range(4 + self.rng.randrange(5))
        ]
        self.history.add(
            "transcripts",
            {"call_id": call_id, "entries": json.dumps(entries), "fetched_at": _iso(at)},
        )
        if self.rng.random() < 0.97:
            graded = at + timedelta(seconds=self.rng.uniform(5, 60))
            self.history.add(
                "grades",
                {
                    "call_id": call_id,
                    "score": round(self.rng.uniform(0.3, 1.0), 2),
                    "status": "completed",
                    "call_outcome": self.rng.choice(OUTCOMES),
                    "summary": "The caller asked; the agent answered.",
                    "outcome_reasoning": "The request was handled before the call ended.",
                    "grader_model": "grader-1",
                    "graded_at": _iso(graded),
                    "received_at": _iso(graded),
                },
            )
            self.webhook(run, graded, kind="call.graded")
        if self.rng.random() < 0.003:
            self.history.add(
                "flags",
                {
                    "run_id": run["run_id"],
                    "call_id": call_id,
                    "user_id": run["started_by"],
                    "severity": self.rng.choice(("info", "warning", "critical")),
                    "title": "Agent gave the wrong opening hours",
                    "description": "",
                    "turn": 2,
                    "status": "filed",
                    "issue_id": 4000 + run["run_id"] % 1000,
                    "trace_id": None,
                    "permalink": None,
                    "error": None,
                    "created_at": _iso(at + timedelta(minutes=5)),
                },
            )

    def webhook(self, run: dict[str, Any], at: datetime, kind: str = "test-call.completed") -> None:
        body = json.dumps(
            {
                "event_id": str(uuid.UUID(int=self.rng.getrandbits(128))),
                "type": kind,
                "data": {
                    "test_call_run": {
                        key: run[key] for key in ("run_id", "status", "call_id", "scenario_prompt")
                    }
                },
            }
        )
        self.history.add(
            "webhook_events",
            {
                "key": _digest(body),
                "event_type": kind,
                "body": body,
                "received_at": _iso(at),
                "processed_at": _iso(at + timedelta(milliseconds=40)),
                "attempts": 0,
                "next_attempt_at": None,
                "error": None,
            },
        )

    def single(self, at: datetime, active: bool) -> int:
        team = self.team()
        channel, user, target = self.channel(team), self.user(team), self.target()
        launch_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        prompt = self.prompt()
        run = self.run(
            at,
            team=team,
            channel=channel,
            user=user,
            target=target,
            prompt=prompt,
            active=active,
            launch_id=launch_id,
        )
        self.history.add(
            "launches",
            {
                "id": launch_id,
                "team_id": team,
                "channel_id": channel,
                "user_id": user,
                "target_type": target[0],
                "target_id": target[1],
                "target_label": f"{target[0]}:{target[1]}",
                "direction": run["direction"],
                "mode": run["mode"],
                "caller_number": None,
                "scenario_prompt": prompt,
                "status": "launched",
                "run_id": run["run_id"],
                "error": None,
                "decided_by": user,
                "decided_at": _iso(at),
                "created_at": _iso(at - timedelta(seconds=20)),
            },
        )
        owner = str(run["run_id"])
        card = self.message(("run", owner, "card"), channel, at, prompt, notify=user)
        if run["status"] in ("completed", "failed"):
            self.message(("run", owner, "result"), channel, at, prompt, parent_id=card, notify=user)
        return 1

    def batch(self, at: datetime, size: int) -> int:
        team = self.team()
        channel, user = self.channel(team), self.user(team)
        roll = self.rng.random()
        suite = self.rng.choice(sorted(self.suite_cases)) if roll < 0.5 else None
        kind = "batch" if suite is None else ("smoke" if roll < 0.1 else "suite")
        cases = self.suite_cases[suite][:size] if suite else []
        size = len(cases) or size
        target = self.target()
        batch_id = uuid.UUID(int=self.rng.getrandbits(128)).hex
        card = self.message(("batch", batch_id, "card"), channel, at, f"batch {batch_id}")
        finished = at
        for position in range(size):
            case = cases[position] if cases else None
            prompt = case["scenario_prompt"] if case else self.prompt()
            run = self.run(
                at,
                team=team,
                channel=channel,
                user=user,
                target=target,
                prompt=prompt,
                active=False,
                batch_id=batch_id,
                position=position,
            )
            finished = max(finished, datetime.fromisoformat(run["updated_at"]))
            self.history.add(
                "batch_items",
                {
                    "batch_id": batch_id,
                    "position": position,
                    "part": position // 20,
                    "case_name": case["name"] if case else None,
                    "prompt": prompt,
                    "expected": case["expected_outcome"] if case else None,
                    "attempt": 1,
                    "run_id": run["run_id"],
                    "verdict": self.rng.choice(("same", "fixed", "broke", "flaky"))
                    if suite
                    else None,
                },
            )
            self.message(
                ("run", str(run["run_id"]), "result"),
                channel,
                at,
                prompt,
                parent_id=card,
                notify=user,
            )
        self.history.add(
            "batch_parts",
            {
                "batch_id": batch_id,
                "part": 0,
                "status": "sent",
                "tp_batch_id": 300 + self.history.count("batch_parts"),
                "error": None,
                "updated_at": _iso(at),
            },
        )
        blessed = suite is not None and self.rng.random() < 0.05
        self.history.add(
            "batches",
            {
                "id": batch_id,
                "team_id": team,
                "channel_id": channel,
                "user_id": user,
                "target_type": target[0],
                "target_id": target[1],
                "target_label": f"{target[0]}:{target[1]}",
                "target_name": f"{target[0]}-{target[1]}",
                "direction": "outbound",
                "caller_number": None,
                "stagger": 0,
                "repeat": 1,
                "suite": suite,
                "status": "launched",
                "error": None,
                "decided_by": user,
                "decided_at": _iso(at),
                "created_at": _iso(at - timedelta(seconds=30)),
                "finished_at": _iso(finished),
                "blessed_by": user if blessed else None,
                "blessed_at": _iso(finished) if blessed else None,
                "kind": kind,
                "compare_id": None,
            },
        )
        if suite is not None:
            self.message(("batch", batch_id, "summary"), channel, finished, suite, parent_id=card)
            if blessed:
                self.baselines[(suite, *target)] = (  # the latest blessed run stands
                    {
                        "suite": suite,
                        "target_type": target[0],
                        "target_id": target[1],
                        "batch_id": batch_id,
                        "blessed_by": user,
                        "blessed_at": _iso(finished),
                    }
                )
        return size

    def build(self) -> History:
        self.suites()
        span = timedelta(days=OLDEST_DAYS - NEWEST_DAYS).total_seconds()
        oldest = self.now - timedelta(days=OLDEST_DAYS)
        settled = max(self.runs - ACTIVE, 0)
        made = 0
        groups: list[int] = []  # sizes: 1 for a single run, more for a batch
        while made < settled:
            size = 1 if self.rng.random() < 0.75 else self.rng.randrange(3, 21)
            size = min(size, settled - made)
            groups.append(size)
            made += size
        moments = sorted(self.rng.uniform(0, span) for _ in groups)
        for size, offset in zip(groups, moments, strict=True):
            at = oldest + timedelta(seconds=offset)
            if size == 1:
                self.single(at, active=False)
            else:
                got = self.batch(at, size)
                for _ in range(size - got):  # a suite with fewer cases: the rest single runs
                    self.single(at, active=False)
        for index in range(self.runs - settled):
            self.single(self.now - timedelta(minutes=5 * (ACTIVE - index)), active=True)
        for baseline in self.baselines.values():
            self.history.add("suite_baselines", baseline)
        return self.history


def build_history(runs: int, *, seed: int = 1, now: datetime | None = None) -> History:
    """Rows for `runs` runs (single runs and batches over a year) and everything around them."""
    return _Builder(runs, seed, now or datetime.now(UTC)).build()


def seed_history(db: Database, runs: int, *, seed: int = 1) -> dict[str, int]:
    """Insert a history of `runs` runs into a migrated database; returns rows per table.

    Every row names only columns the schema has (an unknown one is an error, not a new column),
    so the seed follows the bot's schema as it changes."""
    history = build_history(runs, seed=seed)
    counts: dict[str, int] = {}
    with db.atomic():
        for table, rows in history.tables.items():
            columns = set(db.table(table).columns_dict)
            unknown = {key for row in rows[:1] for key in row} - columns
            if unknown:
                raise ValueError(f"{table} has no columns {sorted(unknown)}")
            db.table(table).insert_all(rows, batch_size=500, alter=False)
            counts[table] = len(rows)
    return counts


# ------------------------------------------------------------------------ measuring


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc/<pid>/status (MB of 2^20 bytes)."""
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith("VmRSS:"):
            return int(text.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


async def app_home_once(fake: FakeSlack, user: SlackUser) -> float:
    """Seconds from sending `app_home_opened` until the fake Slack receives `views.publish`."""
    mark = len(fake.calls)
    began = time.monotonic()
    status = await user.open_home()
    if status != 200:
        raise RuntimeError(f"app_home_opened answered {status}")

    def published() -> float | None:
        for call in fake.calls[mark:]:
            if call.method == "views.publish":
                return call.at
        return None

    arrived = await fake.wait_for(published, timeout=30)
    return arrived - began


async def suite_list_once(user: SlackUser) -> float:
    """Seconds from sending `/testcall suite list` until its ack is back."""
    began = time.monotonic()
    reply = await user.slash("suite list")
    took = time.monotonic() - began
    if reply.status != 200 or "suite" not in reply.body_text.lower():
        raise RuntimeError(f"suite list answered {reply.status}: {reply.body_text[:200]}")
    return took


async def audit_once(user: SlackUser) -> float:
    """Seconds from sending `/testcall audit` (the channel's recent events) until its ack."""
    began = time.monotonic()
    reply = await user.slash("audit")
    took = time.monotonic() - began
    if reply.status != 200:
        raise RuntimeError(f"audit answered {reply.status}: {reply.body_text[:200]}")
    return took


@dataclass
class Sample:
    rss_start: float
    rss_after: float
    home: list[float]
    suites: list[float]
    audit: list[float]


def seed(workdir: Path, runs: int) -> float:
    """Make the bot's database in `workdir` with `runs` runs stored; returns the seconds taken."""
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    db = open_db(str(workdir / "thunderbot.db"))
    try:
        seed_history(db, runs)
    finally:
        db.close()
    return time.monotonic() - began


async def sample(workdir: Path) -> Sample:
    """Start the bot on the database in `workdir` and measure it."""
    async with ServedBot(workdir, step_seconds=None, poll_seconds=10.0) as served:
        fake = served.fake
        assert served.process is not None
        # Let the worker's start-up round finish before anything is measured.
        await wait_quiet(lambda: len(fake.calls), quiet=1.5)
        rss_start = rss_mb(served.process.pid)
        user = served.user("U0SAND000", "C0QA")
        for _ in range(WARM_UP):
            await app_home_once(fake, user)
        home = [await app_home_once(fake, user) for _ in range(REQUESTS)]
        rss_after = rss_mb(served.process.pid)
        for _ in range(WARM_UP):
            await suite_list_once(user)
        suites = [await suite_list_once(user) for _ in range(REQUESTS)]
        # A channel of the workspace with a year of runs in it.
        auditor = served.user("U0SAND000", "C0SAND000")
        for _ in range(WARM_UP):
            await audit_once(auditor)
        audit = [await audit_once(auditor) for _ in range(REQUESTS)]
    return Sample(rss_start, rss_after, home, suites, audit)


# ------------------------------------------------------------------------ diagnosing

# The hot queries, as the storage functions send them (storage/runs.py, storage/suites.py,
# storage/messages.py, storage/inbox.py): App Home, the suite list, and every worker round.
HOT_QUERIES_RECENT = "App Home: runs.recent_runs"
HOT_QUERIES_OWN = "App Home: runs.runs_started_by"
HOT_QUERIES: dict[str, tuple[str, list[Any]]] = {
    HOT_QUERIES_RECENT: (
        "select * from runs where team_id = ? order by created_at desc, run_id desc"
        " limit ? offset ?",
        [TEAM, 100, 0],
    ),
    HOT_QUERIES_OWN: (
        "select * from runs where team_id = ? and started_by = ?"
        " order by created_at desc, run_id desc limit ?",
        [TEAM, "U0SAND000", 10],
    ),
    "App Home: runs.get_grade (×10)": ("select * from grades where call_id = ?", [500_000_001]),
    "suite list: suites.list_suites": (
        "select s.name, s.target_type, s.target_id, s.updated_at,"
        " (select count(*) from suite_cases c where c.suite = s.name) as case_count"
        " from suites s order by s.name",
        [],
    ),
    "worker: runs.active_run_ids": (
        "select run_id from runs where status not in ('completed', 'failed') order by created_at",
        [],
    ),
    "worker: runs.runs_missing_details": (
        "select runs.* from runs left join transcripts on transcripts.call_id = runs.call_id"
        " where runs.status = 'completed' and runs.call_id is not null"
        " and (runs.cost_cents is null or transcripts.call_id is null) and runs.updated_at > ?",
        ["{2h}"],
    ),
    "worker: runs.finished_without_grade": (
        "select runs.* from runs left join grades on grades.call_id = runs.call_id"
        " where runs.status = 'completed' and runs.call_id is not null"
        " and (grades.call_id is null or grades.status = 'provisional')"
        " and runs.updated_at > ?",
        ["{24h}"],
    ),
    "worker: messages.terminal_runs_without_result": (
        "select run_id from runs where status in ('completed', 'failed') and updated_at > ?"
        " and cast(run_id as text) not in (select owner_id from slack_messages"
        " where owner_kind = 'run' and role = 'result')",
        ["{24h}"],
    ),
    "worker: inbox.pending_events": (
        "select * from webhook_events where processed_at is null and attempts < ?"
        " and coalesce(next_attempt_at, '') <= ? order by received_at",
        [12, "{now}"],
    ),
}
# What would spare each query reading most of a big table.
FIXES = {
    HOT_QUERIES_RECENT: "create index idx_runs_team_created on runs (team_id, created_at)",
    HOT_QUERIES_OWN: "create index idx_runs_team_started_by on runs"
    " (team_id, started_by, created_at)",
    "worker: runs.active_run_ids": "create index idx_runs_active on runs (created_at)"
    " where status not in ('completed', 'failed')",
    "worker: runs.runs_missing_details": "create index idx_runs_status_updated on runs"
    " (status, updated_at)",
    "worker: runs.finished_without_grade": "create index idx_runs_status_updated on runs"
    " (status, updated_at), and `and runs.updated_at > ?` added to the query (coalesce() hides"
    " both columns from any index; a run's updated_at is never before the bot learnt it ended)",
    "worker: messages.terminal_runs_without_result": "create index idx_runs_status_updated on"
    " runs (status, updated_at)",
}
GROWTH = 10.0  # a query this many times slower with the big history, and over 1 ms, is reported


def _bind(params: list[Any]) -> list[Any]:
    now = datetime.now(UTC)
    stamps = {
        "{now}": _iso(now),
        "{2h}": _iso(now - timedelta(hours=2)),
        "{24h}": _iso(now - timedelta(hours=24)),
    }
    return [stamps.get(value, value) if isinstance(value, str) else value for value in params]


@dataclass(frozen=True)
class Plan:
    name: str
    plan: str
    ms: float


def explain(db_path: Path, queries: dict[str, tuple[str, list[Any]]] = HOT_QUERIES) -> list[Plan]:
    """Each query's plan, and its time (best of 5) on the database at `db_path`."""
    plans = []
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for name, (sql, raw) in queries.items():
            params = _bind(raw)
            steps = [str(row[3]) for row in db.execute("explain query plan " + sql, params)]
            best = math.inf
            for _ in range(5):
                began = time.perf_counter()
                db.execute(sql, params).fetchall()
                best = min(best, time.perf_counter() - began)
            plans.append(Plan(name, "; ".join(steps), best * 1000))
    finally:
        db.close()
    return plans


def grown(small: Plan, big: Plan) -> bool:
    """Whether a query got much slower with the big history (it reads what it does not need)."""
    return big.ms > 1.0 and big.ms > GROWTH * max(small.ms, 0.001)


def note(text: str) -> None:
    print(f"  · {text}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------ figures


def ratio(big: list[float], small: list[float]) -> float:
    return median(big) / median(small) if big and small else math.nan


def ms(values: list[float]) -> str:
    return f"{number(median(values) * 1000)} ms"


async def measure(big_runs: int) -> list[Figure]:
    label = f"{big_runs:,}"
    with tempfile.TemporaryDirectory(prefix="thunderbot-bench-") as tmp:
        small_dir, big_dir = Path(tmp) / "small", Path(tmp) / "big"
        seed(small_dir, SMALL)
        seeded = seed(big_dir, big_runs)
        small, big = await sample(small_dir), await sample(big_dir)
        small_plans = explain(small_dir / "thunderbot.db")
        big_plans = explain(big_dir / "thunderbot.db")
        home_ratio = ratio(big.home, small.home)
    memory = figure(
        f"bot memory with {label} runs",
        max(big.rss_start, big.rss_after),
        "MB",
        "<",
        RSS_TARGET_MB,
        f"after start-up {number(big.rss_start)} MB, after {WARM_UP + REQUESTS} App Home renders "
        f"{number(big.rss_after)} MB · with {SMALL} runs {number(small.rss_start)} → "
        f"{number(small.rss_after)} MB · {label} runs seeded in {number(seeded)} s",
    )
    home_detail = f"median {ms(big.home)} vs {ms(small.home)} ({REQUESTS} requests each)"
    audit_detail = f"median {ms(big.audit)} vs {ms(small.audit)} ({REQUESTS} requests each)"
    suites_detail = f"median {ms(big.suites)} vs {ms(small.suites)} ({REQUESTS} requests each)"
    for before, after in zip(small_plans, big_plans, strict=True):
        fix = f" → {FIXES[after.name]}" if grown(before, after) and after.name in FIXES else ""
        note(
            f"{after.name}: {number(after.ms)} ms with {label} runs, {number(before.ms)} ms with "
            f"{SMALL} · {after.plan}{fix}"
        )
    return [
        memory,
        figure(
            f"App Home, {label} vs {SMALL} runs", home_ratio, "×", "<=", RATIO_TARGET, home_detail
        ),
        figure(
            f"suite list, {label} vs {SMALL} runs",
            ratio(big.suites, small.suites),
            "×",
            "<=",
            RATIO_TARGET,
            suites_detail,
        ),
        figure(
            f"audit, {label} vs {SMALL} runs",
            ratio(big.audit, small.audit),
            "×",
            "<=",
            RATIO_TARGET,
            audit_detail,
        ),
    ]


async def figures(options: object) -> list[Figure]:
    quick = bool(getattr(options, "quick", False))
    return await measure(10_000 if quick else BIG)
