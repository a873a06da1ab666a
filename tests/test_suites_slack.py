"""Suites from Slack, end to end: a run diffed against its blessed baseline (a regression, a
fix and a flaky case), Bless, the batch and import forms, export and delete."""

from __future__ import annotations

import json
from typing import Any

from bot import ids
from bot.sandbox.slack import Message, View
from bot.sandbox.stack import LocalStack
from bot.suites import dump_suite, suite_from_record
from storage import suites as suite_store
from tests.helpers import CHANNEL, rows, shown
from tests.test_batches import batch_posts, confirm, import_suite

CASES_V1: list[dict[str, Any]] = [
    {
        "name": "refund-policy",
        "scenario_prompt": "[score: 91] Ask about the refund policy.",
        "expected_outcome": "success",
    },
    {
        "name": "human-handoff",
        "scenario_prompt": "[score: 55] Ask for a human.",
        "expected_outcome": {"min_score": 80},
    },
    {
        "name": "off-topic",
        "scenario_prompt": "[flaky] Ask about the weather.",
        "expected_outcome": "success",
    },
    {
        "name": "order-status",
        "scenario_prompt": "[score: 90] [tool: lookup_order order=12345] Ask where my order is.",
        "expected_outcome": {
            "tools_called": [{"name": "lookup_order", "arguments": {"order": 12345}}]
        },
    },
]


def text_input(value: str) -> dict[str, object]:
    return {ids.INPUT_VALUE: {"type": "plain_text_input", "value": value}}


def suite_cards(stack: LocalStack) -> list[Message]:
    return [m for m in stack.fake.messages.get(CHANNEL, []) if m.thread_ts is None]


async def run_suite(stack: LocalStack, text: str, nth: int) -> Message:
    """Run a suite from Slack and wait for its card to show the verdict."""
    confirmation = await confirm(stack, text)
    await stack.user().click(confirmation, ids.START_BATCH)

    def finished() -> Message | None:
        found = suite_cards(stack)
        if len(found) > nth and "cases passed" in shown(found[nth]):
            return found[nth]
        return None

    return await stack.fake.wait_for(finished, timeout=60)


async def test_a_suite_run_is_diffed_against_its_blessed_baseline(live_stack: LocalStack) -> None:
    stack = live_stack
    import_suite(stack, "refunds", CASES_V1, target="agent:12")
    first = await run_suite(stack, "suite run refunds --stagger 0", 0)
    assert "3 of 4 cases passed" in shown(first)
    await stack.fake.wait_for(
        lambda: (
            any(
                "First run of suite refunds" in shown(m)
                for m in stack.fake.thread(CHANNEL, first.ts)
            )
            or None
        ),
        timeout=30,
    )

    # Li blesses it: the button gives way to a line of record.
    await stack.user("U0LI").click(first, ids.BLESS_BATCH)
    blessed = await stack.fake.wait_for(
        lambda: "Blessed as baseline by <@U0LI>" in shown(suite_cards(stack)[0]) or None
    )
    assert blessed
    assert ids.BLESS_BATCH not in shown(suite_cards(stack)[0])
    [baseline] = rows(stack, "suite_baselines")
    assert (baseline["suite"], baseline["blessed_by"]) == ("refunds", "U0LI")
    [blessing] = [row for row in rows(stack, "audit_events") if row["action"] == "blessed"]
    assert (blessing["user_id"], blessing["subject_id"]) == ("U0LI", baseline["batch_id"])

    # The agent changes: one case gets worse, one better, one stays flaky.
    v2 = [dict(case) for case in CASES_V1]
    v2[0]["scenario_prompt"] = "[score: 62] Ask about the refund policy."
    v2[1]["scenario_prompt"] = "[score: 88] Ask for a human."
    import_suite(stack, "refunds", v2, target="agent:12")
    second = await run_suite(stack, "suite run refunds --repeat 3 --stagger 0", 1)

    assert "1 regressed · 1 fixed · 1 flaky · 1 unchanged" in shown(second)
    summary = await stack.fake.wait_for(
        lambda: next(
            (
                m
                for m in stack.fake.thread(CHANNEL, second.ts)
                if "Compared with the baseline" in shown(m)
            ),
            None,
        ),
        timeout=30,
    )
    text = shown(summary)
    assert "blessed by <@U0LI>" in text
    assert "refund-policy" in text and "passed → failed" in text and "91% → 62%" in text
    assert "human-handoff" in text and "failed → passed" in text
    assert "off-topic" in text and "not counted as a regression" in text
    assert "order-status" not in text, "only what changed is listed"
    assert len(batch_posts(stack)) == 2
    replies = [m for m in stack.fake.thread(CHANNEL, second.ts) if m is not summary]
    assert len(replies) == 12, "one reply per run"
    refund = [m for m in replies if "refund-policy" in m.blocks[0]["text"]["text"]]
    assert len(refund) == 3
    assert all("outcome failure, expected success" in shown(m) for m in refund)


