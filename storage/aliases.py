"""Named targets per workspace, e.g. `support` -> agent 12."""

from __future__ import annotations

from sqlite_utils import Database

from storage.db import now_iso
from storage.models import Alias


def save_alias(db: Database, alias: Alias) -> Alias:
    stored = alias.model_copy(update={"created_at": alias.created_at or now_iso()})
    db.table("aliases").upsert(stored.model_dump(), pk=("team_id", "name"))
    return stored


def find_alias(db: Database, team_id: str, name: str) -> Alias | None:
    rows = list(db.table("aliases").rows_where("team_id = ? and name = ?", [team_id, name.lower()]))
    return Alias.from_row(rows[0]) if rows else None


def list_aliases(db: Database, team_id: str) -> list[Alias]:
    rows = db.table("aliases").rows_where("team_id = ?", [team_id], order_by="name")
    return [Alias.from_row(row) for row in rows]


def delete_alias(db: Database, team_id: str, name: str) -> bool:
    cursor = db.execute(
        "delete from aliases where team_id = ? and name = ?", [team_id, name.lower()]
    )
    return cursor.rowcount > 0
