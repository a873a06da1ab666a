"""Ephemeral answers about suites: the list, one suite's cases, and deleting one."""

from __future__ import annotations

import json
from typing import Any

from bot import ids
from bot.blocks.common import (
    actions,
    button,
    clock,
    context,
    escape,
    escaped,
    message,
    plural,
    section,
    target_text,
    trim,
)
from bot.blocks.replies import decided
from bot.routing import Route, encode
from bot.suites import Suite, SuiteFile
from storage.models import SuiteSummary

CASES_SHOWN = 40


def suite_list(suites: list[SuiteSummary]) -> dict[str, Any]:
    if not suites:
        text = (
            "No suites yet. Import one with `/testcall suite import` or "
            "`thunderbot suite import FILE`."
        )
        return message(text.replace("`", ""), [section(text)])
    lines = [
        f"• *{escape(s.name)}* · {plural(s.case_count, 'case')}"
        + (
            f" · {target_text(s.target_type, s.target_id)}"
            if s.target_type and s.target_id is not None
            else ""
        )
        + (f" · updated {clock(s.updated_at)}" if s.updated_at else "")
        for s in suites
    ]
    return message(
        plural(len(suites), "suite"),
        [
            section("*Suites*\n" + "\n".join(lines)),
            context("Run one with `/testcall suite run NAME [target]`."),
        ],
    )


def _expectation(raw: str | None) -> str:
    if raw is None:
        return "completes and scores at or above the threshold"
    value = json.loads(raw)
    if isinstance(value, str):
        return f"“{escape(trim(value, 120))}”"
    return escape(trim(json.dumps(value, ensure_ascii=False), 200))


def suite_details(suite: Suite) -> dict[str, Any]:
    target = "none"
    if suite.target is not None and suite.target.id is not None:
        target = target_text(suite.target.kind, suite.target.id)
    cases = plural(len(suite.cases), "case")
    head = f"*Suite {escape(suite.name)}* · {cases} · default target {target}"
    settings = suite.settings.as_dict()
    if settings:
        head += " · " + ", ".join(f"{key} {escape(str(value))}" for key, value in settings.items())
    lines = [
        f"{index}. *{escaped(case.name, 80)}*: “{escape(trim(case.scenario_prompt, 120))}”"
        f" → {_expectation(case.expected_outcome)}"
        for index, case in enumerate(suite.cases[:CASES_SHOWN], start=1)
    ]
    if len(suite.cases) > CASES_SHOWN:
        lines.append(f"_and {len(suite.cases) - CASES_SHOWN} more_")
    fallback = f"Suite {escape(suite.name)}: {cases}"
    return message(fallback, [section(head), section("\n".join(lines))])


def confirm_delete(name: str, cases: int) -> dict[str, Any]:
    route = encode(Route(suite=name))
    text = (
        f"Delete suite *{escape(name)}* and its {plural(cases, 'case')}? Past runs stay in their "
        "threads."
    )
    return message(
        text.replace("*", ""),
        [
            section(text),
            actions(
                f"delete:{name}",
                button("Delete suite", ids.DELETE_SUITE, route, style="danger"),
                button("Keep it", ids.KEEP_SUITE, route),
            ),
        ],
    )


def deleted(name: str, by: str) -> dict[str, Any]:
    return decided(f"Deleted suite `{escape(name)}` (<@{by}>).")


def kept(name: str) -> dict[str, Any]:
    return decided(f"Kept suite `{escape(name)}`.")


def imported(suite: SuiteFile, replaced: bool) -> str:
    verb = "Replaced" if replaced else "Imported"
    return f"{verb} suite `{escape(suite.name)}` with {plural(len(suite.cases), 'case')}."
