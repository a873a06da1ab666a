"""What `thunderbot ci` prints and writes, as pure functions of a batch report: no I/O.

- `case_results` turns a suite run, finished or cut short by the timeout, into one result per
  case: its verdict against the baseline, or why it was not measured. `exit_code` is the
  gate's answer: 0 every case passed, 1 something failed, 2 not everything was measured.
- `header`, `estimate_line`, `run_line`, `live_table` and `summary_table` are the terminal's
  text; `junit_xml` is the JUnit report CI servers read, one testcase per case and repeat.

Scores are fractions (0-1), as stored; they are shown as percentages.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean

from bot.batch_report import BatchReport, Row
from bot.blocks.common import duration, money, percent, plural
from bot.expectations import Expected
from bot.verdicts import CaseChange, Divergence, Verdict, check
from storage.models import BatchItem, BatchPart, BatchRecord

PASSED, FAILED, NOT_MEASURED, USAGE = 0, 1, 2, 3
CASE_COLUMN_LIMIT = 40
AGAINST_LIMIT = 100
# XML 1.0 has no way to write these, even escaped; a transcript may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPEAKERS = {"assistant": "Agent", "agent": "Agent", "user": "Caller", "caller": "Caller"}


@dataclass(frozen=True)
class RunResult:
    """One planned run of a case: `state` is passed, failed, not measured or not started;
    `reasons` say why it failed, or why it was not measured."""

    row: Row
    name: str
    state: str
    reasons: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        return self.state in ("passed", "failed")


@dataclass(frozen=True)
class CaseResult:
    """A case over its runs: `verdict` is passed, failed, flaky, not measured or not started;
    `against` compares it with the baseline, or says why it was not measured."""

    name: str
    runs: tuple[RunResult, ...]
    change: CaseChange | None
    verdict: str
    against: str

    @property
    def score(self) -> float | None:
        return _mean([r.row.outcome.score for r in self.runs if r.row.outcome])

    @property
    def duration_seconds(self) -> float | None:
        return _mean([r.row.outcome.duration_seconds for r in self.runs if r.row.outcome])

    @property
    def cost_cents(self) -> int:
        return sum((r.row.outcome.cost_cents or 0) for r in self.runs if r.row.outcome)


def _mean(values: Sequence[float | int | None]) -> float | None:
    known = [float(value) for value in values if value is not None]
    return fmean(known) if known else None


def run_name(row: Row, repeat: int) -> str:
    """`refund-policy`, or `refund-policy (2 of 3)` when each case runs more than once."""
    return f"{row.case} ({row.item.attempt} of {repeat})" if repeat > 1 else row.case


def _not_started(part: BatchPart | None) -> str:
    if part is None or part.status == "pending":
        return "not started"
    if part.status in ("refused", "skipped"):
        return f"not started: {part.error or 'ThunderPhone refused it'}"
    return (
        "ThunderPhone's answer was unclear and the run was not found before the timeout: "
        "it may have started"
    )


def _unfinished(row: Row) -> str:
    outcome = row.outcome
    if outcome is None:
        return "no result before the timeout"
    if not outcome.finished:
        status = (outcome.status or "queued").replace("_", " ")
        return f"no result before the timeout (still {status})"
    return "not graded before the timeout"


def run_result(row: Row, repeat: int, threshold: float, part: BatchPart | None) -> RunResult:
    name = run_name(row, repeat)
    if row.item.run_id is None:
        return RunResult(row, name, "not started", (_not_started(part),))
    if not row.done or row.outcome is None:
        return RunResult(row, name, "not measured", (_unfinished(row),))
    result = check(row.expected, row.outcome, threshold)
    if result.passed:
        return RunResult(row, name, "passed")
    reasons = list(result.reasons)
    if row.outcome.error_message:
        reasons.append(row.outcome.error_message)
    return RunResult(row, name, "failed", tuple(reasons))


def case_results(report: BatchReport, threshold: float) -> list[CaseResult]:
    """One result per case, in the suite's order. `report` should be built with
    `partial=True`, so the cases whose runs are all done are compared with the baseline even
    when the run was cut short."""
    parts = {part.part: part for part in report.parts}
    repeat = report.batch.repeat
    grouped: dict[str, list[RunResult]] = {}
    for row in report.rows:
        grouped.setdefault(row.case, []).append(
            run_result(row, repeat, threshold, parts.get(row.item.part))
        )
    changes = {change.case: change for change in report.changes or []}
    has_baseline = report.baseline is not None
    results = []
    for case, runs in grouped.items():
        change = changes.get(case) if all(run.measured for run in runs) else None
        result = CaseResult(case, tuple(runs), change, _verdict(runs, change), "")
        results.append(_with_against(result, has_baseline))
    return results


def not_run(cases: Sequence[tuple[str, str]], repeat: int, reason: str) -> list[CaseResult]:
    """Every (name, prompt) case not measured for one `reason`, when nothing was started."""
    results = []
    for position, (name, prompt) in enumerate(cases):
        runs = []
        for attempt in range(1, repeat + 1):
            item = BatchItem(position=position, case_name=name, prompt=prompt, attempt=attempt)
            row = Row(item, None, None, None, Expected())
            runs.append(RunResult(row, run_name(row, repeat), "not measured", (reason,)))
        results.append(CaseResult(name, tuple(runs), None, "not measured", reason))
    return results


def _verdict(runs: Sequence[RunResult], change: CaseChange | None) -> str:
    """passed, failed or flaky by this run's own results (a regression is failed, a fix
    passed, and a case flaky before that now all passed or all failed is that); not measured
    or not started when not every run was measured."""
    if change is not None:
        if change.verdict is Verdict.FLAKY and 0 < change.passed_runs < change.runs:
            return "flaky"
        return "passed" if change.passed_runs == change.runs else "failed"
    if any(run.state == "failed" for run in runs):
        return "failed"
    if all(run.state == "not started" for run in runs):
        return "not started"
    if all(run.state == "passed" for run in runs):
        return "passed"
    return "not measured"


def _with_against(result: CaseResult, has_baseline: bool) -> CaseResult:
    change = result.change
    if change is not None:
        mixed = 0 < change.passed_runs < change.runs
        if has_baseline:
            against = against_baseline(change)
        else:  # flaky within this run needs no baseline to say so
            against = f"flaky ({change.passed_runs} of {change.runs} passed)" if mixed else ""
    else:
        missing = [run for run in result.runs if not run.measured]
        against = ""
        if missing:
            against = missing[0].reasons[0]
            if len(result.runs) > 1:
                runs = plural(len(result.runs), "run")
                against = f"{len(missing)} of {runs} not measured: {against}"
    return CaseResult(result.name, result.runs, result.change, result.verdict, against)


def _pct(value: float | None) -> str:
    return percent(value) if value is not None else "no score"


def against_baseline(change: CaseChange) -> str:
    """`regressed: 91% -> 62%, diverged at turn 3`, `fixed: 55% -> 88%`, `flaky (2 of 3
    passed)`, `new case`, `score 90% -> 70%`, or `unchanged`."""
    score = change.score
    if change.verdict is Verdict.REGRESSED:
        text = "regressed: "
        if score.before is None and score.now is None:
            text += "passed -> failed"
        else:
            text += f"{_pct(score.before)} -> {_pct(score.now)}"
        if change.divergence is not None:
            text += f", diverged at turn {change.divergence.turn}"
        return text
    if change.verdict is Verdict.FIXED:
        if score.before is None or score.now is None:
            return "fixed"
        return f"fixed: {_pct(score.before)} -> {_pct(score.now)}"
    if change.verdict is Verdict.FLAKY:
        if 0 < change.passed_runs < change.runs:
            return f"flaky ({change.passed_runs} of {change.runs} passed)"
        if change.passed_runs:
            return "flaky before, passed now"
        return "flaky before, failed now: not counted as a regression"
    if change.baseline_runs == 0:
        return "new case"
    shifts = []
    if change.score.changed and score.before is not None and score.now is not None:
        shifts.append(f"score {_pct(score.before)} -> {_pct(score.now)}")
    if change.duration.changed and change.duration.before is not None:
        before, now = change.duration.before, change.duration.now
        shifts.append(f"duration {duration(round(before))} -> {duration(round(now or 0))}")
    if change.cost.changed and change.cost.before is not None:
        shifts.append(f"cost {money(change.cost.before)} -> {money(change.cost.now or 0)}")
    return ", ".join(shifts) or "unchanged"


def exit_code(results: Sequence[CaseResult]) -> int:
    """1 when any run measured failed (the run itself, its score, an expectation; a regressed
    case has only failed runs, a flaky one some); else 2 when any run was not measured, or
    there was nothing to measure; else 0."""
    runs = [run for result in results for run in result.runs]
    if any(run.state == "failed" for run in runs):
        return FAILED
    if not runs or not all(run.measured for run in runs):
        return NOT_MEASURED
    return PASSED


# ---------------------------------------------------------------------------------------------
# The terminal


def baseline_text(baseline: BatchRecord | None, choice: str) -> str:
    """What the run is compared with, for the header."""
    if baseline is None:
        return {
            "none": "none (--baseline none)",
            "blessed": "none (no run of this suite on this target is blessed)",
            "previous": "none (no earlier finished run of this suite on this target)",
        }.get(choice, "none yet (no earlier finished run of this suite on this target)")
    when = (baseline.decided_at or baseline.created_at)[:16].replace("T", " ")
    text = f"batch {baseline.id[:8]} of {when} UTC"
    return f"{text} (blessed)" if baseline.blessed_by else f"{text} (previous run)"


def header(
    suite: str, target: str, cases: int, repeat: int, baseline: BatchRecord | None, choice: str
) -> str:
    size = plural(cases, "case")
    if repeat > 1:
        size += f" × {repeat}"
    return f"{suite} · {target} · {size} · baseline: {baseline_text(baseline, choice)}"


def estimate_line(runs: int, costs: Sequence[int]) -> str:
    """`estimate: 5 runs × $0.16 = $0.80, billed at 2×`, from the target's recent runs."""
    noun = plural(runs, "run")
    if not costs:
        return f"estimate: {noun}, no estimate yet (no finished runs on this target), billed at 2×"
    each = sum(costs) / len(costs)
    return f"estimate: {noun} × {money(each)} = {money(each * runs)}, billed at 2×"


