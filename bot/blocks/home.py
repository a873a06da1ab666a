"""The App Home tab: recent test calls and how to start one."""

from __future__ import annotations

from typing import Any

from bot.blocks.common import clock, escape, section, target_text, trim
from bot.blocks.runs import status_line
from bot.commands import USAGE
from storage.models import GradeRecord, RunRecord


def home_view(runs: list[tuple[RunRecord, GradeRecord | None]], threshold: float) -> dict[str, Any]:
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
    if not runs:
        blocks.append(section("_None yet._"))
    for run, grade in runs:
        target = target_text(run.target_type, run.target_id, run.target_name)
        blocks.append(
            section(
                f"{status_line(run, grade, threshold)}\n{target} · <#{run.channel_id}> · "
                f"{clock(run.created_at)} · “{escape(trim(run.scenario_prompt, 140))}”"
            )
        )
    return {"type": "home", "blocks": blocks[:100]}
