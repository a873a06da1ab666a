"""ThunderPhone webhooks: signed as ThunderPhone signs them, stored before the 2xx, applied as
idempotent merges whatever the order or number of deliveries."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from thunderphone.webhooks import compute_signature

from bot import ids
from bot.launch import ANSWER_TIMEOUT
from bot.sandbox.stack import WEBHOOK_SECRET, LocalStack
from bot.thunderphone import parse_test_call_completed, sign_v1
from handlers.webhooks import ROUTE
from storage import inbox
from storage.db import now_iso
from tests.helpers import (
    cards,
    confirm,
    finish_run,
    outbox_idle,
    results,
    rows,
    shown,
    slack_calls,
    start_run,
    wait_for_card,
    wait_for_graded_result,
    wait_for_result,
)

EVENT = {
    "event_id": "evt-1",
    "type": "call.graded",
    "data": {"call_id": 42, "grade": {"score": 90}},
}


def encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def v2_header(body: bytes, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = compute_signature(secret, timestamp=stamp, method="POST", path=ROUTE, body=body)
    return f"t={stamp},v1={signature}"


async def post(stack: LocalStack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            stack.webhook_url, content=body, headers={"Content-Type": "application/json", **headers}
        )


async def test_a_valid_v2_signature_is_accepted_and_stored_before_the_answer(
    stack: LocalStack,
) -> None:
    body = encode(EVENT)
    response = await post(stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body)})
    assert response.status_code == 200
    [stored] = rows(stack, "webhook_events")
    assert (stored["key"], stored["event_type"], stored["body"]) == (
        "evt-1",
        "call.graded",
        body.decode(),
    )


async def test_a_valid_v1_signature_is_accepted_when_v2_is_absent(stack: LocalStack) -> None:
    body = encode(EVENT)
    response = await post(stack, body, {"X-ThunderPhone-Signature": sign_v1(WEBHOOK_SECRET, body)})
    assert response.status_code == 200
    assert len(rows(stack, "webhook_events")) == 1


async def test_v1_is_refused_when_v2_is_required() -> None:
    async with LocalStack(step_seconds=None, thunderphone_require_v2_signature=True) as stack:
        body = encode(EVENT)
        response = await post(
            stack, body, {"X-ThunderPhone-Signature": sign_v1(WEBHOOK_SECRET, body)}
        )
        assert response.status_code == 401
        assert "V2 required" in response.json()["error"]
        assert rows(stack, "webhook_events") == []


async def test_either_secret_verifies_during_a_rotation() -> None:
    async with LocalStack(
        step_seconds=None, thunderphone_webhook_secret=f"whsec_new, {WEBHOOK_SECRET}"
    ) as stack:
        for number, secret in enumerate(["whsec_new", WEBHOOK_SECRET]):
            body = encode({**EVENT, "event_id": f"evt-{number}"})
            v2 = await post(
                stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body, secret=secret)}
            )
            assert v2.status_code == 200
        wrong = encode({**EVENT, "event_id": "evt-x"})
        refused = await post(
            stack, wrong, {"X-ThunderPhone-Signature-V2": v2_header(wrong, secret="whsec_old")}
        )
        assert refused.status_code == 401
        assert [row["key"] for row in rows(stack, "webhook_events")] == ["evt-0", "evt-1"]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("stale", "timestamp outside the 300 s window"),
        ("tampered", "signature does not match"),
        ("missing", "missing signature header"),
        ("v1 tampered", "signature does not match"),
    ],
)
async def test_bad_signatures_are_refused_with_401(
    stack: LocalStack, case: str, reason: str
) -> None:
    body = encode(EVENT)
    headers: dict[str, str] = {}
    if case == "stale":
        headers["X-ThunderPhone-Signature-V2"] = v2_header(body, timestamp=int(time.time()) - 301)
    elif case == "tampered":
        headers["X-ThunderPhone-Signature-V2"] = v2_header(body)
        body = body.replace(b"90", b"99")
    elif case == "v1 tampered":
        headers["X-ThunderPhone-Signature"] = sign_v1(WEBHOOK_SECRET, body)
        body = body.replace(b"90", b"99")
    response = await post(stack, body, headers)
    assert response.status_code == 401
    assert response.json()["error"] == reason
    assert rows(stack, "webhook_events") == []


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        encode({"data": {}}),
        encode({"type": "test-call.completed", "data": {"status": "completed"}}),
        encode({"type": "call.graded", "data": {"grade": {"score": 90}}}),
        b"[1, 2]",
    ],
)
async def test_malformed_or_unknown_shapes_are_refused_with_400(
    stack: LocalStack, body: bytes
) -> None:
    response = await post(stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body)})
    assert response.status_code == 400
    assert rows(stack, "webhook_events") == []


async def test_unknown_event_types_are_acknowledged_and_ignored(stack: LocalStack) -> None:
    body = encode({"event_id": "e", "type": "telephony.turn", "data": {"call_id": 1}})
    response = await post(stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body)})
    assert response.status_code == 202
    assert response.json() == {"ok": True, "ignored": "telephony.turn"}
    assert rows(stack, "webhook_events") == []


async def test_graded_before_completed_ends_in_the_same_result(live_stack: LocalStack) -> None:
    live_stack.sandbox.grade_before_complete = True
    maria = live_stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(live_stack)
    grade = next(iter(live_stack.sandbox.grades.values()))
    assert result.blocks[0]["text"]["text"].startswith(f"✅ Passed · {round(grade['score'])}%")
    await wait_for_card(live_stack, f"{round(grade['score'])}%")
    await live_stack.sandbox.wait_until_settled()
    order = [d.type for d in live_stack.sandbox.deliveries]
    assert order.index("call.graded") < order.index("test-call.completed")
    assert len(results(live_stack)) == 1


async def test_duplicate_deliveries_change_nothing_anyone_sees(stack: LocalStack) -> None:
    stack.sandbox.duplicate_webhooks = True
    result = await finish_run(stack, await start_run(stack))
    await stack.sandbox.wait_until_settled()
    await outbox_idle(stack)
    before = (slack_calls(stack, "chat.postMessage"), slack_calls(stack, "chat.update"))
    card_before, result_before = shown(cards(stack)[0]), shown(result)

    # The same events again, under new delivery ids, as a retry after a lost 2xx would be.
    for delivery in stack.sandbox.deliveries[:]:
        envelope = json.loads(delivery.body)
        envelope["event_id"] = envelope["event_id"] + "-again"
        body = encode(envelope)
        response = await post(stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body)})
        assert response.status_code == 200
    await stack.fake.wait_for(
        lambda: all(row["processed_at"] for row in rows(stack, "webhook_events")) or None
    )
    await outbox_idle(stack)

    accepted = [d for d in stack.sandbox.deliveries if d.status == 200]
    assert len(accepted) == 4, "each event was delivered twice"
    assert (slack_calls(stack, "chat.postMessage"), slack_calls(stack, "chat.update")) == before
    assert shown(cards(stack)[0]) == card_before and shown(results(stack)[0]) == result_before
    assert len(results(stack)) == 1


async def test_a_lost_completion_webhook_is_made_up_for_by_polling(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    stack.sandbox.webhook_url = None  # ThunderPhone never reaches the bot
    result = await finish_run(stack, run_id)
    assert "✅ Passed · " in shown(result)
    assert rows(stack, "webhook_events") == []


async def test_a_webhook_held_back_while_its_launch_was_looked_for_goes_once_it_is_found(
    stack: LocalStack,
) -> None:
    stack.sandbox.fail_next(
        "POST", "/v1/test-calls", 502, {"detail": "Bad gateway"}, after_handling=True
    )
    maria = stack.user()
    confirmation = await confirm(maria)
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: "can't tell yet" in shown(confirmation) or None)
    [ours] = stack.sandbox.runs
    # The run ends while nobody knows it is ours: its completion is kept, to be tried again.
    for _ in range(2):
        await stack.sandbox.advance(ours)

    def held_back() -> list[dict[str, Any]]:
        return [
            row
            for row in rows(stack, "webhook_events")
            if row["event_type"] == "test-call.completed" and row["attempts"]
        ]

    [row] = await stack.fake.wait_for(held_back)
    # It has been tried many times already: its next try is an hour away.
    stack.services.db.execute(
        "update webhook_events set next_attempt_at = ? where key = ?",
        [now_iso(-timedelta(hours=1)), row["key"]],
    )
    # Once the answer is overdue, the bot looks for the run and finds it.
    stack.services.db.execute(
        "update launches set decided_at = ?", [now_iso(ANSWER_TIMEOUT + timedelta(seconds=10))]
    )
    await wait_for_card(stack, f"run {ours}")
    await stack.fake.wait_for(
        lambda: all(r["processed_at"] for r in rows(stack, "webhook_events")) or None
    )
    assert [r["error"] for r in rows(stack, "webhook_events")] == [None]


async def test_a_later_grade_replaces_an_earlier_one(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    await finish_run(stack, run_id)
    call_id = stack.sandbox.runs[run_id]["call_id"]
    grade = dict(stack.sandbox.grades[max(stack.sandbox.grades)])

    async def send_grade(score: int, graded_at: str, event_id: str) -> None:
        envelope = {
            "event_id": event_id,
            "type": "call.graded",
            "data": {
                "call_id": call_id,
                "grade": {**grade, "score": score, "graded_at": graded_at},
            },
        }
        body = encode(envelope)
        response = await post(stack, body, {"X-ThunderPhone-Signature-V2": v2_header(body)})
        assert response.status_code == 200

    await send_grade(41, "2099-01-01T00:00:00.000Z", "regrade")
    await wait_for_result(stack, "❌ Failed · score 41% &lt; 80%")
    await send_grade(97, "2000-01-01T00:00:00.000Z", "stale-grade")
    await stack.fake.wait_for(
        lambda: all(row["processed_at"] for row in rows(stack, "webhook_events")) or None
    )
    assert "score 41% &lt; 80%" in shown(results(stack)[0])
    await wait_for_card(stack, "❌ Failed · score 41% &lt; 80%")


async def test_details_that_could_not_be_fetched_are_fetched_later(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    await stack.sandbox.advance(run_id)  # in progress: the call exists
    call_id = stack.sandbox.runs[run_id]["call_id"]
    for _ in range(3):  # every attempt of the first read fails
        stack.sandbox.fail_next("GET", f"/v1/calls/{call_id}/transcript", 503, {"detail": "busy"})
    await stack.sandbox.advance(run_id)
    # The result may first say the transcript isn't there yet; the poller fetches it again.
    later = await wait_for_result(stack, "*Agent:*")
    # No grade came within the grace period: the result says so, and changes when it comes.
    assert later.text.startswith("⏳ Not graded yet") and len(results(stack)) == 1
    reads = [r for r in stack.sandbox.requests if r.path == f"/v1/calls/{call_id}/transcript"]
    assert len(reads) >= 4, "three failed reads, then one that worked"
    assert rows(stack, "transcripts")[0]["call_id"] == call_id


async def test_a_slack_failure_does_not_lose_the_card(stack: LocalStack) -> None:
    run_id = await start_run(stack)
    stack.fake.fail_next("chat.update", error="internal_error", status=200, retry_after=None)
    await stack.sandbox.advance(run_id)
    await stack.fake.wait_for(
        lambda: any(not c.ok for c in stack.fake.calls_to("chat.update")) or None
    )
    await wait_for_card(stack, "📞 In progress")
    result = await finish_run(stack, run_id)
    assert "✅ Passed · " in shown(result)


def completion_applied(stack: LocalStack, run_id: int) -> bool:
    """Whether a completion report about `run_id` has been applied."""
    for row in rows(stack, "webhook_events"):
        data = json.loads(row["body"]).get("data")
        if row["event_type"] == "test-call.completed" and row["processed_at"]:  # noqa: SIM102
            if parse_test_call_completed(data).id == run_id:
                return True
    return False


def cards_finished(stack: LocalStack) -> int:
    """Cards showing their run is over (with its grade once the call's details are in)."""
    over = ("⏳ Completed, waiting for the grade", "✅ Passed")
    return sum(any(text in shown(card) for text in over) for card in cards(stack))


async def start_runs(stack: LocalStack, count: int) -> list[int]:
    """Start `count` runs one after another, each once the one before has its card."""
    for started in range(1, count + 1):
        user = stack.user()
        await user.click(await confirm(user), ids.START_RUN)
        await stack.fake.wait_for(
            lambda: sum("⏳ Queued" in shown(card) for card in cards(stack)) == started or None  # noqa: B023
        )
    return sorted(stack.sandbox.runs)


async def test_a_report_about_a_run_in_hand_waits_its_turn_without_holding_up_others() -> None:
    async with LocalStack(step_seconds=None, poll_seconds=3600) as stack:
        held, alongside, later = await start_runs(stack, 3)
        stack.sandbox.webhook_url = None  # the deliveries are stored below
        for run_id in (held, alongside, later):
            await stack.sandbox.advance(run_id)  # in progress
            await stack.sandbox.advance(run_id)  # completed

        def deliver(*run_ids: int) -> None:
            inbox.store_events(
                stack.services.db,
                [
                    (f"done-{run_id}", "test-call.completed", completion(stack, run_id))
                    for run_id in run_ids
                ],
            )
            stack.services.inbox_signal.set()

        # Something else (a click, a fetch of the call's details) is working on one run.
        async with stack.services.run_lock(held):
            deliver(held, alongside)
            await stack.fake.wait_for(lambda: completion_applied(stack, alongside))
            # A report that comes after is not held up behind the one waiting its turn.
            deliver(later)
            await stack.fake.wait_for(lambda: completion_applied(stack, later))
            # The held run's report waits instead of being merged behind the back of whoever
            # holds the run.
            statuses = {row["run_id"]: row["status"] for row in rows(stack, "runs")}
            assert statuses == {held: "queued", alongside: "completed", later: "completed"}
        await stack.fake.wait_for(lambda: completion_applied(stack, held))
        await stack.fake.wait_for(lambda: cards_finished(stack) == 3 or None)
        statuses = {row["run_id"]: row["status"] for row in rows(stack, "runs")}
        assert statuses == dict.fromkeys((held, alongside, later), "completed")


async def test_a_delivery_that_fails_is_kept_without_undoing_those_applied_with_it() -> None:
    # No polling after the start-up check: only the deliveries below can move the runs.
    async with LocalStack(step_seconds=None, poll_seconds=3600) as stack:
        runs = await start_runs(stack, 2)
        stack.sandbox.webhook_url = None  # the deliveries are stored below, in one go
        for run_id in runs:
            await stack.sandbox.advance(run_id)  # in progress
            await stack.sandbox.advance(run_id)  # completed
        deliveries = [
            (f"done-{run_id}", "test-call.completed", completion(stack, run_id)) for run_id in runs
        ]
        # A stored delivery that cannot be applied: a shape an earlier version let through.
        broken = ("broken", "test-call.completed", '{"data": {"test_call_run": "oops"}}')
        # Stored together, so the worker applies them in one chunk.
        inbox.store_events(stack.services.db, [deliveries[0], broken, deliveries[1]])
        stack.services.inbox_signal.set()

        def settled() -> dict[str, dict[str, Any]] | None:
            by_key = {row["key"]: row for row in rows(stack, "webhook_events")}
            tried = all(row["processed_at"] or row["attempts"] for row in by_key.values())
            return by_key if tried else None

        by_key = await stack.fake.wait_for(settled)
        assert [by_key[key]["processed_at"] is not None for key, _, _ in deliveries] == [True] * 2
        assert by_key["broken"]["processed_at"] is None
        assert by_key["broken"]["attempts"] == 1
        assert "ThunderPhoneBadResponse" in by_key["broken"]["error"]
        statuses = {row["run_id"]: row["status"] for row in rows(stack, "runs")}
        assert statuses == dict.fromkeys(runs, "completed")
        await stack.fake.wait_for(lambda: cards_finished(stack) == 2 or None)


def completion(stack: LocalStack, run_id: int) -> str:
    """A `test-call.completed` delivery about the sandbox's run as it is now."""
    run = stack.sandbox.runs[run_id]
    envelope = {
        "event_id": f"e-{run_id}",
        "type": "test-call.completed",
        "data": {"test_call_run": run},
    }
    return encode(envelope).decode()
