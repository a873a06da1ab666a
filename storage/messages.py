"""Messages the bot owns in Slack: what each should show, and how far its delivery has got.

A row is written before Slack is asked, so a restart finds the work still to do, and a post
whose answer never came is known to be `posting` (looked for before it is sent again).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from storage.db import fetch_row, insert_row, now_iso, update_row
from storage.models import MessageKey, MessageRecord, MessageState

WORK_STATES = ("pending", "posting", "withdrawn")


def get_message(db: Database, key: MessageKey) -> MessageRecord | None:
    row = fetch_row(
        db,
        "select * from slack_messages where owner_kind = ? and owner_id = ? and role = ?",
        list(key),
    )
    return MessageRecord.from_row(row) if row else None


def owned_by(db: Database, owner_kind: str, owner_id: str) -> list[MessageRecord]:
    """Every message kept for one owner (each copy of a request, say), oldest first."""
    rows = db.execute(
        "select * from slack_messages where owner_kind = ? and owner_id = ? order by id",
        [owner_kind, owner_id],
    )
    columns = [c[0] for c in rows.description]
    return [MessageRecord.from_row(dict(zip(columns, row, strict=True))) for row in rows]


def get_message_by_id(db: Database, message_id: int) -> MessageRecord | None:
    row = fetch_row(db, "select * from slack_messages where id = ?", [message_id])
    return MessageRecord.from_row(row) if row else None


def want_shown(
    db: Database,
    key: MessageKey,
    *,
    channel: str,
    payload: str,
    digest: str,
    parent_id: int | None = None,
    notify_user: str | None = None,
) -> MessageRecord:
    """Store what a message should show; it becomes work unless Slack already shows it. One
    read and at most one write (each a statement of its own, so no transaction is needed)."""
    stamp = now_iso()
    current = get_message(db, key)
    if current is None:
        owner_kind, owner_id, role = key
        insert_row(
            db,
            "slack_messages",
            {
                "owner_kind": owner_kind,
                "owner_id": owner_id,
                "role": role,
                "channel": channel,
                "parent_id": parent_id,
                "payload": payload,
                "digest": digest,
                "state": "pending",
                "attempts": 0,
                "notify_user": notify_user,
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
        stored = get_message(db, key)
        assert stored is not None
        return stored
    if current.digest == digest and current.state != "withdrawn":
        return current
    # A message that gave up is tried again when it changes (the bot may have been invited
    # since), not on every replay of the same content.
    state: MessageState
    if current.state == "posting" or current.maybe_posted:
        state = "posting"
    elif current.ts is not None and digest == current.shown_digest:
        state = "sent"
    else:
        state = "pending"
    changes = {
        "payload": payload,
        "digest": digest,
        "state": state,
        "attempts": 0,
        "next_attempt_at": None,
        "error": None,
        "updated_at": stamp,
    }
    update_row(db, "slack_messages", "id", current.id, changes)
    return current.model_copy(update=changes)


def withdraw(db: Database, key: MessageKey) -> MessageRecord | None:
    """The message should not exist: forget it if it never reached Slack, else mark it for
    deletion. Returns the row still needing work, if any."""
    with db.atomic():
        current = get_message(db, key)
        if current is None:
            return None
        if current.ts is None and not current.maybe_posted:
            db.execute("delete from slack_messages where id = ?", [current.id])
            return None
        db.execute(
            "update slack_messages set state = 'withdrawn', attempts = 0, next_attempt_at = null,"
            " updated_at = ? where id = ?",
            [now_iso(), current.id],
        )
    return get_message_by_id(db, current.id)


def transfer(db: Database, old: MessageKey, new: MessageKey, *, notify_user: str | None) -> None:
    """Hand a message to a new owner (a launch's card becomes its run's card)."""
    db.execute(
        "update slack_messages set owner_kind = ?, owner_id = ?, role = ?, notify_user = ?"
        " where owner_kind = ? and owner_id = ? and role = ?",
        [*new, notify_user, *old],
    )


def channels_with_work(db: Database) -> list[str]:
    rows = db.execute(
        "select distinct channel from slack_messages where state in (?, ?, ?)", list(WORK_STATES)
    ).fetchall()
    return [str(row[0]) for row in rows]


def work_in_channel(db: Database, channel: str) -> list[MessageRecord]:
    """Messages of one channel that need Slack, oldest first."""
    rows = db.table("slack_messages").rows_where(
        "channel = ? and state in (?, ?, ?)", [channel, *WORK_STATES], order_by="id"
    )
    return [MessageRecord.from_row(row) for row in rows]


@dataclass(frozen=True)
class LaneItem:
    """What a channel's delivery lane needs to order its work, without the payloads."""

    id: int
    role: str
    state: str
    ts: str | None
    next_attempt_at: str | None
    waits_for_parent: bool  # a reply whose thread's first message is not in Slack yet


