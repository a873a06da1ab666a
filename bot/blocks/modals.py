"""Modals: flagging a call for human review, and reading a whole transcript."""

from __future__ import annotations

from typing import Any

from bot import ids
from bot.blocks.common import context, escaped, section, trim
from bot.blocks.turns import turn_line
from bot.routing import Route, encode
from storage.models import RunRecord

TURNS_PER_PAGE = 40
SEVERITIES = ("info", "warning", "critical")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(value: str) -> dict[str, Any]:
    return {"text": _plain(value.capitalize()), "value": value}


def flag_modal(run: RunRecord, *, turns: int) -> dict[str, Any]:
    """Flag a call for human review: becomes a ThunderPhone issue report."""
    title = trim(f"Test call: {run.scenario_prompt}", 150)
    turn_hint = f"1 to {turns}" if turns else "the turn number"
    return {
        "type": "modal",
        "callback_id": ids.FLAG_MODAL,
        "private_metadata": encode(Route(run_id=run.run_id)),
        "title": _plain("Flag for review"),
        "submit": _plain("File report"),
        "close": _plain("Cancel"),
        "blocks": [
            section(
                f"Run {run.run_id} · call {run.call_id}. This files an issue report in "
                "ThunderPhone with a link back to this thread."
            ),
            {
                "type": "input",
                "block_id": ids.FLAG_TITLE,
                "label": _plain("Title"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.INPUT_VALUE,
                    "initial_value": title,
                    "max_length": 255,
                },
            },
            {
                "type": "input",
                "block_id": ids.FLAG_SEVERITY,
                "label": _plain("Severity"),
                "element": {
                    "type": "static_select",
                    "action_id": ids.INPUT_VALUE,
                    "options": [_option(value) for value in SEVERITIES],
                    "initial_option": _option("warning"),
                },
            },
            {
                "type": "input",
                "block_id": ids.FLAG_DESCRIPTION,
                "optional": True,
                "label": _plain("What went wrong?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": ids.INPUT_VALUE,
                    "multiline": True,
                    "max_length": 3000,
                },
            },
            {
                "type": "input",
                "block_id": ids.FLAG_TURN,
                "optional": True,
                "label": _plain("Turn where it went wrong"),
                "hint": _plain(f"Optional: {turn_hint}, as numbered in the transcript."),
                "element": {"type": "plain_text_input", "action_id": ids.INPUT_VALUE},
            },
        ],
    }


