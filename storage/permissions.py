"""Who may do what: one rule per workspace and capability (`start`, `bless`, `critical`), and
optionally one per channel, which then wins in that channel. No rule: everyone may."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import Field
from sqlite_utils import Database

from storage.db import fetch_row, now_iso
from storage.models import Record

WORKSPACE = ""  # the channel_id of a workspace-wide rule


class PermissionRule(Record):
    team_id: str
    capability: str
    channel_id: str = WORKSPACE
    everyone: bool = False
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)  # id -> the name it was typed with
    set_by: str = ""
    set_at: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PermissionRule:
        data = dict(row)
        for key, empty in (("users", "[]"), ("groups", "[]"), ("labels", "{}")):
            data[key] = json.loads(data.get(key) or empty)
        data["everyone"] = bool(data.get("everyone"))
        return cls.model_validate(data)


def _row(rule: PermissionRule) -> dict[str, Any]:
    return {
        "team_id": rule.team_id,
        "capability": rule.capability,
        "channel_id": rule.channel_id,
        "everyone": int(rule.everyone),
        "users": json.dumps(rule.users),
        "groups": json.dumps(rule.groups),
        "labels": json.dumps(rule.labels),
        "set_by": rule.set_by,
        "set_at": rule.set_at,
    }


def get_rule(
    db: Database, team_id: str, capability: str, channel_id: str = WORKSPACE
) -> PermissionRule | None:
    row = fetch_row(
        db,
        "select * from permissions where team_id = ? and capability = ? and channel_id = ?",
        [team_id, capability, channel_id],
    )
    return PermissionRule.from_row(row) if row is not None else None


def rule_among(
    rules: Iterable[PermissionRule], capability: str, channel_id: str
) -> PermissionRule | None:
    """Of a workspace's rules, the one that applies in a channel: its own, else the
    workspace's, else None."""
    workspace = None
    for rule in rules:
        if rule.capability != capability:
            continue
        if rule.channel_id == channel_id:
            return rule
        if rule.channel_id == WORKSPACE:
            workspace = rule
    return workspace


def list_rules(db: Database, team_id: str) -> list[PermissionRule]:
    """Every rule of a workspace: by capability, the workspace's first, then by channel."""
    rows = db.table("permissions").rows_where(
        "team_id = ?", [team_id], order_by="capability, channel_id"
    )
    return [PermissionRule.from_row(row) for row in rows]


def save_rule(db: Database, rule: PermissionRule) -> PermissionRule:
    stored = rule.model_copy(update={"set_at": rule.set_at or now_iso()})
    db.table("permissions").upsert(_row(stored), pk=("team_id", "capability", "channel_id"))
    return stored


def delete_rule(db: Database, team_id: str, capability: str, channel_id: str = WORKSPACE) -> bool:
    cursor = db.execute(
        "delete from permissions where team_id = ? and capability = ? and channel_id = ?",
        [team_id, capability, channel_id],
    )
    return cursor.rowcount > 0