def lane_work(db: Database, channel: str) -> list[LaneItem]:
    """`work_in_channel`, light: one query, no payloads, the thread's state joined in."""
    cursor = db.execute(
        "select m.id, m.role, m.state, m.ts, m.next_attempt_at,"
        " m.parent_id is not null and p.ts is null and coalesce(p.state, '') != 'failed'"
        " and p.id is not null"
        " from slack_messages m left join slack_messages p on p.id = m.parent_id"
        " where m.channel = ? and m.state in (?, ?, ?) order by m.id",
        [channel, *WORK_STATES],
    )
    return [LaneItem(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in cursor]


def mark_posting(db: Database, message_id: int, digest: str) -> None:
    """Recorded before the post is sent: from now on Slack may hold the message."""
    db.execute(
        "update slack_messages set state = 'posting', shown_digest = ?, posted_at = ?,"
        " updated_at = ? where id = ?",
        [digest, now_iso(), now_iso(), message_id],
    )


def mark_shown(db: Database, message_id: int, *, ts: str, digest: str) -> None:
    """Slack shows `digest` at `ts`; still work if the message changed meanwhile. One
    commit for both changes."""
    with db.atomic():
        db.execute(
            "update slack_messages set ts = ?, shown_digest = ?, attempts = 0, error = null,"
            " next_attempt_at = null, updated_at = ?,"
            " state = case when state = 'withdrawn' then 'withdrawn'"
            " when digest = ? then 'sent' else 'pending' end where id = ?",
            [ts, digest, now_iso(), digest, message_id],
        )
        # Replies that gave up because their thread was not in Slack may go now.
        db.execute(
            "update slack_messages set state = 'pending', attempts = 0, error = null,"
            " next_attempt_at = null where parent_id = ? and state = 'failed' and ts is null"
            " and posted_at is null",
            [message_id],
        )


def mark_not_posted(db: Database, message_id: int) -> None:
    """A post that Slack refused, or that was looked for and is not there."""
    db.execute(
        "update slack_messages set state = case when state = 'posting' then 'pending'"
        " else state end, shown_digest = null, posted_at = null, updated_at = ?"
        " where id = ? and ts is null",
        [now_iso(), message_id],
    )


def replace_payload(db: Database, message_id: int, *, payload: str, digest: str) -> None:
    db.execute(
        "update slack_messages set payload = ?, digest = ?, updated_at = ? where id = ?",
        [payload, digest, now_iso(), message_id],
    )


def postpone(db: Database, message_id: int, *, until: str) -> None:
    """Not due before `until` (a failed round is not counted)."""
    db.execute("update slack_messages set next_attempt_at = ? where id = ?", [until, message_id])


def schedule_retry(db: Database, message_id: int, *, error: str, retry_at: str) -> int:
    """Count a failed round and set when to try again; returns the rounds failed so far."""
    db.execute(
        "update slack_messages set attempts = attempts + 1, error = ?, next_attempt_at = ?,"
        " updated_at = ? where id = ?",
        [error[:500], retry_at, now_iso(), message_id],
    )
    row = db.execute("select attempts from slack_messages where id = ?", [message_id]).fetchone()
    return int(row[0]) if row else 0


def mark_failed(db: Database, message_id: int, error: str) -> None:
    db.execute(
        "update slack_messages set state = 'failed', error = ?, next_attempt_at = null,"
        " updated_at = ? where id = ?",
        [error[:500], now_iso(), message_id],
    )


def delete_message(db: Database, message_id: int) -> None:
    db.execute("delete from slack_messages where id = ?", [message_id])


def terminal_runs_without_result(db: Database, *, since: str) -> list[int]:
    """Finished runs that never got a result message (the bot stopped in between)."""
    rows = db.execute(
        "select run_id from runs where status in ('completed', 'failed') and updated_at > ?"
        " and cast(run_id as text) not in (select owner_id from slack_messages"
        " where owner_kind = 'run' and role = 'result')",
        [since],
    ).fetchall()
    return [int(row[0]) for row in rows]
