"""`thunderbot serve | demo | sandbox | suite | ci | doctor | webhooks | audit`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import log as web_log
from aiohttp import web
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.config import Settings, describe_settings_error

if TYPE_CHECKING:
    from sqlite_utils import Database

    from bot.audit import Where

log = logging.getLogger("thunderbot")

# `serve --sandbox`: the simulator stands in for ThunderPhone with its built-in key and secret.
SANDBOX_API_KEY = "sk_test_sandbox"
SANDBOX_WEBHOOK_SECRET = "whsec_sandbox"
SANDBOX_STEP_SECONDS = 3.0
# How long a stop waits for requests in flight before the app's cleanup runs regardless.
SHUTDOWN_TIMEOUT = 5.0


class ServeSettings(Settings):
    """What `serve` needs: the settings, with the bot token required and not blank."""

    slack_bot_token: SecretStr = Field(description="Bot token (xoxb-...).")

    @field_validator("slack_bot_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class DatabaseSettings(BaseSettings):
    """What the suite commands need: the database alone, no Slack or ThunderPhone secrets."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    thunderbot_db: str = Field(default="thunderbot.db", description="SQLite file.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="thunderbot", description="Test ThunderPhone voice agents from Slack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the bot (Slack + ThunderPhone webhooks)")
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="use the built-in ThunderPhone simulator instead of the real API (nothing is billed)",
    )
    commands.add_parser("demo", help="play a whole conversation on loopback and print it")
    sandbox = commands.add_parser("sandbox", help="run the ThunderPhone simulator on its own")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8088)
    sandbox.add_argument("--api-key", default=SANDBOX_API_KEY)
    sandbox.add_argument("--webhook-url", default=None, help="where to deliver webhooks")
    sandbox.add_argument("--webhook-secret", default=SANDBOX_WEBHOOK_SECRET)
    sandbox.add_argument("--step-seconds", type=float, default=3.0, help="time per run stage")
    _add_suite_parser(commands)
    _add_audit_parser(commands)
    _add_ci_parser(commands)
    _add_setup_parsers(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        # `ci` is a gate in a build: its usage errors are exit 3, as are its other refusals.
        if exit_.code == 2 and _is_ci(sys.argv[1:] if argv is None else argv):
            return 3
        raise
    if args.command == "suite":
        return _suite(args)
    if args.command == "audit":
        return _audit(args)
    if args.command == "ci":
        return _ci(args)
    if args.command in {"doctor", "webhooks"}:
        return _setup_command(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    if args.command == "demo":
        return _demo()
    if args.command == "sandbox":
        return _run(_sandbox(args))
    try:
        settings = _settings_for_serve(args.sandbox)
    except ValidationError as error:
        print(describe_settings_error(error), file=sys.stderr)
        return 2
    refused = asyncio.run(_slack_refuses_token(settings))
    if refused:
        print(
            "thunderbot cannot start; fix these environment variables:\n"
            f"  SLACK_BOT_TOKEN is not accepted by Slack ({refused}): copy the Bot User OAuth "
            "Token (xoxb-…) from the app's OAuth & Permissions page",
            file=sys.stderr,
        )
        return 2
    return _serve(settings, sandbox=args.sandbox)


async def _slack_refuses_token(settings: Settings) -> str | None:
    """Slack's reason for refusing the bot token (auth.test), or None. Slack being out of
    reach is no reason to refuse to start: that is logged, and the bot starts."""
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack_errors import SLACK_EXCEPTIONS, Problem, classify

    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=max(1, round(settings.thunderbot_slack_timeout)),
        retry_handlers=[],
    )
    try:
        await client.auth_test()
    except SLACK_EXCEPTIONS as error:
        failure = classify(error)
        if failure.problem is Problem.AUTH:
            return failure.code
        log.warning("could not check the Slack token at start-up: %s", failure.code)
    return None


def _settings_for_serve(sandbox: bool) -> Settings:
    """Every missing or invalid variable is reported at once, with or without the simulator."""
    if not sandbox:
        return ServeSettings()  # type: ignore[call-arg]
    return ServeSettings(  # type: ignore[call-arg]
        thunderphone_api_key=SecretStr(SANDBOX_API_KEY),
        thunderphone_webhook_secret=SecretStr(SANDBOX_WEBHOOK_SECRET),
    )


def _run(coroutine: object) -> int:
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 0


def _serve(settings: Settings, *, sandbox: bool) -> int:
    """Serve until SIGTERM or SIGINT, then stop taking requests, run the app's cleanup (worker,
    clients, database, simulator) and exit 0. A second signal cuts the cleanup short."""
    from bot.server import create_app

    # The settings hold the token from here on. Bolt would read SLACK_BOT_TOKEN from the
    # environment again, find its client already carrying the token, and warn that it is unused.
    os.environ.pop("SLACK_BOT_TOKEN", None)
    app = create_app(settings)
    if sandbox:
        # First in line: the bot's clients are built against the simulator's address, and the
        # simulator closes only after the worker that talks to it has stopped.
        app.cleanup_ctx.insert(0, _simulator)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            handle_signals=True,
            print=_announce(settings),
            access_log=web_log.access_logger if settings.thunderbot_access_log else None,
        )
    except web.GracefulExit:
        log.warning("thunderbot stopped before its cleanup finished (signalled twice)")
        return 1
    log.info("thunderbot stopped")
    return 0


