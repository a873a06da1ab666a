"""Saved regression suites, deployment-wide (one deployment serves one workspace).

Names are stored lower-case; a save replaces the suite's cases as a whole, in one transaction.
"""

from __future__ import annotations

import json
from typing import Any

from sqlite_utils import Database

from storage.db import now_iso
from storage.models import SmokeSuite, SuiteCaseRecord, SuiteRecord, SuiteSummary


def save_suite(db: Database, suite: SuiteRecord) -> tuple[SuiteRecord, SuiteRecord | None]:
    """Store `suite` as given (cases, default target, settings), replacing any suite of that
    name; all or nothing. Returns the stored suite and the one it replaced, if any."""
    name = suite.name.lower()
    stamp = now_iso()
    with db.atomic():
        previous = get_suite(db, name)
        existing = _suite_row(db, name)
        row = {
            "name": name,
            "target_type": suite.target_type,
            "target_id": suite.target_id,
            "settings": json.dumps(suite.settings, ensure_ascii=False),
            "created_by": existing["created_by"] if existing else suite.created_by,
            "created_at": existing["created_at"] if existing else (suite.created_at or stamp),
            "updated_at": stamp,
        }
        db.table("suites").upsert(row, pk="name")
        db.execute("delete from suite_cases where suite = ?", [name])
        db.table("suite_cases").insert_all(
            (
                {
                    "suite": name,
                    "position": position,
                    "name": case.name,
                    "scenario_prompt": case.scenario_prompt,
                    "expected_outcome": case.expected_outcome,
                }
                for position, case in enumerate(suite.cases, start=1)
            ),
            pk=("suite", "position"),
        )
        stored = get_suite(db, name)
    assert stored is not None
    return stored, previous


def get_suite(db: Database, name: str) -> SuiteRecord | None:
    """The suite called `name` (any case), with its cases in order."""
    row = _suite_row(db, name.lower())
    if row is None:
        return None
    cases = db.table("suite_cases").rows_where("suite = ?", [row["name"]], order_by="position")
    return SuiteRecord.model_validate(
        {
            **row,
            "settings": json.loads(row["settings"] or "{}"),
            "cases": [SuiteCaseRecord.model_validate(case) for case in cases],
        }
    )


def list_suites(db: Database) -> list[SuiteSummary]:
    rows = db.execute(
        "select s.name, s.target_type, s.target_id, s.updated_at,"
        " (select count(*) from suite_cases c where c.suite = s.name) as case_count"
        " from suites s order by s.name"
    ).fetchall()
    keys = ("name", "target_type", "target_id", "updated_at", "case_count")
    return [SuiteSummary.model_validate(dict(zip(keys, row, strict=True))) for row in rows]


def delete_suite(db: Database, name: str) -> bool:
    with db.atomic():
        db.execute("delete from suite_cases where suite = ?", [name.lower()])
        cursor = db.execute("delete from suites where name = ?", [name.lower()])
    return cursor.rowcount > 0


def mark_smoke_suite(
    db: Database, *, target_type: str, target_id: int, suite: str, user_id: str
) -> SmokeSuite | None:
    """Make `suite` the smoke suite of a target; returns the mark it replaced, if any."""
    with db.atomic():
        previous = smoke_suite_of(db, target_type, target_id)
        db.table("smoke_suites").upsert(
            {
                "target_type": target_type,
                "target_id": target_id,
                "suite": suite.lower(),
                "marked_by": user_id,
                "marked_at": now_iso(),
            },
            pk=("target_type", "target_id"),
        )
    return previous


def smoke_suite_of(db: Database, target_type: str, target_id: int) -> SmokeSuite | None:
    """The suite marked as the target's smoke suite (it may have been deleted since)."""
    rows = list(
        db.table("smoke_suites").rows_where(
            "target_type = ? and target_id = ?", [target_type, target_id]
        )
    )
    return SmokeSuite.from_row(rows[0]) if rows else None


def unmark_smoke_suite(db: Database, target_type: str, target_id: int) -> bool:
    cursor = db.execute(
        "delete from smoke_suites where target_type = ? and target_id = ?",
        [target_type, target_id],
    )
    return cursor.rowcount > 0


def _suite_row(db: Database, name: str) -> dict[str, Any] | None:
    rows = list(db.table("suites").rows_where("name = ?", [name]))
    return rows[0] if rows else None
