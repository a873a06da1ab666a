"""`thunderbot ci`: a suite run as a gate in a build, straight against ThunderPhone.

No Slack and no webhooks are needed. The suite is sent through the batch machinery
(`bot.batches`), so the rules of money hold as in Slack: nothing is launched without consent
(`--yes` or `THUNDERBOT_CONSENT_TO_CHARGE=true`), the batch is claimed before any paid request
and each part before its POST, and no create is ever sent twice. Then each run, its call's
details and its grade are polled from ThunderPhone and merged into the bot's database
(`THUNDERBOT_DB`) as webhooks would be, so baselines and trends include these runs, and the
verdicts are those of a suite run in Slack (`bot.batch_report`).

Exit codes (a contract; see docs/ci.md): 0 every case passed; 1 something failed; 2 not
everything was measured (a gate that measured nothing never passes); 3 usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sqlite3
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TextIO

from pydantic import Field, SecretStr, ValidationError
from sqlite_utils import Database

from bot import audit, batches, suite_admin
from bot.batch_report import BatchReport, build_report
from bot.blocks.common import plural, target_plain
from bot.ci_report import (
    USAGE,
    CaseResult,
    baseline_text,
    case_results,
    estimate_line,
    exit_code,
    header,
    junit_xml,
    live_table,
    not_run,
    reasons_lines,
    run_line,
    run_result,
    summary_line,
    summary_table,
)
from bot.cli import DatabaseSettings
from bot.commands import MAX_REPEAT, MAX_STAGGER_SECONDS, CommandError
from bot.config import describe_settings_error
from bot.outcomes import (
    BatchOutcome,
    BatchStarted,
    CannotPost,
    NotRecorded,
    Refused,
    Unclear,
)
from bot.publish import publish_batch, publish_run
from bot.runs import fetch_details, grade_record, run_changes
from bot.services import Services
from bot.suites import (
    Suite,
    SuiteError,
    parse_default_target,
    parse_suite,
    parse_suite_name,
    suite_from_record,
    suite_record,
)
from bot.thunderphone import (
    Run,
    ThunderPhoneAuthError,
    ThunderPhoneClient,
    ThunderPhoneError,
    ThunderPhoneUnavailable,
)
from storage import batches as batch_store
from storage import messages
from storage import runs as run_store
from storage import suites as suite_store
from storage.batches import BaselineChoice
from storage.db import now_iso, open_db
from storage.models import BatchRecord

log = logging.getLogger(__name__)

# Who runs and owns what `ci` records (there is no Slack workspace or person).
CI_TEAM = "ci"
CI_USER = "ci"
DEFAULT_TIMEOUT_SECONDS = 900
# `--sandbox`: the simulator moves fast, so trying the gate takes seconds.
SANDBOX_STEP_SECONDS = 0.3
SANDBOX_STAGGER_SCALE = 0.05
SANDBOX_POLL_SECONDS = 0.25
# Plain output says where the run stands at least this often while nothing lands.
HEARTBEAT_SECONDS = 60.0
# How long the card and replies get to reach Slack at the end: a post per second per channel.
SLACK_DRAIN_BASE_SECONDS = 30.0
SLACK_DRAIN_PER_RUN_SECONDS = 1.5
LIST_PAGE_SIZE = 200
LIST_MAX_PAGES = 5
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


class CiSettings(DatabaseSettings):
    """What `ci` reads from the environment (and `.env`): no Slack secret is needed unless
    `--slack-channel` is given, and no ThunderPhone key with `--sandbox`."""

    thunderphone_api_key: SecretStr = Field(
        default=SecretStr(""), description="ThunderPhone organisation API key."
    )
    thunderphone_base_url: str = Field(
        default="https://api.thunderphone.com", description="ThunderPhone API host, without /v1."
    )
    thunderbot_score_threshold: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Scores below this fraction fail a case with no checks.",
    )
    thunderbot_poll_seconds: float = Field(
        default=10.0, gt=0, description="How often ThunderPhone is asked about unfinished runs."
    )
    thunderbot_consent_to_charge: bool = Field(
        default=False, description="Consent to the charge of the runs, as --yes does."
    )
    slack_bot_token: SecretStr = Field(default=SecretStr(""), description="For --slack-channel.")
    slack_api_url: str = Field(
        default="https://slack.com/api/", description="Slack Web API base URL."
    )
    thunderbot_slack_timeout: float = Field(default=10.0, gt=0)
    thunderbot_post_interval: float = Field(default=1.0, ge=0)


class _Stop(Exception):
    """Ends the gate with an exit code and a message for standard error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------------------------------------