async def test_the_batch_form_checks_its_fields_then_asks_for_consent(stack: LocalStack) -> None:
    maria = stack.user()
    reply = await maria.slash("batch agent:12")
    assert reply.ephemeral is None
    form: View = await stack.fake.wait_for(
        lambda: next(iter(stack.fake.open_stack("U0MARIA")), None)
    )
    assert form.callback_id == ids.BATCH_MODAL
    status, body = await maria.submit_view(
        form.id,
        {
            ids.BATCH_TARGET: text_input("agent:12"),
            ids.BATCH_STAGGER: text_input("99"),
            ids.BATCH_REPEAT: text_input("1"),
            ids.BATCH_PROMPTS: text_input(""),
        },
    )
    assert status == 200
    errors = json.loads(body)["errors"] if isinstance(body, str) else body["errors"]
    assert "from 0 to 60" in errors[ids.BATCH_STAGGER]
    assert "at least one scenario" in errors[ids.BATCH_PROMPTS]
    assert rows(stack, "batches") == []

    await maria.submit_view(
        form.id,
        {
            ids.BATCH_TARGET: text_input("agent:12"),
            ids.BATCH_STAGGER: text_input("0"),
            ids.BATCH_REPEAT: text_input("2"),
            ids.BATCH_PROMPTS: text_input("Ask about refunds.\n\nAsk for opening hours.\n"),
        },
    )
    confirmation = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "Start 4 test calls?" in shown(e)), None)
    )
    assert "2 scenarios × 2" in shown(confirmation)
    await maria.click(confirmation, ids.START_BATCH)
    await stack.fake.wait_for(lambda: len(batch_posts(stack)) == 1 or None)
    assert batch_posts(stack)[0].json["scenario_prompts"] == [
        "Ask about refunds.",
        "Ask about refunds.",
        "Ask for opening hours.",
        "Ask for opening hours.",
    ]


async def test_importing_a_suite_in_slack_names_the_problem_or_saves_it_whole(
    stack: LocalStack,
) -> None:
    maria = stack.user()
    await maria.slash("suite import")
    form: View = await stack.fake.wait_for(
        lambda: next(iter(stack.fake.open_stack("U0MARIA")), None)
    )
    assert form.callback_id == ids.SUITE_IMPORT_MODAL
    _, body = await maria.submit_view(
        form.id,
        {ids.SUITE_NAME: text_input("refunds"), ids.SUITE_JSON: text_input('[{"name": "a",\n')},
    )
    errors = body["errors"] if isinstance(body, dict) else json.loads(body)["errors"]
    assert "line 2, column 1" in errors[ids.SUITE_JSON]
    duplicate = json.dumps(
        [
            {"name": "a", "scenario_prompt": "One."},
            {"name": "A", "scenario_prompt": "Two."},
        ]
    )
    _, body = await maria.submit_view(
        form.id, {ids.SUITE_NAME: text_input("refunds"), ids.SUITE_JSON: text_input(duplicate)}
    )
    errors = body["errors"] if isinstance(body, dict) else json.loads(body)["errors"]
    assert "used twice" in errors[ids.SUITE_JSON]
    assert rows(stack, "suites") == [] and rows(stack, "suite_cases") == []

    await maria.submit_view(
        form.id,
        {ids.SUITE_NAME: text_input("Refunds"), ids.SUITE_JSON: text_input(json.dumps(CASES_V1))},
    )
    note = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "Imported suite" in e.text), None)
    )
    assert "`refunds` with 4 cases" in note.text
    assert [row["name"] for row in rows(stack, "suite_cases")] == [c["name"] for c in CASES_V1]


