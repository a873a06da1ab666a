"""The rules of regression testing, as pure functions: no I/O, no database.

- `check` holds one finished run against what its case expects and says, in plain words, why
  it fell short.
- `case_verdict` turns the checks of a case's runs (its repeats) into one verdict, knowing how
  the case did in the baseline: passed, failed, flaky, regressed or fixed. A flaky case never
  counts as a regression.
- `compare` sets a case's runs beside its baseline runs: the verdict, and score, duration and
  cost shifts beyond a tolerance, and the first turn where the conversation went another way.
  `summary` counts the outcome over a suite.
- `progress` is the running tally of a batch for its live card.

Scores here are fractions, 0-1, as stored (`bot.thunderphone.models.normalise_score`).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import fmean
from typing import Any

from bot.expectations import Expected, ToolCall
from storage.models import GradeRecord, RunRecord

# Roles whose turns are not speech; every other role (user, assistant, agent, caller, …) is.
TOOL_CALL_ROLES = frozenset({"tool_call", "function_call"})
_NOT_SPOKEN = TOOL_CALL_ROLES | {"tool_response", "tool", "function", "system"}
# Two turns at the same place say "the same" when their normalised texts are at least this
# similar: voice agents rarely repeat themselves word for word.
SAME_TURN_RATIO = 0.6
TURN_TEXT_LIMIT = 200
_EPSILON = 1e-9
_GRADE_PENDING = frozenset({"", "pending"})


class Verdict(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    FLAKY = "flaky"
    REGRESSED = "regressed"
    FIXED = "fixed"


@dataclass(frozen=True)
class RunOutcome:
    """What one run came to: its status, its grade and its transcript.

    `score` is a fraction (0-1) or None before (or without) a grade; `grade_status` is the
    grade's status ("" or "pending" while a grade may still come). `transcript` holds
    ThunderPhone transcript entries: {"role": ..., "content": str or {"name", "arguments"}}.
    """

    status: str
    score: float | None = None
    call_outcome: str = ""
    duration_seconds: int | None = None
    cost_cents: int | None = None
    error_message: str = ""
    transcript: Sequence[Mapping[str, Any]] = field(default=(), hash=False)
    run_id: int | None = None
    grade_status: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "transcript", tuple(self.transcript))

    @property
    def finished(self) -> bool:
        return self.status.lower() in {"completed", "failed"}

    @property
    def awaiting_grade(self) -> bool:
        """Completed, with no score yet, and a grade may still come."""
        return (
            self.status.lower() == "completed"
            and self.score is None
            and self.grade_status.lower() in _GRADE_PENDING
        )


def outcome_of(
    run: RunRecord,
    grade: GradeRecord | None = None,
    transcript: Sequence[Mapping[str, Any]] | None = None,
) -> RunOutcome:
    """The outcome of a stored run, with its grade and transcript when known."""
    return RunOutcome(
        status=run.status,
        score=grade.score if grade else None,
        call_outcome=grade.call_outcome if grade else "",
        duration_seconds=run.duration_seconds,
        cost_cents=run.cost_cents,
        error_message=run.error_message or "",
        transcript=tuple(transcript or ()),
        run_id=run.run_id,
        grade_status=grade.status if grade else "",
    )


@dataclass(frozen=True)
class Check:
    """Whether a run met its case's expectation; each reason says what fell short."""

    passed: bool
    reasons: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Reading transcripts


def _text(value: str) -> str:
    return " ".join(value.split())


def _trimmed(value: str, limit: int = TURN_TEXT_LIMIT) -> str:
    value = _text(value)
    return value if len(value) <= limit else value[: limit - 1].rstrip() + "…"


def _spoken_text(entry: Mapping[str, Any]) -> str | None:
    """What a speech turn said; None for tool turns and turns with nothing said."""
    role = str(entry.get("role") or "").lower()
    if role in _NOT_SPOKEN:
        return None
    content = entry.get("content")
    if isinstance(content, Mapping):
        content = content.get("text")
    return content if isinstance(content, str) else None


