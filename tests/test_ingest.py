"""Webhook ingest: stored durably before the 2xx, deliveries arriving together committed as one."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
import sqlite_utils
from sqlite_utils import Database
from thunderphone.webhooks import compute_signature

from bot.ingest import Delivery, GroupCommit
from bot.sandbox.stack import WEBHOOK_SECRET
from storage import inbox, launches
from storage import runs as run_store
from storage.db import open_db
from storage.models import Launch, RunRecord
from tests.serve_process import ServedBot

ROUTE = "/webhooks/thunderphone"
TEST_TIMEOUT = 90


def signed(event_id: str, run_id: int) -> tuple[bytes, dict[str, str]]:
    """A `test-call.completed` delivery signed as ThunderPhone signs it."""
    envelope = {
        "event_id": event_id,
        "type": "test-call.completed",
        "data": {"test_call_run": {"id": run_id, "status": "completed", "call_id": None}},
    }
    body = json.dumps(envelope).encode()
    stamp = int(time.time())
    signature = compute_signature(
        WEBHOOK_SECRET, timestamp=stamp, method="POST", path=ROUTE, body=body
    )
    headers = {
        "Content-Type": "application/json",
        "X-ThunderPhone-Signature-V2": f"t={stamp},v1={signature}",
    }
    return body, headers


def stored_keys(path: Path) -> set[str]:
    db = sqlite_utils.Database(path)
    try:
        return {row["key"] for row in db.query("select key from webhook_events")}
    finally:
        db.close()


async def test_accepted_webhooks_survive_a_sigkill_right_after_their_2xx(tmp_path: Path) -> None:
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path, step_seconds=None) as served:
        deliveries = [signed(f"evt-{n}", 990_000 + n) for n in range(20)]
        async with httpx.AsyncClient() as client:
            answers = await asyncio.gather(
                *(client.post(served.webhook_url, content=b, headers=h) for b, h in deliveries)
            )
        assert [a.status_code for a in answers] == [200] * 20
        # Killed the moment the last answer arrived: no cleanup, no chance to flush anything.
        killed = await served.stop_bot(signal.SIGKILL)
        assert killed.code == -signal.SIGKILL
        assert stored_keys(served.db_path) == {f"evt-{n}" for n in range(20)}

        await served.start_bot()
        body, headers = deliveries[0]
        async with httpx.AsyncClient() as client:
            again = await client.post(served.webhook_url, content=body, headers=headers)
        assert again.json() == {"ok": True, "duplicate": True}, "known after the restart"


@pytest.mark.parametrize("enabled", [False, True], ids=["default", "THUNDERBOT_ACCESS_LOG"])
async def test_the_access_log_is_off_unless_asked_for(tmp_path: Path, enabled: bool) -> None:
    env = {"THUNDERBOT_ACCESS_LOG": "true"} if enabled else {}
    async with asyncio.timeout(TEST_TIMEOUT), ServedBot(tmp_path, env=env) as served:
        async with httpx.AsyncClient() as client:
            assert (await client.get(served.url + "/healthz")).status_code == 200
        exited = await served.stop_bot()
        logged = '"GET /healthz HTTP/1.1" 200' in exited.output
        assert logged == enabled, exited.output


async def test_deliveries_arriving_together_share_one_commit(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "ingest.db"))
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    group = GroupCommit(db)
    fresh = await asyncio.gather(
        *(group.store(Delivery(f"evt-{n % 8}", "call.graded", "{}")) for n in range(10))
    )
    # Ten deliveries, two of them repeats of earlier ones in the same group.
    assert fresh == [True] * 8 + [False] * 2
    assert [s for s in statements if s.upper().startswith("COMMIT")] == ["COMMIT"]
    assert db.execute("select count(*) from webhook_events").fetchone() == (8,)
    # A later delivery is a group of its own, and a duplicate of a stored one stays one.
    assert await group.store(Delivery("evt-1", "call.graded", "{}")) is False
    db.close()


def pending_keys(db: Database) -> set[str]:
    return {str(row["key"]) for row in inbox.pending_events(db)}


async def test_a_report_about_a_run_the_bot_did_not_start_is_stored_as_applied(
    tmp_path: Path,
) -> None:
    db = open_db(str(tmp_path / "ingest.db"))
    run_store.save_run(
        db,
        RunRecord(
            run_id=7, team_id="T", channel_id="C", started_by="U", target_type="agent", target_id=12
        ),
    )
    group = GroupCommit(db)
    completed = "test-call.completed"
    await asyncio.gather(
        group.store(Delivery("ours", completed, "{}", run_id=7)),
        group.store(Delivery("theirs", completed, "{}", run_id=8)),
        group.store(Delivery("graded", "call.graded", "{}")),
    )
    # The organisation's other runs need no work; the bot's own run and any grade do.
    assert pending_keys(db) == {"ours", "graded"}
    stored = db.execute("select key from webhook_events").fetchall()
    assert {row[0] for row in stored} == {"ours", "theirs", "graded"}

    # While a launch waits for its answer, a run not on record may be its run: kept for the
    # worker, which waits for the launch to settle.
    launch = launches.save_launch(
        db,
        Launch(id="L", team_id="T", channel_id="C", user_id="U", target_type="agent", target_id=12),
    )
    assert launches.claim_launch(db, launch.id, to="launching", by="U")
    await group.store(Delivery("maybe-ours", completed, "{}", run_id=9))
    assert pending_keys(db) == {"ours", "graded", "maybe-ours"}
    db.close()
