"""`thunderbot doctor`: check an installation, one line per check, with a fix for each failure.

It asks Slack and ThunderPhone only what costs nothing (`auth.test`, reading agents and
webhook endpoints), opens the database as `serve` does, and reads the Slack app manifest.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TextIO
from urllib.parse import urlsplit

from bot.config import SetupSettings
from bot.reconcile import WEBHOOK_EVENTS
from bot.server import SLACK_ROUTE
from bot.thunderphone import (
    ThunderPhoneAuthError,
    ThunderPhoneClient,
    ThunderPhoneError,
    ThunderPhoneUnavailable,
)
from bot.webhook_setup import ADMIN_FIX, ADMIN_ONLY, missing_events, same_url, webhook_url

DEFAULT_MANIFEST = "manifest.yml"
PLACEHOLDER = "YOUR-HOST"
PUBLIC_URL_HOW = (
    "set THUNDERBOT_PUBLIC_URL to the bot's public address, like https://bot.example.com"
)
_MANIFEST_URL = re.compile(r"""^\s*(?:-\s*)?(?:request_url|url)\s*:\s*["']?([^"'\s#]+)""")

State = Literal["ok", "failed", "skipped"]
_MARKS: dict[State, str] = {"ok": "✓", "failed": "✗", "skipped": "-"}


@dataclass(frozen=True)
class Finding:
    """The outcome of one check: what was found and, unless it passed, what to do."""

    name: str
    state: State
    summary: str
    fix: str = ""

    def lines(self) -> list[str]:
        shown = [f"{_MARKS[self.state]} {self.name}: {self.summary}"]
        if self.fix:
            shown.append(f"  {'fix' if self.state == 'failed' else 'to check it'}: {self.fix}")
        return shown


def _ok(name: str, summary: str) -> Finding:
    return Finding(name, "ok", summary)


def _failed(name: str, summary: str, fix: str) -> Finding:
    return Finding(name, "failed", summary, fix)


def _skipped(name: str, summary: str, how: str = "") -> Finding:
    return Finding(name, "skipped", f"not checked: {summary}", how)


def main(settings: SetupSettings, manifest: str | None, out: TextIO | None = None) -> int:
    """Run every check, print them, and answer 0 when none failed, else 1."""
    import asyncio

    out = out or sys.stdout
    findings = asyncio.run(run_checks(settings, manifest))
    for finding in findings:
        for line in finding.lines():
            print(line, file=out)
    failed = sum(finding.state == "failed" for finding in findings)
    skipped = sum(finding.state == "skipped" for finding in findings)
    tail = f" ({skipped} not checked)" if skipped else ""
    if failed:
        print(f"\n{failed} of {len(findings)} checks failed{tail}.", file=out)
        return 1
    print(f"\nNo check failed{tail}.", file=out)
    return 0


async def run_checks(settings: SetupSettings, manifest: str | None) -> list[Finding]:
    slack = await check_slack_token(settings)
    signing = check_signing_secret(settings)
    key_works, key = await check_thunderphone_key(settings)
    secret = check_webhook_secret(settings)
    endpoint = await check_webhook_endpoint(settings, key_works)
    database = check_database(settings)
    app = check_manifest(settings, manifest)
    return [slack, signing, key, secret, endpoint, database, app]


async def check_slack_token(settings: SetupSettings) -> Finding:
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.slack_errors import SLACK_EXCEPTIONS, Problem, classify

    name = "Slack token"
    fix = (
        "set SLACK_BOT_TOKEN to the Bot User OAuth Token (xoxb-…) on the Slack app's "
        "OAuth & Permissions page (install the app to the workspace first)"
    )
    token = settings.slack_bot_token.get_secret_value().strip()
    if not token:
        return _failed(name, "SLACK_BOT_TOKEN is empty or not set", fix)
    client = AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        timeout=max(1, round(settings.thunderbot_slack_timeout)),
        retry_handlers=[],
    )
    try:
        answer = await client.auth_test()
    except SLACK_EXCEPTIONS as error:
        failure = classify(error)
        if failure.problem is Problem.AUTH:
            return _failed(name, f"Slack does not accept SLACK_BOT_TOKEN ({failure.code})", fix)
        return _failed(
            name,
            f"could not ask Slack at {settings.slack_api_url} ({failure.code})",
            "check this machine's network, and SLACK_API_URL if it is set "
            "(normally https://slack.com/api/)",
        )
    bot, team = answer.get("user") or "?", answer.get("team") or "?"
    return _ok(name, f"Slack accepts SLACK_BOT_TOKEN: the bot @{bot} in the {team} workspace")