# Arguments


def _whole(low: int, high: int, what: str) -> Callable[[str], int]:
    def read(text: str) -> int:
        if not text.strip().isdigit() or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"{what}, from {low} to {high}; {text!r} is not")
        return int(text)

    return read


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"a fraction from 0 to 1, like 0.8; {text!r} is not")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"seconds to wait, more than 0; {text!r} is not")
    return value


def _channel(text: str) -> str:
    if not _CHANNEL_ID.match(text.strip()):
        raise argparse.ArgumentTypeError(
            f"a channel id like C0123ABCD (in Slack: the channel's details); {text!r} is not"
        )
    return text.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        required=True,
        metavar="NAME|FILE",
        help="a saved suite, or a suite file (imported under its name first)",
    )
    parser.add_argument(
        "--target", metavar="TARGET", help="agent:<id> or number:<id> (default: the suite's)"
    )
    parser.add_argument(
        "--threshold",
        type=_fraction,
        metavar="FRACTION",
        help="the lowest passing score of a case with no checks (default: "
        "THUNDERBOT_SCORE_THRESHOLD, else 0.8)",
    )
    parser.add_argument(
        "--baseline",
        choices=("blessed", "previous", "none"),
        help="compare with the blessed run, the previous finished run, or nothing "
        "(default: the blessed run, else the previous one)",
    )
    parser.add_argument(
        "--repeat",
        type=_whole(1, MAX_REPEAT, "how often each case runs"),
        metavar="K",
        help=f"runs of each case, 1-{MAX_REPEAT} (default: the suite's setting, else 1)",
    )
    parser.add_argument(
        "--stagger",
        type=_whole(0, MAX_STAGGER_SECONDS, "the seconds between launches"),
        metavar="N",
        help=f"seconds between launches, 0-{MAX_STAGGER_SECONDS} (default: the suite's, else 2)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        default=DEFAULT_TIMEOUT_SECONDS,
        help=f"seconds to wait for every result (default {DEFAULT_TIMEOUT_SECONDS})",
    )
    parser.add_argument("--junit", metavar="FILE", help="write a JUnit XML report to FILE")
    parser.add_argument(
        "--slack-channel",
        type=_channel,
        metavar="CHANNEL",
        help="also post the card and its thread in this channel (needs SLACK_BOT_TOKEN)",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help="consent to the charge: every test call is billed at 2x the normal rate",
    )
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against the built-in ThunderPhone simulator (no account, nothing billed, "
        "nothing recorded)",
    )


def parser() -> argparse.ArgumentParser:
    """`thunderbot ci` on its own (the CLI adds the same arguments to its subcommand)."""
    standalone = argparse.ArgumentParser(prog="thunderbot ci")
    add_arguments(standalone)
    return standalone


# ---------------------------------------------------------------------------------------------
# The gate


def main(args: argparse.Namespace) -> int:
    return asyncio.run(run(args))


