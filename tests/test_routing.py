"""The routing data in button values and private_metadata: one codec, round-trips, reads the
forms earlier releases posted, and never raises on what Slack hands back."""

from __future__ import annotations

import json
import typing
from dataclasses import fields
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import ids
from bot.blocks.modals import TURNS_PER_PAGE, flag_modal, transcript_modal
from bot.blocks.replies import confirmation
from bot.blocks.runs import run_result
from bot.routing import MAX_INT, MAX_LENGTH, Route, decode, encode
from bot.sandbox.slack import Message
from bot.sandbox.stack import LocalStack
from storage.models import GradeRecord, Launch, RunRecord
from storage.runs import save_transcript
from tests.helpers import (
    CHANNEL,
    confirm,
    launches_posted,
    rows,
    shown,
    wait_for_graded_result,
    wait_for_result,
)

BUTTON_VALUE_LIMIT = 2000  # Slack's limits
PRIVATE_METADATA_LIMIT = 3000

VALUES: dict[type, st.SearchStrategy[Any]] = {
    int: st.integers(min_value=0, max_value=MAX_INT),
    str: st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
}


def _field_values(name: str) -> st.SearchStrategy[Any]:
    hint = typing.get_type_hints(Route)[name]
    [kind] = [k for k in typing.get_args(hint) if k is not type(None)]
    return st.none() | VALUES[kind]


# Every field of Route, whatever fields it has.
ROUTES = st.builds(Route, **{f.name: _field_values(f.name) for f in fields(Route)})


@given(ROUTES)
def test_every_route_round_trips_within_slacks_limits(route: Route) -> None:
    text = encode(route)
    assert decode(text) == route
    assert len(text) <= min(BUTTON_VALUE_LIMIT, PRIVATE_METADATA_LIMIT, MAX_LENGTH)
    assert encode(route) == text, "stable"


def test_the_encoding_is_short_and_readable() -> None:
    assert encode(Route(run_id=7110, page=2)) == "run=7110;page=2"
    assert encode(Route(launch_id="0f" * 16)) == "launch=" + "0f" * 16
    assert encode(Route(page=0)) == "page=0"
    assert encode(Route()) == ""


@pytest.mark.parametrize(
    "route",
    [
        Route(launch_id="a;b"),
        Route(launch_id="a=b"),
        Route(launch_id="with space"),
        Route(launch_id=""),
        Route(launch_id="x" * 65),
        Route(launch_id="é"),
        Route(run_id=-1),
        Route(run_id=MAX_INT + 1),
        Route(run_id=True),
        Route(page=-2),
        Route(run_id="7110"),  # type: ignore[arg-type]
        Route(launch_id=7110),  # type: ignore[arg-type]
    ],
)
def test_values_that_could_break_the_format_are_refused(route: Route) -> None:
    with pytest.raises(ValueError):
        encode(route)


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("7110", Route(run_id=7110)),
        ("0", Route(run_id=0)),
        ("0123456789abcdef0123456789abcdef", Route(launch_id="0123456789abcdef0123456789abcdef")),
        ("01234567890123456789012345678901", Route(launch_id="01234567890123456789012345678901")),
        ("7110:2", Route(run_id=7110, page=2)),
        ("7110:0", Route(run_id=7110, page=0)),
        ('{"run_id": 7110}', Route(run_id=7110)),
        ('{"run_id":7110}', Route(run_id=7110)),
    ],
)
def test_the_forms_the_previous_release_posted_are_still_read(text: str, route: Route) -> None:
    assert decode(text) == route


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("", Route()),
        (None, Route()),
        (7110, Route()),
        ("garbage", Route()),
        ("run=", Route()),
        ("run=abc", Route()),
        ("run=7110;page=x", Route(run_id=7110)),
        ("run=-1", Route()),
        ("run=1.5", Route()),
        ("run=²", Route()),
        ("run= 7110", Route()),
        (f"run={MAX_INT + 1}", Route()),
        ("run=" + "9" * 500, Route()),
        ("run=7110;batch=4;case=c1", Route(run_id=7110, batch_id="4")),
        ("run=7110;shelf=4;case=c1", Route(run_id=7110)),
        ("zz=1;;=;run=7;=3;page", Route(run_id=7)),
        ("run=1;run=2", Route(run_id=1)),
        ("launch=a;b", Route(launch_id="a")),
        ("launch=a b", Route()),
        ("run=7110;" * 1000, Route()),  # longer than anything the bot writes
        ("7110:", Route()),
        (":2", Route()),
        ("7110:2:3", Route()),
        ("ABCDEF0123456789abcdef0123456789", Route()),
        ("0123456789abcdef0123456789abcde", Route()),
        ('{"run_id": "7110"}', Route()),
        ('{"run_id": true}', Route()),
        ('{"run_id": -3}', Route()),
        ('{"run_id": 7.5}', Route()),
        ('{"run_id": 7110', Route()),
        ("[7110]", Route()),
        ("{}", Route()),
        ('{"page": 2}', Route()),
        ('{"":' + "[" * 1995, Route()),  # deep enough to exhaust the JSON parser's recursion
        ("[" * 1999, Route()),
        ("{" * 1999, Route()),
    ],
)
def test_what_cannot_be_read_is_left_out(text: Any, route: Route) -> None:
    assert decode(text) == route


@given(st.text(max_size=300) | st.text(alphabet='=;:{}[]"0123456789abf launchrunpage_-'))
def test_decoding_never_raises_and_gives_an_encodable_route(text: str) -> None:
    route = decode(text)
    assert decode(encode(route)) == route


