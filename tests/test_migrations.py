"""Upgrading a database written by the previous release, rows and all."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlite_utils import Database

from bot.outbox import digest
from storage import audit, launches, messages
from storage import runs as run_store
from storage.db import open_db
from storage.models import AuditEvent

RELEASE_0_1 = Path(__file__).parent / "fixtures" / "thunderbot-0.1.0.sql"


@pytest.fixture
def upgraded(tmp_path: Path) -> Database:
    path = tmp_path / "thunderbot.db"
    with sqlite3.connect(path) as old:
        old.executescript(RELEASE_0_1.read_text())
    old.close()
    return open_db(str(path))


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"select count(*) from {table}").fetchone()[0])


def test_every_row_survives_the_upgrade(upgraded: Database) -> None:
    counts = {
        table: _count(upgraded, table)
        for table in ("aliases", "launches", "runs", "grades", "transcripts", "flags")
    }
    assert counts == {
        "aliases": 1,
        "launches": 7,
        "runs": 4,
        "grades": 2,
        "transcripts": 2,
        "flags": 1,
    }
    assert _count(upgraded, "webhook_events") == 5
    runs = {row["run_id"]: row["status"] for row in upgraded.table("runs").rows}
    assert runs == {7110: "completed", 7111: "completed", 7112: "failed", 7113: "in_progress"}
    flag = run_store.get_flag(upgraded, 7110)
    assert flag is not None and (flag.status, flag.issue_id) == ("filed", 4321)


def test_cards_and_results_move_to_the_message_table(upgraded: Database) -> None:
    assert "card_ts" not in upgraded.table("runs").columns_dict
    assert "result_digest" not in upgraded.table("runs").columns_dict
    assert "card_ts" not in upgraded.table("launches").columns_dict
    card = messages.get_message(upgraded, ("run", "7110", "card"))
    result = messages.get_message(upgraded, ("run", "7110", "result"))
    assert card is not None and result is not None
    assert (card.channel, card.ts, card.state) == ("C0QA", "1763780000.000400", "sent")
    assert (result.ts, result.parent_id, result.state) == ("1763780000.000500", card.id, "sent")
    assert card.notify_user == "U0MARIA"
    # The run still going has its card, and no result yet.
    running = messages.get_message(upgraded, ("run", "7113", "card"))
    assert running is not None and running.ts == "1763780000.001700"
    assert messages.get_message(upgraded, ("run", "7113", "result")) is None
    # Settled launches keep no card of their own: their runs own them, or they are over.
    assert _count(upgraded, "slack_messages where owner_kind = 'launch'") == 0
    assert _count(upgraded, "slack_messages") == 7
    assert messages.channels_with_work(upgraded) == [], "nothing is re-sent by the upgrade"


def test_a_migrated_card_is_edited_in_place_not_posted_again(upgraded: Database) -> None:
    payload = {"text": "Test call: 📞 In progress", "blocks": []}
    row = messages.want_shown(
        upgraded,
        ("run", "7113", "card"),
        channel="C0QA",
        payload='{"text": "Test call: 📞 In progress", "blocks": []}',
        digest=digest(payload),
    )
    assert (row.ts, row.state) == ("1763780000.001700", "pending")
    assert messages.work_in_channel(upgraded, "C0QA") == [row]


def test_the_upgrade_starts_an_empty_audit_trail_that_takes_events(upgraded: Database) -> None:
    assert _count(upgraded, "audit_events") == 0
    indexes = {tuple(index.columns) for index in upgraded.table("audit_events").indexes}
    assert {("at",), ("subject_kind", "subject_id", "at"), ("channel_id", "at")} <= indexes
    event = audit.record(
        upgraded,
        AuditEvent(
            team_id="T0SANDBOX",
            channel_id="C0QA",
            user_id="U0MARIA",
            action="flagged",
            subject_kind="run",
            subject_id="7110",
            detail="warning · “Agent paused too long”",
            cost_cents=16,
        ),
    )
    assert event.id is not None and event.at.endswith("+00:00")
    assert audit.for_subjects(upgraded, [("run", "7110")], limit=5) == [event]


def test_upgrading_twice_changes_nothing(upgraded: Database, tmp_path: Path) -> None:
    before = list(upgraded.table("slack_messages").rows)
    again = open_db(str(tmp_path / "thunderbot.db"))
    assert list(again.table("slack_messages").rows) == before
    names = [row["name"] for row in again.table("_sqlite_migrations").rows]
    assert names == [
        "m001_initial",
        "m002_slack_messages",
        "m003_suites",
        "m004_batches",
        "m005_batch_kinds",
        "m006_compares",
        "m007_audit_events",
        "m008_history_indexes",
        "m009_permissions",
        "m010_budgets",
        "m011_runs_by_starter",
        "m012_launches_sent_at",
    ]


def test_launches_started_before_the_upgrade_count_as_sent(tmp_path: Path) -> None:
    """A launch an earlier release left being started may have reached ThunderPhone: it is
    still looked for after the upgrade, never called off as unsent."""
    path = tmp_path / "thunderbot.db"
    with sqlite3.connect(path) as old:
        old.executescript(RELEASE_0_1.read_text())
        old.execute(
            "update launches set status = 'launching', run_id = null"
            " where id = '1d939da096a8451a94f65e6b60cd383d'"
        )
    old.close()
    db = open_db(str(path))

    sent = {row["id"]: row["sent_at"] for row in db.table("launches").rows}
    assert sent["a1b454f8f32046acb2948d5857926083"] == "2026-12-01T11:09:01.660+00:00"
    assert sent["1d939da096a8451a94f65e6b60cd383d"] == "2026-12-01T11:09:01.828+00:00"
    assert sent["b961f820dd93472eab639c7beb7e9c3e"] is None, "cancelled: never sent"
    assert sent["7a11199d595b4a5e825dacf230938f0f"] is None, "proposed: never sent"
    later = "2026-12-02T00:00:00.000+00:00"
    assert [x.id for x in launches.unsettled_launches(db, decided_before=later)] == [
        "1d939da096a8451a94f65e6b60cd383d"
    ]
    assert launches.unsent_launches(db, decided_before=later) == []