def _announce(settings: Settings) -> Callable[..., None]:
    def announce(*_banner: object) -> None:
        log.info("thunderbot listening on %s:%s", settings.host, settings.port)

    return announce


async def _simulator(app: web.Application) -> AsyncIterator[None]:
    """`serve --sandbox`: the ThunderPhone simulator lives and dies with the app."""
    from bot.sandbox.thunderphone import ThunderPhoneSandbox
    from bot.server import SETTINGS
    from handlers.webhooks import ROUTE

    settings = app[SETTINGS]
    simulator = ThunderPhoneSandbox(
        api_key=SANDBOX_API_KEY,
        webhook_secret=SANDBOX_WEBHOOK_SECRET,
        webhook_url=f"http://{_reachable(settings.host)}:{settings.port}{ROUTE}",
        step_seconds=SANDBOX_STEP_SECONDS,
    )
    try:
        base_url = await simulator.start()
        app[SETTINGS] = settings.model_copy(update={"thunderphone_base_url": base_url})
        log.info("ThunderPhone simulator at %s (no calls are billed)", base_url)
        yield
    finally:
        await simulator.close()
        log.info("ThunderPhone simulator stopped")


def _reachable(host: str) -> str:
    """Where the simulator reaches the bot: loopback when it listens on every address."""
    if host in {"", "0.0.0.0", "::"}:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


async def _sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox.thunderphone import ThunderPhoneSandbox

    simulator = ThunderPhoneSandbox(
        api_key=args.api_key,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        step_seconds=args.step_seconds,
    )
    base_url = await simulator.start(args.host, args.port)
    logging.info("ThunderPhone simulator at %s (API key %s)", base_url, args.api_key)
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.close()
    return 0


def _demo() -> int:
    from bot.demo import DemoFailed, run_demo

    logging.getLogger().setLevel(logging.WARNING)
    try:
        asyncio.run(run_demo())
    except DemoFailed as error:
        print(f"\nThe demo failed: {error}", file=sys.stderr)
        return 1
    print(
        "\nDemo finished: a test call flagged for review, a batch of five, and a suite run "
        "compared with its blessed baseline."
    )
    return 0