def check_signing_secret(settings: SetupSettings) -> Finding:
    name = "Slack signing secret"
    if settings.slack_signing_secret.get_secret_value().strip():
        return _ok(name, "SLACK_SIGNING_SECRET is set")
    return _failed(
        name,
        "SLACK_SIGNING_SECRET is empty or not set",
        "set it to the Signing Secret under App Credentials on the Slack app's "
        "Basic Information page",
    )


async def check_thunderphone_key(settings: SetupSettings) -> tuple[bool, Finding]:
    """Whether the key works (the endpoint check needs it), and the finding."""
    name = "ThunderPhone API key"
    fix = (
        "put an API key of your ThunderPhone organisation (sk_live_…; a publishable pk_live_ "
        "key does not work) in THUNDERPHONE_API_KEY"
    )
    if not settings.thunderphone_api_key.get_secret_value().strip():
        return False, _failed(name, "THUNDERPHONE_API_KEY is empty or not set", fix)
    async with _client(settings) as client:
        try:
            agents = await client.list_agents()
        except ThunderPhoneAuthError as error:
            if error.status == 403:
                return False, _failed(
                    name,
                    f"ThunderPhone knows the key but will not list its agents ({error})",
                    "use a key of the organisation that owns the agents you test",
                )
            return False, _failed(name, f"ThunderPhone does not accept the key ({error})", fix)
        except ThunderPhoneUnavailable as error:
            return False, _failed(
                name,
                f"could not reach ThunderPhone at {settings.thunderphone_base_url} ({error})",
                "check this machine's network, and THUNDERPHONE_BASE_URL if it is set "
                "(normally https://api.thunderphone.com)",
            )
        except ThunderPhoneError as error:
            return False, _failed(
                name, f"ThunderPhone answered unexpectedly ({error})", "try again in a minute"
            )
    count = f"{len(agents)} agent{'' if len(agents) == 1 else 's'}"
    return True, _ok(name, f"ThunderPhone accepts THUNDERPHONE_API_KEY ({count})")


def check_webhook_secret(settings: SetupSettings) -> Finding:
    name = "ThunderPhone webhook secret"
    secrets = settings.webhook_secrets
    if not secrets:
        return _failed(
            name,
            "THUNDERPHONE_WEBHOOK_SECRET is empty or not set",
            "put the secret that `thunderbot webhooks register` printed (whsec_…) in "
            "THUNDERPHONE_WEBHOOK_SECRET",
        )
    several = f" ({len(secrets)} secrets, for a rotation)" if len(secrets) > 1 else ""
    return _ok(name, f"THUNDERPHONE_WEBHOOK_SECRET is set{several}")


async def check_webhook_endpoint(settings: SetupSettings, key_works: bool) -> Finding:
    name = "ThunderPhone webhook"
    if settings.thunderbot_public_url is None:
        return _skipped(name, "THUNDERBOT_PUBLIC_URL is not set", PUBLIC_URL_HOW)
    if not key_works:
        return _skipped(name, "the ThunderPhone API key does not work (see above)")
    url = webhook_url(settings.thunderbot_public_url)
    register = f"thunderbot webhooks register --url {url}"
    async with _client(settings) as client:
        try:
            endpoints = await client.list_webhook_endpoints()
        except ThunderPhoneAuthError as error:
            if error.status == 403:
                return _failed(
                    name,
                    f"cannot read the webhook endpoints: {ADMIN_ONLY} (HTTP 403)",
                    ADMIN_FIX.format(command="doctor")
                    + f"; or check in ThunderPhone's dashboard that an endpoint sends "
                    f"{' and '.join(WEBHOOK_EVENTS)} to {url}",
                )
            return _failed(name, f"cannot read the webhook endpoints ({error})", "see above")
        except ThunderPhoneError as error:
            return _failed(
                name, f"cannot read the webhook endpoints ({error})", "try again in a minute"
            )
    matching = [e for e in endpoints if same_url(e.url, url)]
    if not matching:
        return _failed(name, f"no ThunderPhone webhook endpoint sends to {url}", register)
    enabled = [e for e in matching if e.status != "disabled"]
    if not enabled:
        return _failed(
            name,
            f"the endpoint for {url} is disabled",
            "set it active again in ThunderPhone's dashboard",
        )
    missing = missing_events(enabled)
    if missing:
        return _failed(
            name,
            f"the endpoint for {url} does not receive {' or '.join(missing)}",
            "add it to the endpoint in ThunderPhone's dashboard, or delete the endpoint there "
            f"and run: {register} (then put the new secret in THUNDERPHONE_WEBHOOK_SECRET)",
        )
    hints = [e.secret_hint for e in enabled if _secret_tail(e.secret_hint)]
    secrets = settings.webhook_secrets
    if secrets and hints and not any(_matches(hint, secrets) for hint in hints):
        return _failed(
            name,
            f"THUNDERPHONE_WEBHOOK_SECRET is not the secret of the endpoint for {url} "
            f"(ThunderPhone shows it as {hints[0]})",
            "put that endpoint's secret in THUNDERPHONE_WEBHOOK_SECRET; if it is lost, delete "
            f"the endpoint in ThunderPhone's dashboard and run: {register}",
        )
    if all(e.status == "failing" for e in enabled):
        return _failed(
            name,
            f"ThunderPhone marks the endpoint for {url} as failing: its deliveries have not "
            "been answered with a 2xx for a day",
            "start the bot, check with `thunderbot webhooks test`, then set the endpoint "
            "active again in ThunderPhone's dashboard",
        )
    return _ok(name, f"{url} receives {' and '.join(WEBHOOK_EVENTS)}")


