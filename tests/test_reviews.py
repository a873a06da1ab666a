"""After a result: flag a call for human review, read the whole transcript."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot import ids
from bot.sandbox.slack import Message, View
from bot.sandbox.stack import LocalStack
from storage.runs import save_transcript
from tests.helpers import (
    PROMPT,
    cards,
    confirm,
    rows,
    shown,
    wait_for_graded_result,
    wait_for_result,
)


@pytest.fixture
async def finished(live_stack: LocalStack) -> AsyncIterator[tuple[LocalStack, Message]]:
    maria = live_stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    yield live_stack, await wait_for_graded_result(live_stack)


def issue_posts(stack: LocalStack) -> list[object]:
    return [
        r.json
        for r in stack.sandbox.requests
        if r.method == "POST" and r.path.endswith("/issue-reports")
    ]


async def open_modal(stack: LocalStack, result: Message, action_id: str) -> View:
    user = stack.user()
    assert await user.click(result, action_id) == 200
    return await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))


def text_input(value: str) -> dict[str, object]:
    return {ids.INPUT_VALUE: {"type": "plain_text_input", "value": value}}


def severity(value: str) -> dict[str, object]:
    return {ids.INPUT_VALUE: {"type": "static_select", "selected_option": {"value": value}}}


async def test_flagging_files_an_issue_report_and_leaves_a_record(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    modal = await open_modal(stack, result, ids.FLAG_RUN)
    title_input = modal.view["blocks"][1]["element"]
    assert title_input["initial_value"] == f"Test call: {PROMPT}"

    status, body = await stack.user().submit_view(
        modal.id,
        {
            ids.FLAG_TITLE: text_input("Agent paused too long"),
            ids.FLAG_SEVERITY: severity("critical"),
            ids.FLAG_DESCRIPTION: text_input("Five seconds of <silence> &\n after the question."),
            ids.FLAG_TURN: text_input("2"),
        },
    )
    assert status == 200 and not body
    flagged = await wait_for_result(stack, "Flagged for review")

    run = stack.sandbox.runs[max(stack.sandbox.runs)]
    link = f"https://sandbox.slack.com/archives/C0QA/p{flagged.ts.replace('.', '')}"
    link += f"?thread_ts={cards(stack)[0].ts}&cid=C0QA"
    [report] = issue_posts(stack)
    permalink = stack.fake.calls_to("chat.getPermalink")
    assert permalink, "the report links back to the thread"
    assert report == {
        "title": "Agent paused too long",
        "description": "Five seconds of <silence> &\n after the question.",
        "severity": "critical",
        "source": "user",
        "timestamp_seconds": report["timestamp_seconds"],  # type: ignore[index]
        "failing_turn_index": 1,
        "metadata": {
            "slack_permalink": link,
            "slack_user_id": "U0MARIA",
            "slack_channel_id": "C0QA",
            "thunderbot_run_id": run["id"],
        },
    }
    transcript = stack.sandbox.transcripts[run["call_id"]]
    assert report["timestamp_seconds"] == transcript[1]["start_ms"] // 1000  # type: ignore[index]

    record = "🚩 Flagged for review by <@U0MARIA> · critical · “Agent paused too long”"
    [line] = [
        element["text"]
        for block in flagged.blocks
        if block["type"] == "context"
        for element in block["elements"]
        if record in element["text"]
    ]
    assert line.endswith("\nFive seconds of &lt;silence&gt; &amp; after the question."), line
    buttons = [e["action_id"] for e in flagged.blocks[-1]["elements"]]
    assert ids.FLAG_RUN not in buttons and ids.RUN_AGAIN in buttons
    [flag] = rows(stack, "flags")
    issue = next(iter(stack.sandbox.issue_reports.values()))
    assert (flag["status"], flag["issue_id"], flag["trace_id"]) == (
        "filed",
        issue["id"],
        issue["trace_id"],
    )


async def test_a_bad_turn_number_is_refused_in_the_modal(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    modal = await open_modal(stack, result, ids.FLAG_RUN)
    turns = len(stack.sandbox.transcripts[stack.sandbox.runs[max(stack.sandbox.runs)]["call_id"]])
    status, body = await stack.user().submit_view(
        modal.id, {ids.FLAG_TURN: text_input("99"), ids.FLAG_TITLE: text_input("   ")}
    )
    assert status == 200
    assert body == {
        "response_action": "errors",
        "errors": {
            ids.FLAG_TITLE: "Give the report a title.",
            ids.FLAG_TURN: f"Enter from 1 to {turns}, as numbered in the transcript.",
        },
    }
    assert issue_posts(stack) == [] and rows(stack, "flags") == []


async def test_when_thunderphone_refuses_the_report_the_person_is_told(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    call_id = stack.sandbox.runs[max(stack.sandbox.runs)]["call_id"]
    stack.sandbox.fail_next("POST", f"/v1/calls/{call_id}/issue-reports", 503, {"detail": "down"})
    modal = await open_modal(stack, result, ids.FLAG_RUN)
    await stack.user().submit_view(modal.id)
    told = await stack.fake.wait_for(
        lambda: next(
            (e for e in stack.fake.ephemerals if "couldn't file the review flag" in e.text), None
        )
    )
    assert "ThunderPhone had a problem on its side (HTTP 503)" in told.text
    assert rows(stack, "flags") == [], "the flag can be tried again"
    assert ids.FLAG_RUN in shown(stack.fake.find_message("C0QA", result.ts))


async def test_the_transcript_button_shows_every_turn(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    modal = await open_modal(stack, result, ids.SHOW_TRANSCRIPT)
    call_id = stack.sandbox.runs[max(stack.sandbox.runs)]["call_id"]
    transcript = stack.sandbox.transcripts[call_id]
    text = "\n".join(b["text"]["text"] for b in modal.view["blocks"] if b["type"] == "section")
    lines = text.splitlines()
    assert len(lines) == len(transcript)
    assert lines[0].startswith("`  1`  *Agent:*")
    assert any("*Tool:*  lookup_order(order=12345)" in line for line in lines)


async def test_a_long_transcript_is_paged(finished: tuple[LocalStack, Message]) -> None:
    stack, result = finished
    call_id = stack.sandbox.runs[max(stack.sandbox.runs)]["call_id"]
    long = [
        {"role": "user" if i % 2 else "assistant", "content": f"turn {i + 1}"} for i in range(90)
    ]
    save_transcript(stack.services.db, call_id, long)

    modal = await open_modal(stack, result, ids.SHOW_TRANSCRIPT)
    assert "Page 1 of 3 · 90 turns" in str(modal.view["blocks"])
    assert await stack.user().click_in_view(modal.id, ids.TRANSCRIPT_PAGE) == 200
    updated = await stack.fake.wait_for(
        lambda: modal if "Page 2 of 3" in str(modal.view["blocks"]) else None
    )
    sections = [b["text"]["text"] for b in updated.view["blocks"] if b["type"] == "section"]
    assert sections[0].splitlines()[0] == "` 41`  *Agent:*  turn 41"


async def test_a_window_slack_would_not_open_is_explained(
    finished: tuple[LocalStack, Message],
) -> None:
    stack, result = finished
    stack.fake.fail_next("views.open", error="expired_trigger_id", status=200, retry_after=None)
    assert await stack.user().click(result, ids.FLAG_RUN) == 200
    told = await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "open that window" in e.text), None)
    )
    assert told.text == "Slack didn't let me open that window in time. Press the button again."