def _add_suite_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    suite = commands.add_parser(
        "suite",
        help="import, export and list saved suites (on the bot's database; no Slack needed)",
        description="Saved suites in the bot's database (THUNDERBOT_DB, default thunderbot.db).",
    )
    actions = suite.add_subparsers(dest="suite_command", required=True)
    load = actions.add_parser(
        "import",
        help="import a suite file, replacing the suite's cases if it exists",
        description="Import a JSON array of {name, scenario_prompt, expected_outcome} cases, "
        "or an object {name, target, settings, cases}. All or nothing.",
    )
    load.add_argument("file", metavar="FILE", help="the suite file (- for standard input)")
    load.add_argument("--name", help="the suite's name (default: the file's, else its stem)")
    load.add_argument("--target", help="the suite's default target, agent:<id> or number:<id>")
    dump = actions.add_parser("export", help="write a suite as a file importing it back")
    dump.add_argument("name", metavar="NAME")
    dump.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (default: standard output)"
    )
    actions.add_parser("list", help="list the saved suites")
    trend = actions.add_parser(
        "trend", help="chart a suite's pass rate and mean score across its runs"
    )
    trend.add_argument("name", metavar="NAME")
    trend.add_argument("target", nargs="?", help="only runs on this target, like agent:12")
    trend.add_argument("-o", "--output", metavar="PNG", required=True, help="the chart's file")


def _add_audit_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser(
        "audit",
        help="export the audit trail: who launched, consented, cancelled, flagged, blessed or "
        "changed a setting, when, where and what it cost",
        description="Export the audit trail in the bot's database (THUNDERBOT_DB), oldest "
        "first: one event per row, with its time (UTC), team, channel, user, action, subject, "
        "detail and cost in cents (an estimate at consent, else billed). No Slack needed.",
    )
    audit.add_argument(
        "--since", metavar="YYYY-MM-DD", help="only events on or after this day, in UTC"
    )
    audit.add_argument(
        "--format",
        choices=("csv", "json"),
        default="csv",
        help="csv with a header row (default), or a json array of objects",
    )
    audit.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (default: standard output)"
    )


def _add_ci_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from bot import ci

    gate = commands.add_parser(
        "ci",
        help="run a suite against ThunderPhone as a gate in a build (no Slack needed)",
        description="Run a suite against ThunderPhone, wait for every result, compare with "
        "the baseline and exit 0 (every case passed), 1 (something failed), 2 (not everything "
        "was measured) or 3 (usage or configuration error). Launches only with --yes: every "
        "test call is billed at 2x the normal rate. See docs/ci.md.",
    )
    ci.add_arguments(gate)


def _add_setup_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check the installation: Slack, ThunderPhone, webhooks, database, manifest",
        description="Check every setting against Slack and ThunderPhone (nothing is billed), "
        "the database and the Slack app manifest; one line per check, with a fix for each "
        "failure. Exits 1 when a check fails.",
    )
    doctor.add_argument(
        "--manifest", metavar="PATH", help="the Slack app manifest (default: ./manifest.yml)"
    )
    webhooks = commands.add_parser(
        "webhooks",
        help="register ThunderPhone's webhook endpoint for the bot, or test it",
        description="ThunderPhone's webhook endpoint for the bot (needs an admin's "
        "THUNDERPHONE_API_KEY).",
    )
    actions = webhooks.add_subparsers(dest="webhooks_command", required=True)
    register = actions.add_parser(
        "register",
        help="create the ThunderPhone webhook endpoint that sends the bot its events",
        description="Create a ThunderPhone webhook endpoint for test-call.completed and "
        "call.graded, sent to the bot's /webhooks/thunderphone, and print its signing secret "
        "(shown once). Creates nothing if an endpoint with that URL exists.",
    )
    register.add_argument(
        "--url", help="https://HOST/webhooks/thunderphone (default: THUNDERBOT_PUBLIC_URL's)"
    )
    register.add_argument(
        "--label", default="thunderbot", help='the endpoint\'s name (default "thunderbot")'
    )
    test = actions.add_parser(
        "test",
        help="have ThunderPhone send the bot a signed test event, and say how it went",
        description="Find the endpoint sending to the bot and have ThunderPhone send it one "
        "signed synthetic event; says whether it arrived and whether its signature verified.",
    )
    test.add_argument(
        "--url", help="the endpoint's URL (default: THUNDERBOT_PUBLIC_URL's /webhooks/thunderphone)"
    )
    test.add_argument(
        "--event",
        choices=("webhook.test", "test-call.completed", "call.graded"),
        default=None,
        help="the event type to send (default: ThunderPhone's own webhook.test)",
    )