async def test_list_show_export_and_delete(stack: LocalStack) -> None:
    import_suite(stack, "refunds", CASES_V1, target="agent:12")
    maria = stack.user()
    listed = await maria.slash("suite list")
    assert listed.ephemeral is not None and "refunds* · 4 cases · agent 12" in shown(
        listed.ephemeral
    )
    details = await maria.slash("suite show refunds")
    assert details.ephemeral is not None
    assert "human-handoff" in shown(details.ephemeral) and "min_score" in shown(details.ephemeral)

    exported = await maria.slash("suite export refunds")
    assert exported.ephemeral is not None and "Exporting suite" in exported.ephemeral.text
    upload = await stack.fake.wait_for(
        lambda: next((f for f in stack.fake.files.values() if f.completed), None)
    )
    record = suite_store.get_suite(stack.services.db, "refunds")
    assert record is not None
    assert upload.filename == "refunds.json"
    assert upload.content == dump_suite(suite_from_record(record)).encode()

    asked = await maria.slash("suite delete refunds")
    assert asked.ephemeral is not None and "Delete suite" in shown(asked.ephemeral)
    assert suite_store.get_suite(stack.services.db, "refunds") is not None, "asks first"
    await maria.click(asked.ephemeral, ids.DELETE_SUITE)
    await stack.fake.wait_for(lambda: "Deleted suite" in shown(asked.ephemeral) or None)
    assert suite_store.get_suite(stack.services.db, "refunds") is None
    assert rows(stack, "suite_cases") == []


async def test_a_suite_file_attached_to_the_import_form_is_read_with_the_bot_token(
    stack: LocalStack,
) -> None:
    maria = stack.user()
    await maria.slash("suite import")
    form: View = await stack.fake.wait_for(
        lambda: next(iter(stack.fake.open_stack("U0MARIA")), None)
    )
    bad = stack.fake.add_file("broken.json", b'{"cases": [}')
    _, body = await maria.submit_view(
        form.id, {ids.SUITE_FILE: {ids.INPUT_VALUE: {"type": "file_input", "files": [bad]}}}
    )
    errors = body["errors"] if isinstance(body, dict) else json.loads(body)["errors"]
    assert "line 1, column 12" in errors[ids.SUITE_FILE]
    assert rows(stack, "suites") == []

    attached = stack.fake.add_file("checkout.json", json.dumps(CASES_V1).encode())
    await maria.submit_view(
        form.id, {ids.SUITE_FILE: {ids.INPUT_VALUE: {"type": "file_input", "files": [attached]}}}
    )
    note = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "Imported suite" in e.text), None)
    )
    assert "`checkout` with 4 cases" in note.text, "named after the file"
    assert [row["name"] for row in rows(stack, "suite_cases")] == [c["name"] for c in CASES_V1]


async def test_the_import_form_needs_a_file_or_a_paste(stack: LocalStack) -> None:
    maria = stack.user()
    await maria.slash("suite import")
    form: View = await stack.fake.wait_for(
        lambda: next(iter(stack.fake.open_stack("U0MARIA")), None)
    )
    _, body = await maria.submit_view(form.id, {})
    errors = body["errors"] if isinstance(body, dict) else json.loads(body)["errors"]
    assert errors == {ids.SUITE_JSON: "Attach the suite file, or paste it here."}