def _details(row: Row) -> list[str]:
    outcome = row.outcome
    if outcome is None:
        return []
    shown = [percent(outcome.score), duration(outcome.duration_seconds)]
    shown.append(money(outcome.cost_cents))
    return [item for item in shown if item]


def run_line(result: RunResult) -> str:
    """One line per run as it lands: `refund-policy (1 of 3): failed · 62% · 0:51 · $0.16 ·
    score 62% < 80%`."""
    parts = [result.state, *_details(result.row), *result.reasons]
    return f"{result.name}: {' · '.join(parts)}"


def run_status(row: Row, part: BatchPart | None, threshold: float) -> str:
    """A run's state while the gate waits."""
    if row.item.run_id is None:
        if part is not None and part.status in ("refused", "skipped"):
            return "not started"
        return "checking" if part is not None and part.status == "unknown" else "starting"
    outcome = row.outcome
    if outcome is None or not outcome.finished:
        return ((outcome.status if outcome else "") or "queued").replace("_", " ")
    if not row.done:
        return "grading"
    return "passed" if check(row.expected, outcome, threshold).passed else "failed"


def _table(rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def live_table(report: BatchReport, threshold: float) -> list[str]:
    """The table a terminal redraws while the gate waits: each run's state, then the tally."""
    parts = {part.part: part for part in report.parts}
    rows = [["case", "status", "score", "duration"]]
    for row in report.rows:
        outcome = row.outcome
        rows.append(
            [
                _cut(run_name(row, report.batch.repeat), CASE_COLUMN_LIMIT),
                run_status(row, parts.get(row.item.part), threshold),
                percent(outcome.score) if outcome else "",
                duration(outcome.duration_seconds) if outcome else "",
            ]
        )
    tally = report.progress
    line = f"{tally.done}/{len(report.rows)} done · {tally.passed} passed · {tally.failed} failed"
    if tally.grading:
        line += f" · {tally.grading} grading"
    if tally.cost_cents:
        line += f" · {money(tally.cost_cents)} so far"
    return [*_table(rows), line]


def summary_table(results: Sequence[CaseResult]) -> list[str]:
    """The table printed at the end: one line per case."""
    rows = [["case", "verdict", "score", "duration", "against the baseline"]]
    for result in results:
        seconds = result.duration_seconds
        rows.append(
            [
                _cut(result.name, CASE_COLUMN_LIMIT),
                result.verdict,
                percent(result.score),
                duration(round(seconds)) if seconds is not None else "",
                _cut(result.against, AGAINST_LIMIT),
            ]
        )
    return _table(rows)


def reasons_lines(results: Sequence[CaseResult]) -> list[str]:
    """Why each failed run failed, one line each, under the table."""
    return [
        f"{run.name}: {'; '.join(run.reasons)}"
        for result in results
        for run in result.runs
        if run.state == "failed"
    ]


def summary_line(results: Sequence[CaseResult], code: int) -> str:
    """`4 passed · 1 failed · 1 regressed · 1 fixed · $0.80 billed        exit 1`."""
    verdicts = [result.verdict for result in results]
    changes = [result.change.verdict for result in results if result.change is not None]
    parts = [f"{verdicts.count('passed')} passed", f"{verdicts.count('failed')} failed"]
    counted = [
        (verdicts.count("flaky"), "flaky"),
        (changes.count(Verdict.REGRESSED), "regressed"),
        (changes.count(Verdict.FIXED), "fixed"),
        (verdicts.count("not measured") + verdicts.count("not started"), "not measured"),
    ]
    parts += [f"{count} {label}" for count, label in counted if count]
    cost = sum(result.cost_cents for result in results)
    if cost:
        parts.append(f"{money(cost)} billed")
    return f"{' · '.join(parts)}        exit {code}"


# ---------------------------------------------------------------------------------------------
# JUnit


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def _speaker(role: str) -> str:
    return _SPEAKERS.get(role.lower(), role.capitalize() or "—")


def _divergence_lines(divergence: Divergence) -> list[str]:
    return [
        f"diverged at turn {divergence.turn}:",
        f"  baseline  {_speaker(divergence.baseline_role)}: {divergence.baseline or '(nothing)'}",
        f"  now       {_speaker(divergence.current_role)}: {divergence.current or '(nothing)'}",
    ]


def _failure_text(result: CaseResult, run: RunResult) -> tuple[str, str]:
    """The failure's message (one line) and its body (the whole story)."""
    message = list(run.reasons)
    if result.change is not None and result.change.verdict in (Verdict.REGRESSED, Verdict.FLAKY):
        message.append(result.against)
    body = list(message)
    if result.change is not None and result.change.divergence is not None:
        body += _divergence_lines(result.change.divergence)
    run_record = run.row.run
    if run_record is not None:
        body.append(
            f"ThunderPhone run {run_record.run_id}"
            + (f", call {run_record.call_id}" if run_record.call_id else "")
        )
    return "; ".join(message), "\n".join(body)


def junit_xml(
    suite: str,
    results: Sequence[CaseResult],
    *,
    properties: dict[str, str] | None = None,
    timestamp: str = "",
) -> bytes:
    """JUnit XML: one testsuite for the suite, one testcase per case and repeat; a failed run
    is a `<failure>` with its reasons, a run not measured an `<error>`."""
    runs = [(result, run) for result in results for run in result.runs]
    failures = sum(run.state == "failed" for _, run in runs)
    errors = sum(not run.measured for _, run in runs)
    total_time = sum(run.row.outcome.duration_seconds or 0 for _, run in runs if run.row.outcome)
    counts = {
        "tests": str(len(runs)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": "0",
        "time": str(total_time),
    }
    root = ET.Element("testsuites", {"name": "thunderbot ci", **counts})
    attributes = {"name": _xml_text(suite), **counts}
    if timestamp:
        attributes["timestamp"] = timestamp[:19]
    testsuite = ET.SubElement(root, "testsuite", attributes)
    if properties:
        holder = ET.SubElement(testsuite, "properties")
        for key, value in properties.items():
            ET.SubElement(holder, "property", {"name": key, "value": _xml_text(value)})
    for result, run in runs:
        outcome = run.row.outcome
        seconds = outcome.duration_seconds if outcome and outcome.duration_seconds else 0
        case = ET.SubElement(
            testsuite,
            "testcase",
            {"classname": _xml_text(suite), "name": _xml_text(run.name), "time": str(seconds)},
        )
        if run.state == "failed":
            message, body = _failure_text(result, run)
            failure = ET.SubElement(
                case, "failure", {"message": _xml_text(message), "type": "failed"}
            )
            failure.text = _xml_text(body)
        elif not run.measured:
            reason = "; ".join(run.reasons)
            error = ET.SubElement(
                case, "error", {"message": _xml_text(reason), "type": run.state.replace(" ", "-")}
            )
            error.text = _xml_text(reason)
    ET.indent(root)
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text + b"\n"
