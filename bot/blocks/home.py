"""The App Home tab: recent test calls and how to start one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.blocks.admin import channel_text
from bot.blocks.common import context, escape, run_ref, section, target_text, trim, when
from bot.blocks.runs import status_line
from bot.commands import USAGE
from storage.models import GradeRecord, RunRecord


def home_view(
    runs: list[tuple[RunRecord, GradeRecord | None]],
    threshold: float,
    links: Mapping[int, str] | None = None,
    *,
    unanswered: Mapping[str, str] | None = None,
    looked_through: int | None = None,
) -> dict[str, Any]:
    """Recent test calls the reader may see, each with the day and time it started (in the
    reader's time zone) and its run id linked to its thread when `links` (by run id) has it.
    `unanswered`: channels Slack could not say the reader is in (channel -> Slack's error),
    whose runs by others are left out. `looked_through`: how many of the workspace's newest
    runs were looked through, when older ones were not (the list may be cut short)."""
    links = links or {}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "thunderbot"}},
        section(
            "Start a test call from any channel with "
            f"`{escape(USAGE['run'])}`. Every test call is billed at 2× the normal rate; "
            "I always ask before starting one."
        ),
        {"type": "divider"},
        section("*Recent test calls*"),
    ]
    if not runs and looked_through is None:
        blocks.append(section("_None yet._"))
    elif not runs:
        blocks.append(
            section(
                f"_None you can see among the latest {looked_through:,} test calls in this "
                "workspace: runs in channels you are not in are not shown._"
            )
        )
    elif looked_through is not None:
        blocks.append(
            context(
                f"Besides your own, I looked through the latest {looked_through:,} test calls "
                "in this workspace; older ones may be missing here, and runs in channels you "
                "are not in are not shown."
            )
        )
    if unanswered:
        places = ", ".join(
            f"{channel_text(channel)} ({escape(problem)})"
            for channel, problem in sorted(unanswered.items())[:5]
        )
        blocks.append(
            context(
                f"Only your own runs are shown from {places}: I couldn't ask Slack who is in "
                "it. Runs in channels you are not in are never shown here."
            )
        )
    for run, grade in runs:
        target = target_text(run.target_type, run.target_id, run.target_name)
        details = [
            run_ref(run.run_id, links.get(run.run_id)),
            target,
            f"<#{run.channel_id}>",
            when(run.created_at),
            f"“{escape(trim(run.scenario_prompt, 140))}”",
        ]
        blocks.append(
            section(
                f"{status_line(run, grade, threshold)}\n"
                + " · ".join(detail for detail in details if detail)
            )
        )
    return {"type": "home", "blocks": blocks[:100]}
