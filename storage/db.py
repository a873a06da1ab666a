"""The SQLite database: opening it and its schema migrations.

Storage functions run directly on the event loop thread: every query is small and local, and a
sqlite3 connection is tied to the thread that opened it. Nothing here knows about Slack or HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("thunderbot")


def now_iso(ago: timedelta = timedelta(0)) -> str:
    """The time now (or `ago` before now) as stored: ISO 8601 in UTC, so strings sort in time."""
    return (datetime.now(UTC) - ago).isoformat(timespec="milliseconds")


# Plain SQL for the hot paths: sqlite-utils' table helpers read the table's schema on every
# call, which costs several times the query itself. Table and column names here are the
# code's own, never input.


def fetch_row(db: Database, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
    """The first row of a query as a dict, or None."""
    cursor = db.execute(sql, params)
    row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip([column[0] for column in cursor.description], row, strict=True))


def insert_row(db: Database, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    db.execute(
        f"insert into {table} ({columns}) values ({', '.join('?' * len(row))})", list(row.values())
    )


def update_row(
    db: Database, table: str, key_column: str, key: object, changes: dict[str, Any]
) -> None:
    assignments = ", ".join(f"{column} = ?" for column in changes)
    db.execute(f"update {table} set {assignments} where {key_column} = ?", [*changes.values(), key])


def open_db(path: str) -> Database:
    """Open (creating if needed) and migrate the database at `path` (":memory:" for tests)."""
    db = Database(memory=True) if path == ":memory:" else Database(path)
    if path != ":memory:":
        db.execute("PRAGMA journal_mode=WAL")
        # In WAL mode a commit is in the log file before it returns, so a crashed or killed
        # process loses nothing committed; only a power loss can lose the last moments
        # (docs/benchmarks.md). FULL would flush to disk on every commit.
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=5000")
    migrations.apply(db)
    return db


@migrations()
def m001_initial(db: Database) -> None:
    db.table("aliases").create(
        {
            "team_id": str,
            "name": str,
            "target_type": str,
            "target_id": int,
            "created_by": str,
            "created_at": str,
        },
        pk=("team_id", "name"),
    )
    # A launch is the intent to start a paid run, recorded before ThunderPhone is asked, so a
    # second click, a retry or a restart finds it instead of launching again.
    db.table("launches").create(
        {
            "id": str,
            "team_id": str,
            "channel_id": str,
            "user_id": str,
            "target_type": str,
            "target_id": int,
            "target_label": str,
            "direction": str,
            "mode": str,
            "caller_number": str,
            "scenario_prompt": str,
            "status": str,
            "run_id": int,
            "card_ts": str,
            "error": str,
            "decided_by": str,
            "decided_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"team_id", "channel_id", "user_id", "target_type", "target_id", "status"},
    )
    db.table("runs").create(
        {
            "run_id": int,
            "launch_id": str,
            "team_id": str,
            "channel_id": str,
            "card_ts": str,
            "card_digest": str,
            "result_ts": str,
            "result_digest": str,
            "started_by": str,
            "target_type": str,
            "target_id": int,
            "target_name": str,
            "direction": str,
            "mode": str,
            "caller_number": str,
            "scenario_prompt": str,
            "status": str,
            "call_id": int,
            "error_message": str,
            "duration_seconds": int,
            "cost_cents": int,
            "end_reason": str,
            "created_at": str,
            "started_at": str,
            "completed_at": str,
            "updated_at": str,
        },
        pk="run_id",
        foreign_keys=[("launch_id", "launches", "id")],
    )
    db.table("runs").create_index(["call_id"])
    db.table("runs").create_index(["status"])
    db.table("runs").create_index(["target_type", "target_id"])
    # Grades are keyed by call: call.graded can arrive before the run knows its call.
    db.table("grades").create(
        {
            "call_id": int,
            "score": float,
            "status": str,
            "call_outcome": str,
            "summary": str,
            "outcome_reasoning": str,
            "grader_model": str,
            "graded_at": str,
            "received_at": str,
        },
        pk="call_id",
    )
    db.table("transcripts").create(
        {"call_id": int, "entries": str, "fetched_at": str}, pk="call_id"
    )
    db.table("flags").create(
        {
            "run_id": int,
            "call_id": int,
            "user_id": str,
            "severity": str,
            "title": str,
            "description": str,
            "turn": int,
            "status": str,
            "issue_id": int,
            "trace_id": str,
            "permalink": str,
            "error": str,
            "created_at": str,
        },
        pk="run_id",
    )
    # The webhook inbox: every accepted delivery is stored before ThunderPhone gets its 2xx.
    db.table("webhook_events").create(
        {
            "key": str,
            "event_type": str,
            "body": str,
            "received_at": str,
            "processed_at": str,
            "attempts": int,
            "next_attempt_at": str,
            "error": str,
        },
        pk="key",
    )
    db.table("webhook_events").create_index(["processed_at"])


@migrations()
def m002_slack_messages(db: Database) -> None:
    """Every message the bot owns in Slack, in one table keyed by (owner, role), replacing the
    card and result columns of runs and launches."""
    db.table("slack_messages").create(
        {
            "id": int,
            "owner_kind": str,
            "owner_id": str,
            "role": str,
            "channel": str,
            "parent_id": int,
            "ts": str,
            "payload": str,
            "digest": str,
            "shown_digest": str,
            "state": str,
            "attempts": int,
            "next_attempt_at": str,
            "posted_at": str,
            "error": str,
            "notify_user": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"owner_kind", "owner_id", "role", "channel", "payload", "digest", "state"},
        defaults={"attempts": 0},
    )
    db.table("slack_messages").create_index(["owner_kind", "owner_id", "role"], unique=True)
    db.table("slack_messages").create_index(["state", "channel"])
    stamp = now_iso()
    # What was shown before is not stored, only its digest; an empty payload with a digest
    # nobody matches makes the next change edit the message in place, as before.
    for launch_id, channel, ts in db.execute(
        # Only launches still being started or looked for will edit their card again.
        "select id, channel_id, card_ts from launches where card_ts is not null"
        " and status in ('launching', 'unknown')"
    ).fetchall():
        _migrated(db, ("launch", launch_id, "card"), channel, ts, None, stamp, notify=None)
    for run_id, channel, card_ts, card_digest, result_ts, result_digest, user in db.execute(
        "select run_id, channel_id, card_ts, card_digest, result_ts, result_digest, started_by"
        " from runs where card_ts is not null"
    ).fetchall():
        card_id = _migrated(
            db, ("run", str(run_id), "card"), channel, card_ts, card_digest, stamp, notify=user
        )
        if result_ts is not None:
            _migrated(
                db,
                ("run", str(run_id), "result"),
                channel,
                result_ts,
                result_digest,
                stamp,
                notify=user,
                parent_id=card_id,
            )
    db.table("runs").transform(drop={"card_ts", "card_digest", "result_ts", "result_digest"})
    db.table("launches").transform(drop={"card_ts"})


def _migrated(
    db: Database,
    key: tuple[str, str, str],
    channel: str,
    ts: str,
    digest: str | None,
    stamp: str,
    *,
    notify: str | None,
    parent_id: int | None = None,
) -> int:
    owner_kind, owner_id, role = key
    table = db.table("slack_messages")
    inserted = table.insert(
        {
            "owner_kind": owner_kind,
            "owner_id": owner_id,
            "role": role,
            "channel": channel,
            "parent_id": parent_id,
            "ts": ts,
            "payload": "{}",
            "digest": digest or "",
            "shown_digest": digest or "",
            "state": "sent",
            "attempts": 0,
            "notify_user": notify,
            "created_at": stamp,
            "updated_at": stamp,
        }
    )
    assert inserted.last_pk is not None
    return int(inserted.last_pk)


@migrations()
def m003_suites(db: Database) -> None:
    """Saved regression suites: one deployment serves one workspace, so suites are stored
    deployment-wide. A suite's cases are replaced as a whole on each import."""
    db.table("suites").create(
        {
            "name": str,
            "target_type": str,
            "target_id": int,
            "settings": str,
            "created_by": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="name",
        not_null={"settings", "created_at", "updated_at"},
        defaults={"settings": "{}"},
    )
    # expected_outcome is the case's JSON value as imported (NULL: the file gave none), so an
    # export reproduces it; the bot reads it with bot.expectations.parse_expected.
    db.table("suite_cases").create(
        {
            "suite": str,
            "position": int,
            "name": str,
            "scenario_prompt": str,
            "expected_outcome": str,
        },
        pk=("suite", "position"),
        not_null={"name", "scenario_prompt"},
        foreign_keys=[("suite", "suites", "name")],
    )
    db.execute(
        "create unique index idx_suite_cases_suite_name on suite_cases (suite, name collate nocase)"
    )


@migrations()
def m004_batches(db: Database) -> None:
    """Batches: one consent and one card for several runs, sent as ThunderPhone batches of at
    most 20; and each suite's blessed baseline per target."""
    db.table("batches").create(
        {
            "id": str,
            "team_id": str,
            "channel_id": str,
            "user_id": str,
            "target_type": str,
            "target_id": int,
            "target_label": str,
            "target_name": str,
            "direction": str,
            "caller_number": str,
            "stagger": int,
            "repeat": int,
            "suite": str,
            "status": str,
            "error": str,
            "decided_by": str,
            "decided_at": str,
            "created_at": str,
            "finished_at": str,
            "blessed_by": str,
            "blessed_at": str,
        },
        pk="id",
        not_null={"team_id", "channel_id", "user_id", "target_type", "target_id", "status"},
    )
    db.table("batches").create_index(["suite", "target_type", "target_id"])
    db.table("batch_parts").create(
        {
            "batch_id": str,
            "part": int,
            "status": str,
            "tp_batch_id": int,
            "error": str,
            "updated_at": str,
        },
        pk=("batch_id", "part"),
        foreign_keys=[("batch_id", "batches", "id")],
    )
    db.table("batch_items").create(
        {
            "batch_id": str,
            "position": int,
            "part": int,
            "case_name": str,
            "prompt": str,
            "expected": str,
            "attempt": int,
            "run_id": int,
            "verdict": str,
        },
        pk=("batch_id", "position"),
        foreign_keys=[("batch_id", "batches", "id")],
    )
    db.table("batch_items").create_index(["run_id"])
    db.table("suite_baselines").create(
        {
            "suite": str,
            "target_type": str,
            "target_id": int,
            "batch_id": str,
            "blessed_by": str,
            "blessed_at": str,
        },
        pk=("suite", "target_type", "target_id"),
    )
    db.table("runs").add_column("batch_id", str)
    db.table("runs").add_column("position", int)
    db.table("runs").create_index(["batch_id"])


@migrations()
def m005_batch_kinds(db: Database) -> None:
    """What a batch is (`batch`, `suite` or `smoke`, so its card can say so), and each target's
    smoke suite: the suite `/testcall smoke` runs on it."""
    db.table("batches").add_column("kind", str, not_null_default="batch")
    db.execute("update batches set kind = 'suite' where suite is not null")
    db.table("smoke_suites").create(
        {
            "target_type": str,
            "target_id": int,
            "suite": str,
            "marked_by": str,
            "marked_at": str,
        },
        pk=("target_type", "target_id"),
        not_null={"suite"},
    )


@migrations()
def m006_compares(db: Database) -> None:
    """Compares: the same scenarios against several targets after one consent, shown on one
    card, sent as one batch per target (`batches.compare_id`); and each target's product tier,
    read off one of its calls once the compare is over."""
    db.table("compares").create(
        {
            "id": str,
            "team_id": str,
            "channel_id": str,
            "user_id": str,
            "suite": str,
            "prompt": str,
            "repeat": int,
            "status": str,
            "error": str,
            "decided_by": str,
            "decided_at": str,
            "created_at": str,
            "finished_at": str,
            "chart_at": str,
            "chart_error": str,
        },
        pk="id",
        not_null={"team_id", "channel_id", "user_id", "status"},
    )
    db.table("compare_tiers").create(
        {"compare_id": str, "batch_id": str, "product": str, "fetched_at": str},
        pk=("compare_id", "batch_id"),
        foreign_keys=[("compare_id", "compares", "id")],
    )
    db.table("batches").add_column("compare_id", str)
    db.table("batches").create_index(["compare_id"])


@migrations()
def m007_audit_events(db: Database) -> None:
    """The audit trail: every launch, consent, cancel, flag, bless and settings change, with
    who, when, where and what it cost. Rows are only ever added."""
    db.table("audit_events").create(
        {
            "id": int,
            "at": str,
            "team_id": str,
            "channel_id": str,
            "user_id": str,
            "action": str,
            "subject_kind": str,
            "subject_id": str,
            "detail": str,
            "cost_cents": int,
        },
        pk="id",
        not_null={"at", "user_id", "action", "subject_kind", "subject_id"},
    )
    db.table("audit_events").create_index(["at"])
    db.table("audit_events").create_index(["subject_kind", "subject_id", "at"])
    db.table("audit_events").create_index(["channel_id", "at"])


@migrations()
def m008_history_indexes(db: Database) -> None:
    """Indexes that keep App Home and the background checks as fast with a year of history as
    with a day: recent runs per workspace, runs still under way, and recently changed runs."""
    db.execute("create index idx_runs_team_created on runs (team_id, created_at)")
    db.execute(
        "create index idx_runs_active on runs (created_at)"
        " where status not in ('completed', 'failed')"
    )
    db.execute("create index idx_runs_status_updated on runs (status, updated_at)")


@migrations()
def m009_permissions(db: Database) -> None:
    """Who may start runs, bless baselines and file critical reports: one rule per workspace
    and capability, optionally one per channel too. No rule: everyone may."""
    db.table("permissions").create(
        {
            "team_id": str,
            "capability": str,  # start | bless | critical
            "channel_id": str,  # "" for the whole workspace
            "everyone": int,
            "users": str,  # JSON list of Slack user ids
            "groups": str,  # JSON list of Slack user group ids
            "labels": str,  # JSON object: id -> the name it was typed with
            "set_by": str,
            "set_at": str,
        },
        pk=("team_id", "capability", "channel_id"),
        not_null={"team_id", "capability", "channel_id"},
    )


@migrations()
def m010_budgets(db: Database) -> None:
    """Spend caps per day and month, for a workspace (channel_id "") or one channel; what each
    consent reserved, run by run (released or replaced by the billed cost as runs settle); the
    warnings already given; and the launches over a cap waiting for an admin's approval."""
    db.table("budget_caps").create(
        {
            "team_id": str,
            "channel_id": str,
            "period": str,
            "cap_cents": int,
            "over": str,
            "set_by": str,
            "set_at": str,
        },
        pk=("team_id", "channel_id", "period"),
        not_null={"cap_cents", "over"},
    )
    db.table("budget_holds").create(
        {
            "owner_kind": str,
            "owner_id": str,
            "position": int,
            "team_id": str,
            "channel_id": str,
            "at": str,
            "estimate_cents": int,
        },
        pk=("owner_kind", "owner_id", "position"),
        not_null={"team_id", "channel_id", "at", "estimate_cents"},
    )
    db.table("budget_holds").create_index(["team_id", "at"])
    db.table("budget_warnings").create(
        {
            "team_id": str,
            "channel_id": str,
            "period": str,
            "period_start": str,
            "level": int,
            "at": str,
        },
        pk=("team_id", "channel_id", "period", "period_start", "level"),
    )
    db.table("budget_approvals").create(
        {
            "id": int,
            "subject_kind": str,
            "subject_id": str,
            "team_id": str,
            "channel_id": str,
            "requested_by": str,
            "estimate_cents": int,
            "reason": str,
            "status": str,
            "decided_by": str,
            "decided_at": str,
            "created_at": str,
        },
        pk="id",
        not_null={"subject_kind", "subject_id", "requested_by", "status", "created_at"},
    )
    db.table("budget_approvals").create_index(["subject_kind", "subject_id"], unique=True)


@migrations()
def m011_runs_by_starter(db: Database) -> None:
    """App Home lists the viewer's own newest runs, however many others ran since."""
    db.execute("create index idx_runs_team_started_by on runs (team_id, started_by, created_at)")


@migrations()
def m012_launches_sent_at(db: Database) -> None:
    """When a launch's create went out, so a stop between the click and the create is called
    off at once instead of searched for. Launches of earlier releases still unsettled may have
    been sent: they count as sent and are searched for, as before."""
    db.table("launches").add_column("sent_at", str)
    db.execute(
        "update launches set sent_at = decided_at"
        " where status in ('launching', 'unknown', 'launched')"
    )
    # Every poll looks for the launches still being started or looked for.
    db.table("launches").create_index(["status", "decided_at"])