def _secret_tail(hint: str) -> str:
    """The end of the secret a hint like `whsec_…abc123` shows, when it shows enough."""
    for ellipsis in ("…", "..."):
        if ellipsis in hint:
            tail = hint.rsplit(ellipsis, 1)[1]
            return tail if len(tail) >= 4 else ""
    return ""


def _matches(hint: str, secrets: list[str]) -> bool:
    tail = _secret_tail(hint)
    return any(secret.endswith(tail) for secret in secrets)


def check_database(settings: SetupSettings) -> Finding:
    from storage.db import open_db

    name = "Database"
    path = settings.thunderbot_db
    where = str(Path(path).resolve()) if path != ":memory:" else path
    try:
        db = open_db(path)
        try:
            # A write nobody keeps: the schema is migrated as `serve` would, nothing else.
            db.conn.execute("BEGIN IMMEDIATE")
            db.conn.execute("CREATE TABLE thunderbot_doctor_probe (id INTEGER)")
            db.conn.execute("ROLLBACK")
        finally:
            db.close()
    except (sqlite3.Error, OSError) as error:
        return _failed(
            name,
            f"cannot write {where} ({error})",
            "point THUNDERBOT_DB at a file in a directory that exists and this user may write "
            "to, or make that one writable",
        )
    return _ok(name, f"{where} is writable and its tables are up to date")


def check_manifest(settings: SetupSettings, manifest: str | None) -> Finding:
    name = "Slack app manifest"
    path = Path(manifest or DEFAULT_MANIFEST)
    if settings.thunderbot_public_url is None:
        return _skipped(name, "THUNDERBOT_PUBLIC_URL is not set", PUBLIC_URL_HOW)
    if manifest is None and not path.exists():
        return _skipped(
            name, f"no {DEFAULT_MANIFEST} here", "thunderbot doctor --manifest PATH/manifest.yml"
        )
    try:
        urls = manifest_urls(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "it is not UTF-8 text"
        return _failed(name, f"cannot read {path} ({reason})", "thunderbot doctor --manifest PATH")
    if not urls:
        return _failed(
            name,
            f"{path} has no Request URL",
            "start from the manifest.yml that comes with thunderbot",
        )
    public = settings.thunderbot_public_url
    host = urlsplit(public).netloc
    expected = public + SLACK_ROUTE
    paste = "then paste it into the Slack app's App Manifest page and save"
    if any(PLACEHOLDER in url for url in urls):
        return _failed(
            name, f"{path} still says {PLACEHOLDER}", f"replace {PLACEHOLDER} with {host}; {paste}"
        )
    others = sorted({urlsplit(url).netloc for url in urls if urlsplit(url).netloc.lower() != host})
    if others:
        return _failed(
            name,
            f"{path} sends Slack to {', '.join(others)}, not to {host} (THUNDERBOT_PUBLIC_URL)",
            f"replace {', '.join(others)} with {host} in {path}, {paste}; or, if the manifest "
            "is right, correct THUNDERBOT_PUBLIC_URL",
        )
    wrong = [url for url in urls if not same_url(url, expected)]
    if wrong:
        return _failed(
            name,
            f"{path} has {wrong[0]}, not {expected}",
            f"make every Request URL in {path} {expected}; {paste}",
        )
    count = f"{len(urls)} Request URL{'' if len(urls) == 1 else 's'}"
    return _ok(name, f"{path}'s {count} point at {expected}")


def manifest_urls(text: str) -> list[str]:
    """The URLs a Slack app manifest sends Slack to (Request URLs, slash command URLs)."""
    found = []
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _MANIFEST_URL.match(line)
        if match:
            found.append(match.group(1))
    return found


def _client(settings: SetupSettings) -> ThunderPhoneClient:
    return ThunderPhoneClient(
        base_url=settings.thunderphone_base_url,
        api_key=settings.thunderphone_api_key.get_secret_value().strip(),
    )