async def run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Run the gate; returns the exit code."""
    out = out or sys.stdout
    try:
        async with AsyncExitStack() as stack:
            return await _gate(args, out, stack)
    except _Stop as stop:
        print(stop.message, file=sys.stderr)
        return stop.code


def _settings(args: argparse.Namespace) -> CiSettings:
    try:
        settings = CiSettings()
    except ValidationError as error:
        lines = describe_settings_error(error).splitlines()[1:]
        head = "thunderbot ci: fix these environment variables:"
        raise _Stop(USAGE, "\n".join([head, *lines])) from error
    if not args.sandbox and not settings.thunderphone_api_key.get_secret_value().strip():
        raise _Stop(
            USAGE,
            "thunderbot ci needs THUNDERPHONE_API_KEY (your organisation's API key), in the "
            "environment or a .env file. To try the gate without an account, add --sandbox.",
        )
    if args.slack_channel and not settings.slack_bot_token.get_secret_value().strip():
        raise _Stop(
            USAGE,
            "--slack-channel needs SLACK_BOT_TOKEN (the bot token, xoxb-…) to post; "
            "SLACK_API_URL is read too. Nothing was started.",
        )
    if args.junit and not Path(args.junit).resolve().parent.is_dir():
        raise _Stop(USAGE, f"cannot write --junit {args.junit}: its directory does not exist")
    return settings


async def _gate(args: argparse.Namespace, out: TextIO, stack: AsyncExitStack) -> int:
    settings = _settings(args)
    threshold: float = (
        args.threshold if args.threshold is not None else settings.thunderbot_score_threshold
    )
    choice: BaselineChoice = args.baseline or "auto"
    db = _open(":memory:" if args.sandbox else settings.thunderbot_db)
    stack.callback(db.close)
    suite, note = _load_suite(db, args.suite, settings.thunderbot_db if args.sandbox else None)
    if note:
        print(note, file=out)
    target = _target(suite, args.target)
    try:
        shape = batches.suite_run_shape(suite, repeat=args.repeat, stagger=args.stagger)
    except CommandError as error:
        raise _Stop(USAGE, error.problem) from error
    probe = BatchRecord(
        id="",
        team_id=CI_TEAM,
        channel_id="",
        user_id=CI_USER,
        target_type=target[0],
        target_id=target[1],
        suite=suite.name,
        created_at=now_iso(),
    )
    baseline = batch_store.baseline_of(db, probe, choice)
    label = target_plain(target[0], target[1], _target_name(db, baseline))
    print(header(suite.name, label, len(shape.cases), shape.repeat, baseline, choice), file=out)
    print(estimate_line(shape.runs, run_store.recent_costs(db, target[0], target[1])), file=out)
    if not (args.yes or settings.thunderbot_consent_to_charge):
        raise _Stop(
            USAGE,
            "Nothing was started: every test call is billed, at 2× the normal rate. Run again "
            "with --yes (or THUNDERBOT_CONSENT_TO_CHARGE=true) to consent to the charge.",
        )

    client, base_url = await _thunderphone(args, settings, stack)
    cases = [(name or prompt, prompt) for name, prompt, _ in shape.cases]
    try:
        await client.list_test_calls(limit=1)
    except ThunderPhoneAuthError as error:
        raise _Stop(USAGE, f"{error.user_message} Nothing was started.") from error
    except ThunderPhoneUnavailable as error:
        print(
            f"ThunderPhone is unreachable at {base_url} ({error}); nothing was started",
            file=sys.stderr,
        )
        results = not_run(cases, shape.repeat, "ThunderPhone unreachable: nothing was started")
        return _finish(args, out, suite.name, label, results, batch=None, baseline=baseline)
    except ThunderPhoneError as error:
        raise _Stop(
            USAGE,
            f"ThunderPhone at {base_url} answered unexpectedly ({error}): check "
            "THUNDERPHONE_BASE_URL. Nothing was started.",
        ) from error

    services = await _slack(args, settings, db, client, threshold, stack)
    batch, _, _ = batches.plan_on(
        db,
        resolved=target,
        team_id=CI_TEAM,
        channel_id=args.slack_channel or "",
        user_id=CI_USER,
        cases=shape.cases,
        direction=shape.direction,
        caller_number=shape.caller_number,
        stagger=shape.stagger,
        repeat=shape.repeat,
        suite=suite.name,
    )
    outcome = await _launch(db, client, services, batch)
    _say_launched(out, outcome, args.slack_channel)

    display = _Display(out, threshold, asyncio.get_running_loop().time())
    report = await _wait(db, client, services, batch.id, threshold, choice, display, args, settings)
    if not report.finished:
        left = sum(1 for row in report.rows if row.item.run_id is not None and not row.done)
        if left:
            print(f"timed out after {args.timeout:g} s: {left} run(s) not measured", file=out)
    final = build_report(db, batch.id, threshold, baseline=choice, partial=True)
    assert final is not None
    if final.finished:
        _record_finished(db, batch.id, threshold)
    if services is not None:
        publish_batch(services, batch.id)
        await _drain(services, args.slack_channel, len(final.rows))
    results = case_results(final, threshold)
    return _finish(args, out, suite.name, label, results, batch=final.batch, baseline=baseline)


def _open(path: str) -> Database:
    try:
        return open_db(path)
    except (sqlite3.Error, OSError) as error:
        raise _Stop(USAGE, f"cannot open the database {path} (THUNDERBOT_DB): {error}") from error


def _looks_like_file(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith(".json")


def _load_suite(db: Database, given: str, disk: str | None) -> tuple[Suite, str | None]:
    """The suite `--suite` names, or the suite file it gives, imported under its name first
    (`disk`: with --sandbox, the bot's database, where a named suite is read from)."""
    path = Path(given)
    if path.is_file() or _looks_like_file(given):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as error:
            raise _Stop(USAGE, f"cannot read {given}: {error.strerror or error}") from error
        except UnicodeDecodeError as error:
            raise _Stop(
                USAGE, f"cannot read {given}: it is not UTF-8 text (byte {error.start + 1})"
            ) from error
        try:
            parsed = parse_suite(text, name=None, filename=given)
        except SuiteError as error:
            raise _Stop(USAGE, f"cannot import {given}: {error.message}") from error
        stored, previous = suite_admin.import_suite(
            db, suite_record(parsed, created_by=CI_USER), audit.Where(CI_USER, CI_TEAM)
        )
        count = len(stored.cases)
        verb = "Replaced" if previous else "Imported"
        note = f'{verb} suite "{stored.name}" from {given} ({count} case{"s" * (count != 1)}).'
        return suite_from_record(stored), note
    try:
        name = parse_suite_name(given, "--suite")
    except SuiteError as error:
        raise _Stop(USAGE, error.message) from error
    record = suite_store.get_suite(db, name)
    if record is None and disk is not None and Path(disk).is_file():
        saved = _open(disk)
        try:
            record = suite_store.get_suite(saved, name)
        finally:
            saved.close()
        if record is not None:
            suite_store.save_suite(db, record)
    if record is None:
        raise _Stop(
            USAGE,
            f'There is no suite "{name}". See: thunderbot suite list; or give --suite a suite '
            "file, like --suite refunds.json",
        )
    try:
        return suite_from_record(record), None
    except SuiteError as error:
        raise _Stop(USAGE, f'suite "{name}": {error.message}') from error


def _target(suite: Suite, given: str | None) -> tuple[str, int, str]:
    """(target_type, target_id, label): `--target`, else the suite's default target."""
    if given is not None:
        try:
            target = parse_default_target(given, "--target")
        except SuiteError as error:
            raise _Stop(USAGE, error.message) from error
    elif suite.target is not None:
        target = suite.target
    else:
        raise _Stop(
            USAGE,
            f'suite "{suite.name}" has no default target: give one with --target agent:12',
        )
    assert target.id is not None
    return target.kind, target.id, target.label


def _target_name(db: Database, baseline: BatchRecord | None) -> str:
    """The target's name as ThunderPhone gave it in the baseline's runs, when there is one."""
    if baseline is None:
        return ""
    for item in batch_store.get_items(db, baseline.id):
        run = run_store.get_run(db, item.run_id) if item.run_id is not None else None
        if run is not None and run.target_name:
            return run.target_name
    return ""


async def _thunderphone(
    args: argparse.Namespace, settings: CiSettings, stack: AsyncExitStack
) -> tuple[ThunderPhoneClient, str]:
    if args.sandbox:
        from bot.sandbox.thunderphone import ThunderPhoneSandbox

        simulator = ThunderPhoneSandbox(
            step_seconds=SANDBOX_STEP_SECONDS, stagger_scale=SANDBOX_STAGGER_SCALE
        )
        base_url = await simulator.start()
        stack.push_async_callback(simulator.close)
        api_key = simulator.api_key
    else:
        base_url = settings.thunderphone_base_url
        api_key = settings.thunderphone_api_key.get_secret_value().strip()
    client = ThunderPhoneClient(base_url=base_url, api_key=api_key)
    stack.push_async_callback(client.aclose)
    return client, base_url


async def _slack(
    args: argparse.Namespace,
    settings: CiSettings,
    db: Database,
    client: ThunderPhoneClient,
    threshold: float,
    stack: AsyncExitStack,
) -> Services | None:
    """With `--slack-channel`: the parts of the bot that post, as `serve` builds them."""
    if not args.slack_channel:
        return None
    from bot.config import Settings
    from bot.outbox import Outbox
    from bot.slack import create_slack_client, create_slack_session

    # Only what posting reads: the publishing path uses the token, the API URL, the Slack
    # timings and the threshold; the server's secrets (signing, webhooks) play no part.
    posting = Settings.model_construct(
        slack_bot_token=settings.slack_bot_token,
        slack_api_url=settings.slack_api_url,
        thunderphone_base_url=settings.thunderphone_base_url,
        thunderbot_db=settings.thunderbot_db,
        thunderbot_score_threshold=threshold,
        thunderbot_slack_timeout=settings.thunderbot_slack_timeout,
        thunderbot_post_interval=settings.thunderbot_post_interval,
    )
    session = create_slack_session(posting)
    stack.push_async_callback(session.close)
    slack = create_slack_client(posting, session)
    outbox = Outbox(
        db,
        slack,
        post_interval=settings.thunderbot_post_interval,
        call_timeout=settings.thunderbot_slack_timeout,
    )
    stack.push_async_callback(outbox.close)
    return Services(settings=posting, db=db, thunderphone=client, slack=slack, outbox=outbox)


async def _launch(
    db: Database, client: ThunderPhoneClient, services: Services | None, batch: BatchRecord
) -> BatchOutcome:
    """Claim the batch, then send it: with Slack exactly as the Start button does (the card
    goes up first; where it cannot, nothing starts)."""
    if services is not None:
        return await batches.start(services, batch.id, CI_USER)
    try:
        claimed = batches.decide(db, batch.id, "launching", CI_USER)
    except sqlite3.Error as error:
        return NotRecorded(str(error))
    assert claimed, "a batch recorded a moment ago is still proposed"
    current = batch_store.get_batch(db, batch.id)
    assert current is not None
    return await batches.launch_claimed(db, client, current)


def _say_launched(out: TextIO, outcome: BatchOutcome, channel: str | None) -> None:
    match outcome:
        case CannotPost(problem):
            raise _Stop(
                USAGE,
                f"cannot post in {channel} ({problem}), so nothing was started: invite the bot "
                "to the channel, or check SLACK_BOT_TOKEN.",
            )
        case BatchStarted(_, started, total, problem):
            runs = plural(total, "run")
            line = f"started {started} of {runs}" if problem else f"started {runs}"
            print(line + (f"; the rest did not start: {problem}" if problem else ""), file=out)
        case Refused(reason):
            print(f"ThunderPhone refused the runs: {reason}", file=sys.stderr)
        case Unclear(reason):
            print(
                f"ThunderPhone's answer was unclear ({reason}); looking for the runs instead of "
                "sending them again",
                file=out,
            )
        case NotRecorded(problem):
            raise _Stop(
                USAGE,
                f"cannot record the consent in the audit trail ({problem}), so nothing was "
                "started: check the database (THUNDERBOT_DB).",
            )
        case _:
            raise AssertionError(outcome)


class _Display:
    """Progress: a table redrawn in place on a terminal, plain lines as runs land otherwise
    (and a line at least every `HEARTBEAT_SECONDS` while nothing lands)."""

    def __init__(self, out: TextIO, threshold: float, now: float) -> None:
        self.out = out
        self.threshold = threshold
        self.live = out.isatty()
        self._drawn = 0
        self._shown: set[int] = set()
        self._last_line = now

    def update(self, report: BatchReport, now: float) -> None:
        if self.live:
            lines = live_table(report, self.threshold)
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # back to the table's top
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
            self._drawn = len(lines)
            return
        parts = {part.part: part for part in report.parts}
        for row in report.rows:
            part = parts.get(row.item.part)
            result = run_result(row, report.batch.repeat, self.threshold, part)
            refused = part is not None and part.status in ("refused", "skipped")
            if row.item.position in self._shown or not (result.measured or refused):
                continue
            self._shown.add(row.item.position)
            self._last_line = now
            print(run_line(result), file=self.out, flush=True)
        if now - self._last_line >= HEARTBEAT_SECONDS:
            tally = report.progress
            print(
                f"waiting: {tally.done}/{len(report.rows)} done, {tally.grading} grading",
                file=self.out,
                flush=True,
            )
            self._last_line = now


async def _wait(
    db: Database,
    client: ThunderPhoneClient,
    services: Services | None,
    batch_id: str,
    threshold: float,
    choice: BaselineChoice,
    display: _Display,
    args: argparse.Namespace,
    settings: CiSettings,
) -> BatchReport:
    """Poll until every run that started is done, or the timeout."""
    interval = settings.thunderbot_poll_seconds
    if args.sandbox:
        interval = min(interval, SANDBOX_POLL_SECONDS)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.timeout
    trouble: str | None = None
    while True:
        changed, problem = await poll_batch(db, client, batch_id)
        if problem and problem != trouble:
            print(f"asking ThunderPhone failed: {problem}; trying again", file=sys.stderr)
        trouble = problem
        if services is not None:
            for run_id in sorted(changed):
                publish_run(services, run_id)
        report = build_report(db, batch_id, threshold, baseline=choice)
        assert report is not None
        display.update(report, loop.time())
        if report.finished or loop.time() >= deadline:
            return report
        await asyncio.sleep(max(0.0, min(interval, deadline - loop.time())))


async def poll_batch(
    db: Database, client: ThunderPhoneClient, batch_id: str
) -> tuple[set[int], str | None]:
    """One round of news about a batch's runs, merged into storage as webhooks would be: the
    runs (listed by ThunderPhone batch), the details and grade of each finished call, and any
    part whose answer was unclear (looked for by name). Returns the runs that may have changed
    and what went wrong asking, if anything did."""
    changed: set[int] = set()
    problem: str | None = None
    unclear = [part for part in batch_store.get_parts(db, batch_id) if part.status == "unknown"]
    if unclear:
        try:
            await batches.look_for_parts(db, client, unclear)
        except ThunderPhoneError as error:
            problem = str(error)
    items = batch_store.get_items(db, batch_id)
    for part in batch_store.get_parts(db, batch_id):
        if part.status != "launched" or part.tp_batch_id is None:
            continue
        wanted = {
            item.run_id
            for item in items
            if item.part == part.part and item.run_id is not None and _needs_news(db, item.run_id)
        }
        if not wanted:
            continue
        try:
            for report in await _runs_of(client, part.tp_batch_id, wanted):
                _, moved = run_store.merge_run(db, report.id, run_changes(report))
                if moved:
                    changed.add(report.id)
            for run_id in sorted(wanted):
                if await _complete(db, client, run_id):
                    changed.add(run_id)
        except ThunderPhoneError as error:
            problem = str(error)
    return changed, problem


def _needs_news(db: Database, run_id: int) -> bool:
    """Unfinished, or finished without its call's details or (when completed) its grade."""
    run = run_store.get_run(db, run_id)
    if run is None:
        return False
    if not run.is_terminal:
        return True
    if run.call_id is None:
        return False
    if run.cost_cents is None or run.end_reason is None:
        return True
    if run_store.get_transcript(db, run.call_id) is None:
        return True
    grade = run_store.get_grade(db, run.call_id)
    return run.status == "completed" and (grade is None or grade.status == "provisional")


async def _runs_of(client: ThunderPhoneClient, tp_batch_id: int, wanted: set[int]) -> list[Run]:
    """The wanted runs of one ThunderPhone batch, paging on while some are missing (a list
    that ignores the batch filter still holds them among the newest)."""
    found: dict[int, Run] = {}
    for page in range(LIST_MAX_PAGES):
        listed = await client.list_test_calls(
            batch_id=tp_batch_id, limit=LIST_PAGE_SIZE, offset=page * LIST_PAGE_SIZE
        )
        found.update({run.id: run for run in listed if run.id in wanted})
        if len(listed) < LIST_PAGE_SIZE or wanted <= found.keys():
            break
    return list(found.values())


async def _complete(db: Database, client: ThunderPhoneClient, run_id: int) -> bool:
    """Fetch what a finished run still lacks: its call's cost, end reason and transcript, and
    its grade once grading has ended. True when something was fetched."""
    run = run_store.get_run(db, run_id)
    if run is None or not run.is_terminal or run.call_id is None:
        return False
    fetched = False
    transcript = run_store.get_transcript(db, run.call_id)
    if run.cost_cents is None or run.end_reason is None or transcript is None:
        await fetch_details(db, client, run)
        fetched = True
    graded = run_store.get_grade(db, run.call_id)
    if run.status == "completed" and (graded is None or graded.status == "provisional"):
        grade = await client.get_grade(run.call_id)
        # A grade with no score counts once grading has ended (failed, or recording disabled).
        if grade is not None and (grade.score is not None or grade.status not in {"", "pending"}):
            fetched = run_store.merge_grade(db, grade_record(grade)) or fetched
    return fetched


def _record_finished(db: Database, batch_id: str, threshold: float) -> None:
    """As a finished suite run in Slack: marked finished (so it can be a later run's
    baseline) with each case's verdict (so later runs know which cases have been flaky)."""
    report = build_report(db, batch_id, threshold)
    if report is None or not report.finished:
        return
    if batch_store.mark_finished(db, batch_id) and report.changes is not None:
        batch_store.record_verdicts(
            db, batch_id, {change.case: change.verdict for change in report.changes}
        )


async def _drain(services: Services, channel: str, runs: int) -> None:
    """Give the card and thread time to reach Slack; what does not stays stored."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SLACK_DRAIN_BASE_SECONDS + SLACK_DRAIN_PER_RUN_SECONDS * runs
    while messages.work_in_channel(services.db, channel) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    left = len(messages.work_in_channel(services.db, channel))
    if left:
        print(
            f"{left} Slack message(s) not delivered yet; they stay in the database and "
            "`thunderbot serve` delivers them when it runs on it",
            file=sys.stderr,
        )


def _finish(
    args: argparse.Namespace,
    out: TextIO,
    suite: str,
    target: str,
    results: list[CaseResult],
    *,
    batch: BatchRecord | None,
    baseline: BatchRecord | None,
) -> int:
    code = exit_code(results)
    print("", file=out)
    for line in summary_table(results):
        print(line, file=out)
    why = reasons_lines(results)
    if why:
        print("", file=out)
        for line in why:
            print(line, file=out)
    print(summary_line(results, code), file=out)
    if args.junit:
        properties = {
            "target": target,
            "baseline": baseline_text(baseline, args.baseline or "auto"),
        }
        if batch is not None:
            properties["batch"] = batch.id
        xml = junit_xml(
            suite,
            results,
            properties=properties,
            timestamp=(batch.decided_at or batch.created_at) if batch else now_iso(),
        )
        try:
            Path(args.junit).write_bytes(xml)
        except OSError as error:
            raise _Stop(
                USAGE, f"cannot write --junit {args.junit}: {error.strerror or error}"
            ) from error
    return code
