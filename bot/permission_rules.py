"""Each workspace's permission rules, kept in memory between commands.

Every command that would start a run checks the rules before it is answered. The table is a
handful of rows, yet entering SQLite for one small read, between requests that have pushed its
code and pages out of the CPU's caches, costs more than the rest of the check. The rules change
through `/testcall admin` (`bot.admin`), which has them read again at once; a change made by
another process on the same database is seen within RULES_SECONDS.
"""

from __future__ import annotations

import time

from sqlite_utils import Database

from storage import permissions as store
from storage.permissions import PermissionRule

RULES_SECONDS = 60.0


class PermissionRules:
    def __init__(self, db: Database, *, seconds: float = RULES_SECONDS) -> None:
        self._db = db
        self._seconds = seconds
        self._teams: dict[str, tuple[float, list[PermissionRule]]] = {}

    def rule_for(self, team_id: str, capability: str, channel_id: str) -> PermissionRule | None:
        """The rule that applies in a channel: its own, else the workspace's, else None."""
        now = time.monotonic()
        kept = self._teams.get(team_id)
        if kept is None or now - kept[0] > self._seconds:
            kept = (now, store.list_rules(self._db, team_id))
            self._teams[team_id] = kept
        return store.rule_among(kept[1], capability, channel_id)

    def forget(self, team_id: str) -> None:
        """A workspace's rules changed: read them again next time."""
        self._teams.pop(team_id, None)