def _setup_command(args: argparse.Namespace) -> int:
    """`doctor` and `webhooks`: their findings are printed, so only errors are logged."""
    from bot import doctor, webhook_setup
    from bot.config import SetupSettings

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = SetupSettings()  # type: ignore[call-arg]
    except ValidationError as error:
        head = f"thunderbot {args.command}: fix these environment variables first:"
        print(describe_settings_error(error, head), file=sys.stderr)
        return 2
    if args.command == "doctor":
        return doctor.main(settings, args.manifest)
    return webhook_setup.main(args, settings)


def _is_ci(argv: Sequence[str]) -> bool:
    words = [word for word in argv if not word.startswith("-")]
    return bool(words) and words[0] == "ci"


def _ci(args: argparse.Namespace) -> int:
    from bot import ci

    # What a build needs to know is printed; the modules' own warnings (retries and the
    # like) would only repeat it.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    try:
        return ci.main(args)
    except KeyboardInterrupt:
        print("interrupted: runs already started go on at ThunderPhone", file=sys.stderr)
        return 2


def _suite(args: argparse.Namespace) -> int:
    """`suite import | export | list`: 0 done, 1 a file the bot cannot use or no such suite."""
    path = DatabaseSettings().thunderbot_db
    if args.suite_command == "import":
        return _suite_import(path, args.file, name=args.name, target=args.target)
    if args.suite_command == "export":
        return _suite_export(path, args.name, args.output)
    if args.suite_command == "trend":
        return _suite_trend(path, args.name, args.target, args.output)
    return _suite_list(path)


