"""Batches and suite runs from Slack, end to end over HTTP: one consent, one card edited in
place, one reply per run, exactly one set of ThunderPhone batches."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from bot import ids
from bot.batches import PART_ANSWER_TIMEOUT
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import LocalStack
from bot.suites import parse_suite, suite_record
from storage import suites as suite_store
from storage.db import now_iso
from tests.helpers import CHANNEL, cards, outbox_idle, rows, shown

BATCHES = "/v1/test-call-batches"


def batch_posts(stack: LocalStack) -> list[Any]:
    return [r for r in stack.sandbox.requests if r.method == "POST" and r.path == BATCHES]


def replies(stack: LocalStack) -> list[Message]:
    found = cards(stack)
    return stack.fake.thread(CHANNEL, found[0].ts) if found else []


async def confirm(stack: LocalStack, text: str, user: str = "U0MARIA") -> Ephemeral:
    reply = await stack.user(user).slash(text)
    assert reply.ephemeral is not None, reply.body_text
    return reply.ephemeral


async def card_showing(stack: LocalStack, needle: str, timeout: float = 15) -> Message:
    def ready() -> Message | None:
        found = cards(stack)
        return found[0] if found and needle in shown(found[0]) else None

    return await stack.fake.wait_for(ready, timeout=timeout)


def import_suite(stack: LocalStack, name: str, cases: list[dict[str, Any]], **extra: Any) -> None:
    text = json.dumps({"name": name, "cases": cases, **extra})
    suite = parse_suite(text, name=None, filename=None)
    suite_store.save_suite(stack.services.db, suite_record(suite, created_by="U0MARIA"))


async def test_a_batch_of_five_end_to_end(live_stack: LocalStack) -> None:
    stack = live_stack
    prompts = [
        "[score: 92] Ask about refunds.",
        "[score: 88] Ask for opening hours.",
        "[fail] Call and hang up.",
        "[score: 95] Ask to change an address.",
        "[score: 90] Ask about a delayed order 12345.",
    ]
    text = "batch agent:12 --stagger 0 " + " ".join(f'"{p}"' for p in prompts)
    confirmation = await confirm(stack, text)
    assert "Start 5 test calls?" in shown(confirmation)
    assert "5 scenarios · stagger 0 s" in shown(confirmation)
    assert "billed at 2× the normal rate" in shown(confirmation)
    assert "and 2 more" in shown(confirmation)
    assert batch_posts(stack) == [], "nothing is sent before consent"

    await stack.user().click(confirmation, ids.START_BATCH)
    card = await card_showing(stack, "❌ 1 of 5 failed")

    [request] = batch_posts(stack)
    assert request.json["scenario_prompts"] == prompts
    assert (request.json["run_count"], request.json["stagger_seconds"]) == (5, 0)
    assert request.json["consent_to_charge"] is True
    assert len(cards(stack)) == 1 and cards(stack)[0].ts == card.ts, "one card, edited in place"
    assert card.edits >= 1
    assert "5/5 · 4 passed · 1 failed" in shown(card)
    thread = await stack.fake.wait_for(lambda: replies(stack) if len(replies(stack)) == 5 else None)
    headings = [m.blocks[0]["text"]["text"].split("\n")[0] for m in thread]
    assert sorted(headings) == sorted(f"*“{p}”*" for p in prompts)
    failed = next(m for m in thread if "[fail]" in shown(m))
    assert "❌ Failed" in shown(failed)
    assert "Started 5 runs — see the card below." in shown(confirmation)
    assert [row["status"] for row in rows(stack, "batches")] == ["launched"]
    assert len(rows(stack, "runs")) == 5


async def test_two_start_clicks_at_once_send_one_set_of_batches(stack: LocalStack) -> None:
    confirmation = await confirm(stack, 'batch agent:12 "One." "Two." "Three."')
    # Two of Maria's Slack clients (only the person who asked may press Start).
    maria, again = stack.user("U0MARIA"), stack.user("U0MARIA")
    await asyncio.gather(
        maria.click(confirmation, ids.START_BATCH), again.click(confirmation, ids.START_BATCH)
    )
    await card_showing(stack, "0/3")
    answers = await stack.fake.wait_for(
        lambda: (
            [c.args.get("text", "") for c in stack.fake.calls_to("response_url")]
            if len(stack.fake.calls_to("response_url")) == 2
            else None
        )
    )
    assert sum(text.startswith("Started 3 runs") for text in answers) == 1
    assert sum(text.startswith("Already started by") for text in answers) == 1
    assert len(batch_posts(stack)) == 1
    assert len(rows(stack, "runs")) == 3 and len(cards(stack)) == 1


async def test_a_45_case_suite_is_sent_as_three_batches_after_one_consent(
    stack: LocalStack,
) -> None:
    cases = [{"name": f"case-{i}", "scenario_prompt": f"Ask question {i}."} for i in range(45)]
    import_suite(stack, "big", cases, target="agent:12")
    confirmation = await confirm(stack, "suite run big --stagger 0")
    assert "Run suite big: 45 test calls?" in shown(confirmation)
    assert "Sent to ThunderPhone as 3 batches of at most 20." in shown(confirmation)

    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "0/45")
    sizes = [len(r.json["scenario_prompts"]) for r in batch_posts(stack)]
    assert sizes == [20, 20, 5]
    sent = [p for r in batch_posts(stack) for p in r.json["scenario_prompts"]]
    assert sent == [case["scenario_prompt"] for case in cases], "prompts in the order given"
    names = [r.json["name"] for r in batch_posts(stack)]
    assert len(set(names)) == 3
    assert len(rows(stack, "runs")) == 45


async def test_a_refused_second_batch_is_told_and_not_retried(stack: LocalStack) -> None:
    stack.sandbox.fail_next("POST", BATCHES, 402, {"detail": "Insufficient balance."}, skip=1)
    prompts = " ".join(f'"Scenario {i}."' for i in range(25))
    confirmation = await confirm(stack, f"batch agent:12 {prompts}")
    await stack.user().click(confirmation, ids.START_BATCH)
    card = await card_showing(stack, "did not start")
    assert "Runs 21–25 did not start" in shown(card)
    assert "balance is empty" in shown(card)
    assert "0/20" in shown(card)
    assert len(batch_posts(stack)) == 2, "the refused part is not sent again"
    await stack.fake.wait_for(lambda: "Started 20 of 25 runs" in shown(confirmation) or None)
    assert "The rest did not start" in shown(confirmation)
    assert len(rows(stack, "runs")) == 20
    assert [p["status"] for p in rows(stack, "batch_parts")] == ["launched", "refused"]


async def test_limits_are_refused_before_anything_is_stored(stack: LocalStack) -> None:
    for text, problem in [
        ('batch agent:12 --repeat 9 "A."', "from 1 to 5"),
        ('batch agent:12 --stagger 61 "A."', "from 0 to 60"),
        ('batch agent:12 "A." ""', "Scenario prompt 2 is empty."),
        ("suite run nosuch agent:12", 'There is no suite "nosuch"'),
    ]:
        reply = await stack.user().slash(text)
        assert reply.ephemeral is not None and problem in shown(reply.ephemeral)
    assert rows(stack, "batches") == [] and batch_posts(stack) == []


async def test_results_arriving_in_any_order_and_twice_show_once(stack: LocalStack) -> None:
    stack.sandbox.duplicate_webhooks = True
    confirmation = await confirm(
        stack, 'batch agent:12 "[score: 90] One." "[score: 91] Two." "[score: 92] Three."'
    )
    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "0/3")
    run_ids = sorted(stack.sandbox.runs)
    for run_id in reversed(run_ids):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    card = await card_showing(stack, "✅ All 3 passed")
    await stack.fake.wait_for(lambda: len(replies(stack)) == 3 or None)
    await stack.sandbox.wait_until_settled()
    await stack.fake.wait_for(
        lambda: all(row["processed_at"] for row in rows(stack, "webhook_events")) or None
    )
    assert len(replies(stack)) == 3 and len(cards(stack)) == 1
    assert "3/3 · 3 passed · 0 failed" in shown(card)


async def test_twenty_results_within_a_second_cost_at_most_five_card_edits(
    stack: LocalStack,
) -> None:
    prompts = " ".join(f'"[score: 90] Scenario {i}."' for i in range(20))
    confirmation = await confirm(stack, f"batch agent:12 --stagger 0 {prompts}")
    await stack.user().click(confirmation, ids.START_BATCH)
    card = await card_showing(stack, "0/20")
    run_ids = sorted(stack.sandbox.runs)
    for _ in range(2):  # in progress, then completed
        await asyncio.gather(*(stack.sandbox.advance(run_id) for run_id in run_ids))
    edits_before = card.edits
    await asyncio.gather(*(stack.sandbox.advance(run_id) for run_id in run_ids))  # graded
    await card_showing(stack, "✅ All 20 passed")
    assert card.edits - edits_before <= 5, f"{card.edits - edits_before} edits"


async def test_a_click_after_a_restart_sends_nothing_again(stack: LocalStack) -> None:
    confirmation = await confirm(stack, 'batch agent:12 "One." "Two."')
    stale = copy.deepcopy(confirmation)  # what another open Slack client still shows
    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "0/2")
    await stack.stop_bot()
    await stack.start_bot()
    await stack.user().click(stale, ids.START_BATCH)
    await stack.fake.wait_for(lambda: "Already started by <@U0MARIA>" in shown(stale) or None)
    assert len(batch_posts(stack)) == 1 and len(cards(stack)) == 1


async def test_a_part_whose_answer_was_lost_is_found_by_its_name(stack: LocalStack) -> None:
    stack.sandbox.fail_next("POST", BATCHES, 502, {"detail": "Bad gateway"}, after_handling=True)
    confirmation = await confirm(stack, 'batch agent:12 "[score: 90] One." "[score: 91] Two."')
    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "Checking with ThunderPhone whether runs 1–2 started")
    await stack.fake.wait_for(lambda: "can't tell yet" in shown(confirmation) or None)
    assert rows(stack, "runs") == [] and len(batch_posts(stack)) == 1

    # Once the answer is overdue, the poller looks the part up by the name it was sent with.
    stack.services.db.execute(
        "update batch_parts set updated_at = ?", [now_iso(PART_ANSWER_TIMEOUT * 2)]
    )
    await stack.fake.wait_for(lambda: len(rows(stack, "runs")) == 2 or None)
    for run_id in sorted(stack.sandbox.runs):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    card = await card_showing(stack, "✅ All 2 passed")
    assert "Checking with ThunderPhone" not in shown(card)
    assert len(batch_posts(stack)) == 1, "found, never sent again"
    assert [p["status"] for p in rows(stack, "batch_parts")] == ["launched"]


async def test_an_answer_that_leaves_out_the_runs_is_completed_by_reading_the_batch(
    stack: LocalStack,
) -> None:
    # ThunderPhone creates the batch but its answer lists no runs.
    stack.sandbox.fail_next(
        "POST", BATCHES, 201, {"id": 301, "status": "in_progress"}, after_handling=True
    )
    confirmation = await confirm(stack, 'batch agent:12 "[score: 90] One." "[score: 91] Two."')
    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "0/2")
    assert sorted(row["run_id"] for row in rows(stack, "runs")) == sorted(stack.sandbox.runs)
    assert any(r.method == "GET" and r.path == f"{BATCHES}/301" for r in stack.sandbox.requests)
    assert len(batch_posts(stack)) == 1


async def test_a_batch_left_starting_by_a_stop_says_which_runs_never_went(
    stack: LocalStack,
) -> None:
    prompts = " ".join(f'"[score: 90] Scenario {i}."' for i in range(25))
    confirmation = await confirm(stack, f"batch agent:12 {prompts}")
    [batch] = rows(stack, "batches")
    # The bot stopped right after the click was claimed, before anything was sent.
    stack.services.db.execute(
        "update batches set status = 'launching', decided_by = 'U0MARIA', decided_at = ?",
        [now_iso(PART_ANSWER_TIMEOUT * 2)],
    )
    card = await card_showing(stack, "did not start")
    assert "Runs 1–20 did not start: not sent: the bot stopped while starting" in shown(card)
    assert batch_posts(stack) == [], "nothing is sent after the fact"
    await stack.user().click(confirmation, ids.START_BATCH)
    await stack.fake.wait_for(lambda: "This batch did not start" in shown(confirmation) or None)
    assert batch_posts(stack) == []
    assert [p["status"] for p in rows(stack, "batch_parts")] == ["skipped", "skipped"]
    assert rows(stack, "batches")[0]["status"] == "failed" and batch["id"]


async def test_app_home_links_a_batch_run_to_its_reply(stack: LocalStack) -> None:
    confirmation = await confirm(stack, 'batch agent:12 "[score: 90] One." "[score: 91] Two."')
    await stack.user().click(confirmation, ids.START_BATCH)
    await card_showing(stack, "0/2")
    link = f"https://slack.com/archives/{CHANNEL}/p{cards(stack)[0].ts.replace('.', '')}"
    await stack.fake.wait_for(lambda: "Started 2 runs" in shown(confirmation) or None)
    assert f"Started 2 runs — see <{link}|the card> below." in shown(confirmation)
    for run_id in sorted(stack.sandbox.runs):
        for _ in range(3):
            await stack.sandbox.advance(run_id)
    card = await card_showing(stack, "✅ All 2 passed")
    thread = await stack.fake.wait_for(lambda: replies(stack) if len(replies(stack)) == 2 else None)
    await outbox_idle(stack)

    maria = stack.user()
    assert await maria.open_home() == 200
    home = await stack.fake.wait_for(
        lambda: next((v for v in stack.fake.views.values() if v.type == "home"), None)
    )
    text = str(home.view["blocks"])
    for run in rows(stack, "runs"):
        [reply] = [m for m in thread if f"[score: {run['scenario_prompt'][8:10]}]" in shown(m)]
        reply_link = (
            f"https://slack.com/archives/{CHANNEL}/p{reply.ts.replace('.', '')}"
            f"?thread_ts={card.ts}&amp;cid={CHANNEL}"
        )
        assert f"<{reply_link}|run {run['run_id']}>" in text, (
            "each row opens its run's reply in the batch's thread"
        )
