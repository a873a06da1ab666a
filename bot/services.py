"""The long-lived parts the handlers and the core share; built once per app."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from weakref import WeakValueDictionary

from aiohttp import web
from slack_sdk.web.async_client import AsyncWebClient
from sqlite_utils import Database

from bot.commits import SharedCommit
from bot.config import Settings
from bot.ingest import GroupCommit
from bot.intake import Intake
from bot.lookup import TargetCache
from bot.outbox import Outbox
from bot.people import PeopleCache
from bot.permission_rules import PermissionRules
from bot.thunderphone import ThunderPhoneClient

MAX_SHOWN = 100_000
PROPOSAL_WINDOW = 0.005  # seconds


@dataclass
class Services:
    settings: Settings
    db: Database
    thunderphone: ThunderPhoneClient
    # For what Slack answers directly (modals, ephemerals, App Home); messages the bot owns
    # go through the outbox.
    slack: AsyncWebClient
    outbox: Outbox
    # One lock per run: webhooks, polling and clicks about the same run take turns, so a
    # result is posted once and edits land in order. A lock lives only while someone holds it.
    _run_locks: WeakValueDictionary[int, asyncio.Lock] = field(default_factory=WeakValueDictionary)
    # Wakes the inbox worker when a webhook was stored.
    inbox_signal: asyncio.Event = field(default_factory=asyncio.Event)
    # Agents and numbers ThunderPhone confirmed lately, shown in confirmations.
    targets: TargetCache = field(default_factory=TargetCache)
    # Who is in which channel and user group, as Slack said within the last minute.
    people: PeopleCache = field(default_factory=PeopleCache)
    # Runs whose call details (cost, end reason, transcript) are to be fetched, in order.
    details_wanted: set[int] = field(default_factory=set)
    details_queue: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    # Takes webhooks in no faster than the work they lead to gets done.
    intake: Intake = field(init=False)
    # Stores webhook deliveries that arrive together in one transaction.
    ingest: GroupCommit = field(init=False)
    # Commits the proposals that `/testcall run` commands make close together at once.
    proposals: SharedCommit = field(init=False)
    # Who may start, bless and file critical reports, read once per workspace.
    rules: PermissionRules = field(init=False)

    # Runs whose messages this process has brought up to date: a report that changes nothing
    # about such a run needs no rendering. After a restart every run is rendered once more,
    # in case the process stopped between storing a change and showing it.
    _shown: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.intake = Intake(self.outbox.ready_count, lambda: len(self.details_wanted))
        self.outbox.on_progress = self.intake.progress
        self.ingest = GroupCommit(self.db, self.intake, wake=self.inbox_signal.set)
        # Bolt answers Slack when it next looks for the ack, every 10 ms: a proposal stored
        # within 5 ms of the command is answered no later, and more of them share a commit.
        self.proposals = SharedCommit(self.db, window=PROPOSAL_WINDOW)
        self.rules = PermissionRules(self.db)

    def want_details(self, run_id: int) -> None:
        """Have the call details of a finished run fetched (`bot.reconcile.fetch_details_forever`),
        after the card has moved on."""
        if run_id not in self.details_wanted:
            self.details_wanted.add(run_id)
            self.details_queue.put_nowait(run_id)

    def shown_since_start(self, run_id: int) -> bool:
        return run_id in self._shown

    def mark_shown(self, run_id: int) -> None:
        if len(self._shown) >= MAX_SHOWN:
            self._shown.clear()  # bounded memory; the cost is one extra rendering each
        self._shown.add(run_id)

    def run_busy(self, run_id: int) -> bool:
        """Whether someone holds the run's lock now."""
        lock = self._run_locks.get(run_id)
        return lock is not None and lock.locked()

    def run_lock(self, run_id: int) -> asyncio.Lock:
        lock = self._run_locks.get(run_id)
        if lock is None:
            lock = self._run_locks[run_id] = asyncio.Lock()
        return lock

    @property
    def threshold(self) -> float:
        return self.settings.thunderbot_score_threshold


SERVICES = web.AppKey("services", Services)
# Where a Slack request's Bolt context holds the services, for the listeners.
SERVICES_KEY = "thunderbot_services"