def transcript_modal(
    run: RunRecord, entries: list[dict[str, Any]], page: int = 0, *, loading: bool = False
) -> dict[str, Any]:
    """The whole transcript, numbered, paged so each page stays within Slack's limits."""
    pages = max(1, -(-len(entries) // TURNS_PER_PAGE))
    page = min(max(page, 0), pages - 1)
    start = page * TURNS_PER_PAGE
    shown = entries[start : start + TURNS_PER_PAGE]
    blocks: list[dict[str, Any]] = [
        context(f"Run {run.run_id} · call {run.call_id} · “{escaped(run.scenario_prompt, 200)}”")
    ]
    chunk: list[str] = []
    for number, entry in enumerate(shown, start=start + 1):
        line = f"`{number:>3}`  {turn_line(entry, limit=1200)}"
        if sum(len(item) + 1 for item in chunk) + len(line) > 2900:
            blocks.append(section("\n".join(chunk)))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(section("\n".join(chunk)))
    if loading:
        blocks.append(section("_Fetching the transcript from ThunderPhone…_"))
    elif not entries:
        blocks.append(section("_No transcript was recorded._"))
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(_page_button("← Previous", run.run_id, page - 1))
        if page < pages - 1:
            nav.append(_page_button("Next →", run.run_id, page + 1))
        blocks.append(context(f"Page {page + 1} of {pages} · {len(entries)} turns"))
        blocks.append({"type": "actions", "block_id": "transcript_nav", "elements": nav})
    return {
        "type": "modal",
        "callback_id": ids.TRANSCRIPT_MODAL,
        "private_metadata": encode(Route(run_id=run.run_id)),
        "title": _plain("Transcript"),
        "close": _plain("Close"),
        "blocks": blocks,
    }


def _page_button(text: str, run_id: int, page: int) -> dict[str, Any]:
    return {
        "type": "button",
        "text": _plain(text),
        "action_id": ids.TRANSCRIPT_PAGE,
        "value": encode(Route(run_id=run_id, page=page)),
    }


def _text_input(
    block_id: str,
    label: str,
    *,
    initial: str = "",
    multiline: bool = False,
    hint: str = "",
    optional: bool = False,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": ids.INPUT_VALUE}
    if initial:
        element["initial_value"] = initial
    if multiline:
        element["multiline"] = True
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label),
        "element": element,
        "optional": optional,
    }
    if hint:
        block["hint"] = _plain(hint)
    return block


def batch_modal(channel_id: str, *, target: str = "") -> dict[str, Any]:
    """A batch by form: one scenario per line. The confirmation comes after, as for the
    command."""
    directions = [
        {"text": _plain("outbound: the test bot calls the agent"), "value": "outbound"},
        {"text": _plain("inbound: the agent calls the test bot"), "value": "inbound"},
    ]
    return {
        "type": "modal",
        "callback_id": ids.BATCH_MODAL,
        "private_metadata": encode(Route(channel=channel_id)),
        "title": _plain("Batch of test calls"),
        "submit": _plain("Review"),
        "close": _plain("Cancel"),
        "blocks": [
            section(
                "Every test call is billed at 2× the normal rate; you'll see the total and "
                "confirm before anything starts."
            ),
            _text_input(
                ids.BATCH_TARGET, "Target", initial=target, hint="agent:12, number:5 or an alias"
            ),
            {
                "type": "input",
                "block_id": ids.BATCH_DIRECTION,
                "label": _plain("Direction"),
                "element": {
                    "type": "static_select",
                    "action_id": ids.INPUT_VALUE,
                    "options": directions,
                    "initial_option": directions[0],
                },
            },
            _text_input(ids.BATCH_STAGGER, "Seconds between launches (0-60)", initial="2"),
            _text_input(ids.BATCH_REPEAT, "Runs of each scenario (1-5)", initial="1"),
            _text_input(
                ids.BATCH_PROMPTS,
                "Scenarios, one per line",
                multiline=True,
                hint="Up to 100 runs in all (scenarios × runs of each).",
            ),
        ],
    }


def suite_import_modal(channel_id: str) -> dict[str, Any]:
    """Paste a suite file: a JSON array of {name, scenario_prompt, expected_outcome}."""
    return {
        "type": "modal",
        "callback_id": ids.SUITE_IMPORT_MODAL,
        "private_metadata": encode(Route(channel=channel_id)),
        "title": _plain("Import a suite"),
        "submit": _plain("Import"),
        "close": _plain("Cancel"),
        "blocks": [
            _text_input(
                ids.SUITE_NAME,
                "Suite name",
                hint="Letters, digits, '.', '-' or '_'. Leave empty to use the file's name.",
                optional=True,
            ),
            {
                "type": "input",
                "block_id": ids.SUITE_FILE,
                "label": _plain("Attach the suite file"),
                "element": {
                    "type": "file_input",
                    "action_id": ids.INPUT_VALUE,
                    "filetypes": ["json"],
                    "max_files": 1,
                },
                "optional": True,
            },
            _text_input(
                ids.SUITE_JSON,
                "…or paste it (JSON)",
                multiline=True,
                hint='[{"name": "refund-policy", "scenario_prompt": "…", "expected_outcome": '
                '"success"}, …]. Importing a suite that exists replaces it.',
                optional=True,
            ),
        ],
    }