def spoken_turns(transcript: Sequence[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """(1-based place in the whole transcript, role, text) of each speech turn."""
    turns = []
    for place, entry in enumerate(transcript, start=1):
        text = _spoken_text(entry)
        if text is not None and text.strip():
            turns.append((place, str(entry.get("role") or ""), text))
    return turns


def _json(value: Any) -> Any:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def tool_calls(transcript: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(name, arguments) of every tool call, in order. Content may be an object or JSON text,
    arguments an object or JSON text; {"function": {...}} wrappers are read too."""
    calls = []
    for entry in transcript:
        if str(entry.get("role") or "").lower() not in TOOL_CALL_ROLES:
            continue
        content = _json(entry.get("content"))
        if isinstance(content, Mapping) and "name" not in content:
            content = _json(content.get("function"))
        if not isinstance(content, Mapping) or not isinstance(content.get("name"), str):
            continue
        arguments = _json(content.get("arguments"))
        calls.append(
            (content["name"].strip(), dict(arguments) if isinstance(arguments, Mapping) else {})
        )
    return calls


def _argument_text(value: Any) -> str:
    """As `bot.expectations` reads expected values: 12345 and "12345" are the same."""
    return (value if isinstance(value, str) else str(value)).strip()


# ---------------------------------------------------------------------------------------------
# Checking one run


def _percent_pair(value: float, bound: float) -> tuple[str, str]:
    """Both as whole percentages, with more digits where rounding would hide the difference."""
    for digits in (0, 1, 2):
        shown = f"{value * 100:.{digits}f}%", f"{bound * 100:.{digits}f}%"
        if shown[0] != shown[1]:
            return shown
    return shown


def _score_reason(score: float, minimum: float) -> str:
    now, bound = _percent_pair(score, minimum)
    return f"score {now} < {bound}"


def _clock(seconds: int) -> str:
    minutes, rest = divmod(max(seconds, 0), 60)
    return f"{minutes}:{rest:02d}"


def _status_text(status: str) -> str:
    return status.replace("_", " ") or "unknown"


def _tool_reason(expected: ToolCall, calls: list[tuple[str, dict[str, Any]]]) -> str | None:
    candidates = [arguments for name, arguments in calls if name == expected.name]
    if not candidates:
        return f"{expected.name} was not called"
    best: list[tuple[str, str]] | None = None
    best_arguments: dict[str, Any] = {}
    for arguments in candidates:
        missing = [
            (key, value)
            for key, value in expected.arguments
            if key not in arguments or _argument_text(arguments[key]) != value.strip()
        ]
        if not missing:
            return None
        if best is None or len(missing) < len(best):
            best, best_arguments = missing, arguments
    assert best is not None
    wanted = ", ".join(f"{key}={value.strip()}" for key, value in best)
    got = ", ".join(
        f"{key}={_argument_text(best_arguments[key])}" for key, _ in best if key in best_arguments
    )
    return f"{expected.name} was called without {wanted}" + (f" (got {got})" if got else "")


def check(expected: Expected, outcome: RunOutcome, threshold: float) -> Check:
    """Hold a finished run against its case's expectation.

    - The run's status must be `expected.status`, or "completed" when none is given: a failed
      run fails every case that does not expect a failure, and an unfinished one fails too.
      A status that does not match is the only reason given.
    - A case with nothing checkable (no expectation, or a note only) passes when the run
      completed and scored at or above `threshold`; a completed run without a score fails
      with "not graded" (the caller shows it as still grading while `awaiting_grade`).
    - Otherwise every given check applies, and only those (the threshold does not):
      call_outcome (case-insensitive), min_score (a missing score fails: "no score"),
      min/max duration (inclusive), transcript phrases (case-insensitive, within one speech
      turn), tools called (with argument values compared as text) and tools not called.
    """
    status = outcome.status.strip().lower()
    wanted = expected.status or "completed"
    if status != wanted:
        return Check(False, (f"status {_status_text(status)}, expected {wanted}",))
    reasons: list[str] = []
    if not expected.checkable:
        if outcome.score is None:
            reasons.append("not graded")
        elif outcome.score < threshold:
            reasons.append(_score_reason(outcome.score, threshold))
        return Check(not reasons, tuple(reasons))

    if expected.call_outcome is not None:
        actual = outcome.call_outcome.strip().lower()
        if actual != expected.call_outcome.lower():
            said = f"outcome {actual}" if actual else "no outcome"
            reasons.append(f"{said}, expected {expected.call_outcome.lower()}")
    if expected.min_score is not None:
        if outcome.score is None:
            reasons.append("no score")
        elif outcome.score < expected.min_score:
            reasons.append(_score_reason(outcome.score, expected.min_score))
    reasons.extend(_duration_reasons(expected, outcome.duration_seconds))

    spoken = [_text(text).casefold() for _, _, text in spoken_turns(outcome.transcript)]
    for phrase in expected.transcript_contains:
        if not any(_text(phrase).casefold() in turn for turn in spoken):
            reasons.append(f'transcript lacks "{phrase}"')
    for phrase in expected.transcript_excludes:
        if any(_text(phrase).casefold() in turn for turn in spoken):
            reasons.append(f'transcript has "{phrase}"')

    calls = tool_calls(outcome.transcript)
    for tool in expected.tools_called:
        reason = _tool_reason(tool, calls)
        if reason:
            reasons.append(reason)
    called = {name for name, _ in calls}
    reasons.extend(f"{name} was called" for name in expected.tools_not_called if name in called)
    return Check(not reasons, tuple(reasons))


def _duration_reasons(expected: Expected, seconds: int | None) -> list[str]:
    bounds = []
    if expected.min_duration_seconds is not None:
        bounds.append(f"at least {_clock(expected.min_duration_seconds)}")
    if expected.max_duration_seconds is not None:
        bounds.append(f"at most {_clock(expected.max_duration_seconds)}")
    if not bounds:
        return []
    if seconds is None:
        return [f"duration unknown, expected {' and '.join(bounds)}"]
    if expected.min_duration_seconds is not None and seconds < expected.min_duration_seconds:
        return [f"lasted {_clock(seconds)}, expected {bounds[0]}"]
    if expected.max_duration_seconds is not None and seconds > expected.max_duration_seconds:
        return [f"lasted {_clock(seconds)}, expected {bounds[-1]}"]
    return []


# ---------------------------------------------------------------------------------------------
# One verdict per result


class ResultKind(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    GRADING = "grading"  # finished, and the verdict waits on a grade that may still come
    NOT_GRADED = "not graded"  # grading ended without a score, and nothing else was checked


@dataclass(frozen=True)
class ResultVerdict:
    """The one verdict a finished run's result shows; `reasons` say why it failed."""

    kind: ResultKind
    reasons: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        return self.kind is not ResultKind.GRADING


def result_verdict(expected: Expected, outcome: RunOutcome, threshold: float) -> ResultVerdict:
    """Passed, failed (with why), not graded, or still grading, for a finished run.

    A run with nothing checkable passes when it completed and scored at or above the
    threshold; a suite case passes when it met its expectation (`check`). A failed call says
    what ThunderPhone reported, unless the case expected the call to fail.
    """
    status = outcome.status.strip().lower()
    if status == "failed" and (expected.status or "completed") != "failed":
        return ResultVerdict(
            ResultKind.FAILED, (f"the call failed: {outcome.error_message or 'no reason given'}",)
        )
    if outcome.awaiting_grade and _needs_grade(expected):
        return ResultVerdict(ResultKind.GRADING)
    if status == "completed" and outcome.score is None and not expected.checkable:
        return ResultVerdict(ResultKind.NOT_GRADED)
    checked = check(expected, outcome, threshold)
    if checked.passed:
        return ResultVerdict(ResultKind.PASSED)
    return ResultVerdict(ResultKind.FAILED, checked.reasons)


# ---------------------------------------------------------------------------------------------
# One verdict per case


def case_verdict(
    checks: Sequence[Check], *, baseline_passed: bool | None, flaky_before: bool
) -> Verdict:
    """The verdict of a case from the checks of its runs in this suite run.

    - Mixed results within this run: flaky.
    - A flip against the baseline (all passed where it failed: fixed; all failed where it
      passed: regressed), unless the case has been flaky before: then it is flaky, in either
      direction. A flaky case never counts as a regression.
    - Otherwise (same as the baseline, or no baseline: `baseline_passed` None): passed or
      failed.

    Raises ValueError without checks: a case that has not run has no verdict.
    """
    if not checks:
        raise ValueError("a verdict needs the checks of at least one run")
    results = {item.passed for item in checks}
    if len(results) > 1:
        return Verdict.FLAKY
    passed = results.pop()
    if baseline_passed is None or baseline_passed == passed:
        return Verdict.PASSED if passed else Verdict.FAILED
    if flaky_before:
        return Verdict.FLAKY
    return Verdict.FIXED if passed else Verdict.REGRESSED


# ---------------------------------------------------------------------------------------------
# Against the baseline


@dataclass(frozen=True)
class Shift:
    """A mean before (in the baseline) and now; `changed` when beyond the tolerance."""

    before: float | None
    now: float | None
    changed: bool = False

    @property
    def direction(self) -> int:
        """1 when it went up, -1 down, 0 unchanged or unknown."""
        if self.before is None or self.now is None or self.now == self.before:
            return 0
        return 1 if self.now > self.before else -1


@dataclass(frozen=True)
class Divergence:
    """The first turn where the conversation went another way than in the baseline.

    `turn` is 1-based and numbered as the transcript view numbers the current run's entries
    (tool turns included), so a person can find it there; when the current conversation ended
    first, it is the place after its last entry. Texts are trimmed and unescaped; a side with
    no such turn has role and text "".
    """

    turn: int
    baseline_role: str
    baseline: str
    current_role: str
    current: str


@dataclass(frozen=True)
class CaseChange:
    case: str
    verdict: Verdict
    runs: int
    passed_runs: int
    baseline_runs: int
    baseline_passed: bool | None  # None: no baseline, or a mixed one
    score: Shift
    duration: Shift
    cost: Shift
    divergence: Divergence | None = None

    @property
    def changed(self) -> bool:
        """Worth listing: a verdict other than passed/failed, or a shift beyond tolerance."""
        return (
            self.verdict in {Verdict.REGRESSED, Verdict.FIXED, Verdict.FLAKY}
            or self.score.changed
            or self.duration.changed
            or self.cost.changed
        )


def _mean(values: Sequence[float | int | None]) -> float | None:
    known = [float(value) for value in values if value is not None]
    return fmean(known) if known else None


def _score_shift(before: float | None, now: float | None, tolerance: float) -> Shift:
    if before is None or now is None:
        return Shift(before, now)
    return Shift(before, now, abs(now - before) > tolerance + _EPSILON)


def _ratio_shift(before: float | None, now: float | None, ratio: float) -> Shift:
    if before is None or now is None:
        return Shift(before, now)
    if before == 0:
        return Shift(before, now, now != 0)
    return Shift(before, now, abs(now - before) / before > ratio + _EPSILON)


_PUNCTUATION = re.compile(r"[^\w\s]")


def _normalised(text: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def _speaker(role: str) -> str:
    role = role.lower()
    return {"agent": "assistant", "caller": "user"}.get(role, role)


def divergence(
    baseline: Sequence[Mapping[str, Any]], current: Sequence[Mapping[str, Any]]
) -> Divergence | None:
    """The first speech turn that differs (another speaker, or text less than
    `SAME_TURN_RATIO` alike after normalising case, punctuation and spaces), or where one
    conversation goes on after the other ended; None when they match throughout or either
    has no speech."""
    before, now = spoken_turns(baseline), spoken_turns(current)
    if not before or not now:
        return None
    for index in range(max(len(before), len(now))):
        old = before[index] if index < len(before) else None
        new = now[index] if index < len(now) else None
        if old is not None and new is not None:
            same_speaker = _speaker(old[1]) == _speaker(new[1])
            matcher = difflib.SequenceMatcher(
                None, _normalised(old[2]), _normalised(new[2]), autojunk=False
            )
            if same_speaker and matcher.ratio() >= SAME_TURN_RATIO:
                continue
        place = new[0] if new is not None else len(current) + 1
        return Divergence(
            turn=place,
            baseline_role=old[1] if old else "",
            baseline=_trimmed(old[2]) if old else "",
            current_role=new[1] if new else "",
            current=_trimmed(new[2]) if new else "",
        )
    return None


def _first_with_speech(outcomes: Sequence[RunOutcome]) -> Sequence[Mapping[str, Any]]:
    for outcome in outcomes:
        if spoken_turns(outcome.transcript):
            return outcome.transcript
    return ()


def compare(
    case_name: str,
    current: Sequence[RunOutcome],
    baseline: Sequence[RunOutcome],
    *,
    expected: Expected,
    threshold: float,
    flaky_before: bool = False,
    score_tolerance: float = 0.10,
    change_ratio: float = 0.25,
) -> CaseChange:
    """A case's runs now beside its runs in the baseline (none: a new case).

    Both sides are checked against today's `expected`, so like is compared with like. A
    baseline that was itself mixed gives no baseline verdict: the case then passes, fails or
    is flaky on this run alone, and never regresses or is fixed (the caller may count the
    mixed baseline as flaky history for later runs).
    Scores change when their means differ by more than `score_tolerance` (a fraction: 0.10 is
    10 points); durations and costs when their means differ by more than `change_ratio` of the
    baseline's. The divergence compares the first run with speech on each side.
    """
    checks = [check(expected, outcome, threshold) for outcome in current]
    before = [check(expected, outcome, threshold).passed for outcome in baseline]
    baseline_passed = before[0] if before and len(set(before)) == 1 else None
    verdict = case_verdict(checks, baseline_passed=baseline_passed, flaky_before=flaky_before)
    return CaseChange(
        case=case_name,
        verdict=verdict,
        runs=len(checks),
        passed_runs=sum(item.passed for item in checks),
        baseline_runs=len(baseline),
        baseline_passed=baseline_passed,
        score=_score_shift(
            _mean([o.score for o in baseline]), _mean([o.score for o in current]), score_tolerance
        ),
        duration=_ratio_shift(
            _mean([o.duration_seconds for o in baseline]),
            _mean([o.duration_seconds for o in current]),
            change_ratio,
        ),
        cost=_ratio_shift(
            _mean([o.cost_cents for o in baseline]),
            _mean([o.cost_cents for o in current]),
            change_ratio,
        ),
        divergence=divergence(_first_with_speech(baseline), _first_with_speech(current)),
    )


@dataclass(frozen=True)
class Counts:
    """A suite run at a glance. `passed`/`failed` count cases by result (fixed is passed,
    regressed is failed); `unchanged` counts cases that passed or failed as in their baseline,
    `new` those without a baseline; flaky cases are counted only as flaky."""

    cases: int = 0
    passed: int = 0
    failed: int = 0
    flaky: int = 0
    regressed: int = 0
    fixed: int = 0
    unchanged: int = 0
    new: int = 0


def summary(changes: Sequence[CaseChange]) -> Counts:
    verdicts = [change.verdict for change in changes]
    steady = [c for c in changes if c.verdict in {Verdict.PASSED, Verdict.FAILED}]
    return Counts(
        cases=len(changes),
        passed=sum(v in {Verdict.PASSED, Verdict.FIXED} for v in verdicts),
        failed=sum(v in {Verdict.FAILED, Verdict.REGRESSED} for v in verdicts),
        flaky=verdicts.count(Verdict.FLAKY),
        regressed=verdicts.count(Verdict.REGRESSED),
        fixed=verdicts.count(Verdict.FIXED),
        unchanged=sum(c.baseline_runs > 0 for c in steady),
        new=sum(c.baseline_runs == 0 for c in steady),
    )


# ---------------------------------------------------------------------------------------------
# A batch under way


@dataclass(frozen=True)
class Progress:
    """`done` runs finished of `total`; of those `passed`, `failed` or still `grading`.
    `cost_cents` sums the billed cost known so far; `avg_score` averages the graded runs."""

    total: int
    done: int = 0
    passed: int = 0
    failed: int = 0
    grading: int = 0
    cost_cents: int = 0
    avg_score: float | None = None


def _needs_grade(expected: Expected) -> bool:
    return not expected.checkable or expected.min_score is not None or bool(expected.call_outcome)


def progress(
    outcomes: Sequence[RunOutcome | None],
    total: int,
    threshold: float,
    *,
    expected: Sequence[Expected | None] | None = None,
) -> Progress:
    """Tally a batch: None (or an unfinished run) is not done yet. Each finished run is held
    against its case's expectation (`expected`, in the same order; none: the threshold alone);
    a completed run whose verdict waits on a grade that may still come counts as grading."""
    done = passed = failed = grading = cost = 0
    scores: list[float] = []
    for index, outcome in enumerate(outcomes):
        if outcome is None:
            continue
        cost += outcome.cost_cents or 0
        if not outcome.finished:
            continue
        done += 1
        if outcome.score is not None:
            scores.append(outcome.score)
        wanted = (expected[index] if expected and index < len(expected) else None) or Expected()
        if outcome.awaiting_grade and _needs_grade(wanted):
            grading += 1
        elif check(wanted, outcome, threshold).passed:
            passed += 1
        else:
            failed += 1
    return Progress(
        total=max(total, done),
        done=done,
        passed=passed,
        failed=failed,
        grading=grading,
        cost_cents=cost,
        avg_score=fmean(scores) if scores else None,
    )