def _suite_trend(db_path: str, name: str, target: str | None, output: str) -> int:
    from bot.batches import UnknownSuite
    from bot.blocks.common import plural
    from bot.commands import CommandError
    from bot.trend import write_trend

    db = _existing_db(db_path)
    try:
        if db is None:
            raise UnknownSuite(name)
        count = write_trend(db, name, target, output)
    except UnknownSuite:
        print(f'There is no suite "{name}". See: thunderbot suite list', file=sys.stderr)
        return 1
    except CommandError as error:
        print(f"thunderbot suite trend: {error.problem}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    if count == 0:
        print(f'Suite "{name}" has no finished runs yet; nothing written.', file=sys.stderr)
        return 1
    print(f'Wrote the trend of suite "{name}" ({plural(count, "run")}) to {output}.')
    return 0


def _suite_import(db_path: str, file: str, *, name: str | None, target: str | None) -> int:
    from bot.suite_admin import import_suite
    from bot.suites import SuiteError, parse_suite, suite_record, target_label
    from storage.db import open_db

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8-sig")
    except OSError as error:
        print(f"cannot import {file}: {error.strerror or error}", file=sys.stderr)
        return 1
    except UnicodeDecodeError as error:
        print(
            f"cannot import {file}: it is not UTF-8 text (byte {error.start + 1})",
            file=sys.stderr,
        )
        return 1
    try:
        suite = parse_suite(text, name=name, filename=None if file == "-" else file, target=target)
    except SuiteError as error:
        print(f"cannot import {file}: {error.message}\nNothing was imported.", file=sys.stderr)
        return 1
    db = open_db(db_path)
    try:
        stored, previous = import_suite(db, suite_record(suite, created_by="cli"), _cli_user())
    finally:
        db.close()
    details = [_cases(len(stored.cases))]
    label = target_label(stored.target_type, stored.target_id)
    if label:
        details.append(f"default target {label}")
    if stored.settings:
        details.append(
            "settings " + ", ".join(f"{key} {value}" for key, value in stored.settings.items())
        )
    if previous is None:
        print(f'Imported suite "{stored.name}" from {file}: {", ".join(details)}.')
        return 0
    details[0] += f" (was {len(previous.cases)})"
    print(f'Replaced suite "{stored.name}" from {file}: {", ".join(details)}.')
    # The file is the whole suite: say what it no longer has, and how to keep it.
    old_label = target_label(previous.target_type, previous.target_id)
    if old_label and not label:
        print(f"It no longer has a default target (was {old_label}; keep one with --target).")
    if previous.settings and not stored.settings:
        print("It no longer has settings (give them in the file's object form).")
    return 0


def _cases(count: int) -> str:
    from bot.blocks.common import plural

    return plural(count, "case")


def _suite_export(db_path: str, name: str, output: str | None) -> int:
    from bot.suites import SuiteError, dump_suite, suite_from_record
    from storage.suites import get_suite

    db = _existing_db(db_path)
    record = get_suite(db, name) if db is not None else None
    if db is not None:
        db.close()
    if record is None:
        print(f'There is no suite "{name}". See: thunderbot suite list', file=sys.stderr)
        return 1
    try:
        text = dump_suite(suite_from_record(record))
    except SuiteError as error:
        print(f'cannot export suite "{record.name}": {error.message}', file=sys.stderr)
        return 1
    if output is None or output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(f'Exported suite "{record.name}" ({_cases(len(record.cases))}) to {output}.')
    return 0


def _suite_list(db_path: str) -> int:
    from bot.suites import target_label
    from storage.suites import list_suites

    db = _existing_db(db_path)
    suites = list_suites(db) if db is not None else []
    if db is not None:
        db.close()
    if not suites:
        print("No suites yet. Import one with: thunderbot suite import FILE")
        return 0
    rows = [("name", "cases", "default target", "updated")]
    rows += [
        (
            suite.name,
            str(suite.case_count),
            target_label(suite.target_type, suite.target_id) or "-",
            _when(suite.updated_at),
        )
        for suite in suites
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for name, cases, target, updated in rows:
        print(
            f"{name:<{widths[0]}}  {cases:>{widths[1]}}  {target:<{widths[2]}}  {updated}".rstrip()
        )
    return 0


AUDIT_COLUMNS = (
    "id",
    "at",
    "team_id",
    "channel_id",
    "user_id",
    "action",
    "subject_kind",
    "subject_id",
    "detail",
    "cost_cents",
    "cost_estimated",
)


def _audit(args: argparse.Namespace) -> int:
    """`audit`: every event since a day (default: all) as csv or json; 2 for a bad date, 1 for
    a file that cannot be written."""
    import csv
    import io
    import json
    from datetime import date

    from storage import audit

    start = None
    if args.since is not None:
        try:
            start = date.fromisoformat(args.since.strip()).isoformat()
        except ValueError:
            print(
                f'thunderbot audit: --since "{args.since}" is not a date: give YYYY-MM-DD, '
                "like 2026-12-01.",
                file=sys.stderr,
            )
            return 2
    db = _existing_db(DatabaseSettings().thunderbot_db)
    events = audit.since(db, start) if db is not None else []
    if db is not None:
        db.close()
    rows = [{**event.model_dump(), "cost_estimated": event.estimated} for event in events]
    if args.format == "json":
        text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=AUDIT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    if args.output is None or args.output == "-":
        sys.stdout.write(text)
        return 0
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 1
    count = len(rows)
    print(f"Wrote {count} audit event{'' if count == 1 else 's'} to {args.output}.")
    return 0


def _cli_user() -> Where:
    """Who changes settings from this command line: the login name, where there is one."""
    import getpass

    from bot.audit import Where

    try:
        return Where(f"cli:{getpass.getuser()}")
    except (OSError, KeyError, ImportError):
        return Where("cli")


def _existing_db(path: str) -> Database | None:
    """The database, if it exists: reading suites never creates one."""
    from storage.db import open_db

    if path != ":memory:" and not Path(path).exists():
        return None
    return open_db(path)


def _when(stamp: str) -> str:
    """A stored time as `2026-11-22 10:04 UTC`."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if len(stamp) >= 16 else stamp


if __name__ == "__main__":
    sys.exit(main())