# ------------------------------------------------------------------ what the builders emit

RUN = RunRecord(
    run_id=7110,
    team_id="T1",
    channel_id="C0QA",
    started_by="U0MARIA",
    target_type="agent",
    target_id=12,
    scenario_prompt="Ask about refunds.",
    status="completed",
    call_id=987654321,
)
LAUNCH = Launch(
    id="0123456789abcdef0123456789abcdef",
    team_id="T1",
    channel_id="C0QA",
    user_id="U0MARIA",
    target_type="agent",
    target_id=12,
    scenario_prompt="Ask about refunds.",
)


def buttons(payload: dict[str, Any]) -> dict[str, Route]:
    return {
        element["action_id"]: decode(element["value"])
        for block in payload["blocks"]
        for element in block.get("elements", [])
        if element.get("type") == "button"
    }


def test_result_buttons_carry_the_run() -> None:
    result = run_result(RUN, GradeRecord(call_id=987654321, score=0.9), [], 0.8)
    assert buttons(result) == {
        ids.FLAG_RUN: Route(run_id=7110),
        ids.SHOW_TRANSCRIPT: Route(run_id=7110),
        ids.RUN_AGAIN: Route(run_id=7110),
    }


def test_confirmation_buttons_carry_the_launch() -> None:
    assert buttons(confirmation(LAUNCH, [])) == {
        ids.START_RUN: Route(launch_id=LAUNCH.id),
        ids.CANCEL_RUN: Route(launch_id=LAUNCH.id),
    }


def test_modals_carry_the_run_and_their_pages() -> None:
    assert decode(flag_modal(RUN, turns=3)["private_metadata"]) == Route(run_id=7110)
    entries = [{"role": "user", "content": f"turn {i}"} for i in range(TURNS_PER_PAGE * 3)]
    modal = transcript_modal(RUN, entries, page=1)
    assert decode(modal["private_metadata"]) == Route(run_id=7110)
    [nav] = [block for block in modal["blocks"] if block.get("block_id") == "transcript_nav"]
    assert [decode(e["value"]) for e in nav["elements"]] == [
        Route(run_id=7110, page=0),
        Route(run_id=7110, page=2),
    ]


# ------------------------------------------- messages the previous release posted, clicked


async def test_an_old_confirmation_button_still_starts_the_run(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation_shown = await confirm(maria)
    [launch] = rows(stack, "launches")
    assert await maria.click(confirmation_shown, ids.START_RUN, value=launch["id"]) == 200
    await stack.fake.wait_for(lambda: "Started run" in shown(confirmation_shown) or None)
    assert len(launches_posted(stack)) == 1


async def test_an_unreadable_confirmation_button_starts_nothing(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation_shown = await confirm(maria)
    assert await maria.click(confirmation_shown, ids.START_RUN, value="launch=a b") == 200
    await stack.fake.wait_for(lambda: "has expired" in shown(confirmation_shown) or None)
    assert launches_posted(stack) == []
    assert [row["status"] for row in rows(stack, "launches")] == ["proposed"]


async def _finished(stack: LocalStack) -> tuple[Message, int]:
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    [run] = rows(stack, "runs")
    return result, run["run_id"]


async def test_old_result_and_transcript_buttons_still_work(live_stack: LocalStack) -> None:
    stack = live_stack
    result, run_id = await _finished(stack)
    [run] = rows(stack, "runs")
    entries = [{"role": "user", "content": f"turn {i + 1}"} for i in range(TURNS_PER_PAGE + 5)]
    save_transcript(stack.services.db, run["call_id"], entries)

    assert await stack.user().click(result, ids.SHOW_TRANSCRIPT, value=str(run_id)) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    assert "Page 1 of 2" in str(modal.view["blocks"])
    old_page = f"{run_id}:1"
    assert await stack.user().click_in_view(modal.id, ids.TRANSCRIPT_PAGE, value=old_page) == 200
    await stack.fake.wait_for(lambda: "Page 2 of 2" in str(modal.view["blocks"]) or None)


async def test_an_old_flag_modal_still_files_its_report(live_stack: LocalStack) -> None:
    stack = live_stack
    result, run_id = await _finished(stack)
    assert await stack.user().click(result, ids.FLAG_RUN, value=str(run_id)) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    modal.view["private_metadata"] = json.dumps({"run_id": run_id})
    status, body = await stack.user().submit_view(modal.id)
    assert status == 200 and not body
    await wait_for_result(stack, "Flagged for review")
    assert [row["status"] for row in rows(stack, "flags")] == ["filed"]


async def test_a_modal_without_readable_metadata_is_refused(live_stack: LocalStack) -> None:
    stack = live_stack
    result, _ = await _finished(stack)
    await stack.user().click(result, ids.FLAG_RUN)
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    modal.view["private_metadata"] = "run=nope"
    status, body = await stack.user().submit_view(modal.id)
    assert status == 200
    assert body == {
        "response_action": "errors",
        "errors": {ids.FLAG_TITLE: "I have no record of this test call any more."},
    }
    assert rows(stack, "flags") == []


async def test_an_unknown_run_is_reported_gone(stack: LocalStack) -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Transcript"},
        "action_id": ids.SHOW_TRANSCRIPT,
        "value": encode(Route(run_id=424242)),
    }
    message = stack.fake.add_message(
        CHANNEL, text="old", blocks=[{"type": "actions", "elements": [button]}]
    )
    assert await stack.user().click(message, ids.SHOW_TRANSCRIPT) == 200
    await stack.fake.wait_for(
        lambda: next((e for e in stack.fake.ephemerals if "no record" in e.text), None)
    )
