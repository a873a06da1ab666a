"""`thunderbot webhooks register | test`: point ThunderPhone's webhooks at the bot, and check
that they arrive and verify.

Registering creates the endpoint at most once: it looks for an endpoint with the same URL
first, and the create itself is never retried (a second one would sign with a second secret).
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO
from urllib.parse import urlsplit

from bot.config import LOOPBACK_HOSTS, SetupSettings
from bot.reconcile import WEBHOOK_EVENTS
from bot.thunderphone import (
    ThunderPhoneAuthError,
    ThunderPhoneClient,
    ThunderPhoneError,
    ThunderPhoneInvalid,
    WebhookEndpoint,
    WebhookEndpointRequest,
    WebhookTestDelivery,
)
from handlers.webhooks import ROUTE

MAX_LABEL = 120
OK, FAILED, USAGE = 0, 1, 2
ADMIN_ONLY = (
    "only an admin or owner of the ThunderPhone organisation may read or create webhook "
    "endpoints, and THUNDERPHONE_API_KEY is not an admin's key"
)
ADMIN_FIX = (
    "run it with an admin's key, just for this command: "
    "THUNDERPHONE_API_KEY=sk_live_… thunderbot {command} (the bot itself needs no admin key)"
)


def webhook_url(public_url: str) -> str:
    """Where ThunderPhone sends the bot's events, given the bot's public address."""
    return public_url.rstrip("/") + ROUTE


def same_url(a: str, b: str) -> bool:
    """Whether two URLs name the same place (scheme and host in any case)."""
    first, second = urlsplit(a.strip()), urlsplit(b.strip())
    return (first.scheme.lower(), first.netloc.lower(), first.path or "/", first.query) == (
        second.scheme.lower(),
        second.netloc.lower(),
        second.path or "/",
        second.query,
    )


def url_problem(url: str) -> str | None:
    """Why ThunderPhone could not deliver the bot's events to `url`, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return f"{url} is not a web address; give one like https://bot.example.com{ROUTE}"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        return (
            f"{url} must start with https://: ThunderPhone delivers only over HTTPS "
            "(http:// only for localhost and 127.0.0.1)"
        )
    if parts.path != ROUTE or parts.fragment:
        return (
            f"the URL's path must be {ROUTE}, where the bot receives ThunderPhone's events "
            f"(got {parts.path or '/'}); give https://{parts.netloc}{ROUTE}"
        )
    return None


def missing_events(endpoints: list[WebhookEndpoint]) -> list[str]:
    """The bot's events that none of these endpoints receives."""
    return [event for event in WEBHOOK_EVENTS if not any(e.receives(event) for e in endpoints)]


def events_phrase(endpoint: WebhookEndpoint) -> str:
    return ", ".join(endpoint.events) if endpoint.events else "every event"


def main(args: argparse.Namespace, settings: SetupSettings) -> int:
    import asyncio

    if args.webhooks_command == "register":
        return asyncio.run(register(settings, args.url, args.label, sys.stdout, sys.stderr))
    return asyncio.run(send_test(settings, args.url, args.event, sys.stdout, sys.stderr))


def _resolve_url(settings: SetupSettings, url: str | None, command: str, err: TextIO) -> str | None:
    if url is None and settings.thunderbot_public_url is None:
        print(
            f"thunderbot webhooks {command}: give --url https://HOST{ROUTE}, or set "
            "THUNDERBOT_PUBLIC_URL to the bot's public address (like https://bot.example.com).",
            file=err,
        )
        return None
    return url.strip() if url is not None else webhook_url(settings.thunderbot_public_url or "")


def _needs_key(settings: SetupSettings, command: str, err: TextIO) -> bool:
    if settings.thunderphone_api_key.get_secret_value().strip():
        return False
    print(
        f"thunderbot webhooks {command} needs THUNDERPHONE_API_KEY, an admin's API key of "
        "the ThunderPhone organisation, in the environment or a .env file. Nothing was sent.",
        file=err,
    )
    return True


def _client(settings: SetupSettings) -> ThunderPhoneClient:
    return ThunderPhoneClient(
        base_url=settings.thunderphone_base_url,
        api_key=settings.thunderphone_api_key.get_secret_value().strip(),
    )


def _refusal(error: ThunderPhoneError, command: str) -> str:
    """What to tell a person whose request ThunderPhone refused or never answered."""
    if isinstance(error, ThunderPhoneAuthError) and error.status == 403:
        return f"ThunderPhone refused (HTTP 403): {ADMIN_ONLY}.\nfix: " + ADMIN_FIX.format(
            command=f"webhooks {command}"
        )
    if isinstance(error, ThunderPhoneAuthError):
        return (
            f"ThunderPhone does not accept THUNDERPHONE_API_KEY ({error}).\nfix: put an API "
            "key of your ThunderPhone organisation (sk_live_…) in THUNDERPHONE_API_KEY."
        )
    return f"ThunderPhone did not answer as expected: {error}"


async def register(
    settings: SetupSettings, url: str | None, label: str, out: TextIO, err: TextIO
) -> int:
    """Create the bot's webhook endpoint unless one with that URL exists; print its secret."""
    target = _resolve_url(settings, url, "register", err)
    if target is None:
        return USAGE
    problem = url_problem(target)
    if problem is None and not 1 <= len(label.strip()) <= MAX_LABEL:
        problem = f"the label must be 1 to {MAX_LABEL} characters (got {len(label.strip())})"
    if problem is not None:
        print(f"thunderbot webhooks register: {problem}. Nothing was sent.", file=err)
        return USAGE
    if _needs_key(settings, "register", err):
        return USAGE
    async with _client(settings) as client:
        try:
            existing = [e for e in await client.list_webhook_endpoints() if same_url(e.url, target)]
        except ThunderPhoneError as error:
            print(_refusal(error, "register"), file=err)
            print("Nothing was created.", file=err)
            return FAILED
        if existing:
            return _already_registered(existing, target, out)
        request = WebhookEndpointRequest(
            label=label.strip(), url=target, events=list(WEBHOOK_EVENTS)
        )
        try:
            created = await client.create_webhook_endpoint(request)
        except ThunderPhoneInvalid as error:
            print(f"ThunderPhone refused the endpoint: {error.detail or error}", file=err)
            print("Nothing was created.", file=err)
            return FAILED
        except ThunderPhoneError as error:
            if isinstance(error, ThunderPhoneAuthError):
                print(_refusal(error, "register"), file=err)
                return FAILED
            print(
                f"ThunderPhone's answer was lost ({error}): the endpoint may or may not exist, "
                "and it was not sent again.\nRun `thunderbot webhooks register` again: it looks "
                "first and never creates a second one. If it finds the endpoint, its secret was "
                "never shown: delete it in ThunderPhone's dashboard and register once more.",
                file=err,
            )
            return FAILED
    print(
        f'Registered the ThunderPhone webhook endpoint "{created.label}" ({created.id}): '
        f"{created.url} receives {events_phrase(created)}.\n"
        "\n"
        "Its signing secret, shown this once:\n"
        "\n"
        f"    {created.secret}\n"
        "\n"
        "Put it in THUNDERPHONE_WEBHOOK_SECRET (the environment or .env) and restart the bot.\n"
        "While you rotate secrets, a comma-separated list lets the old and the new both work:\n"
        "THUNDERPHONE_WEBHOOK_SECRET=whsec_new…,whsec_old…\n"
        f"Then check a delivery with: thunderbot webhooks test --url {created.url}",
        file=out,
    )
    return OK


def _already_registered(existing: list[WebhookEndpoint], url: str, out: TextIO) -> int:
    endpoint = existing[0]
    print(
        f'ThunderPhone already has a webhook endpoint for {url}: "{endpoint.label}" '
        f"({endpoint.id}), receiving {events_phrase(endpoint)}. Nothing was created.",
        file=out,
    )
    missing = missing_events(existing)
    if missing:
        print(
            f"It does not receive {' or '.join(missing)}, which the bot needs.\n"
            "fix: add the missing events to that endpoint in ThunderPhone's dashboard, or "
            "delete it there and run this command again (a new secret will be shown).",
            file=out,
        )
        return FAILED
    print(
        "Its secret was shown once, when it was created, and goes in "
        "THUNDERPHONE_WEBHOOK_SECRET. If it is lost, delete the endpoint in ThunderPhone's "
        "dashboard and run this command again.\n"
        f"Check a delivery with: thunderbot webhooks test --url {url}",
        file=out,
    )
    return OK


async def send_test(
    settings: SetupSettings, url: str | None, event: str | None, out: TextIO, err: TextIO
) -> int:
    """Have ThunderPhone send one signed test event to the bot's endpoint; report how it went."""
    target = _resolve_url(settings, url, "test", err)
    if target is None or _needs_key(settings, "test", err):
        return USAGE
    async with _client(settings) as client:
        try:
            matching = [e for e in await client.list_webhook_endpoints() if same_url(e.url, target)]
        except ThunderPhoneError as error:
            print(_refusal(error, "test"), file=err)
            return FAILED
        if not matching:
            print(
                f"ThunderPhone has no webhook endpoint for {target}, so nothing was sent.\n"
                f"fix: thunderbot webhooks register --url {target}",
                file=err,
            )
            return FAILED
        endpoint = matching[0]
        try:
            result = await client.test_webhook_endpoint(endpoint.id, event)
        except ThunderPhoneError as error:
            print(_refusal(error, "test"), file=err)
            return FAILED
    return _report(result, endpoint, event or "webhook.test", out)


def _report(result: WebhookTestDelivery, endpoint: WebhookEndpoint, event: str, out: TextIO) -> int:
    sent = f"ThunderPhone sent a test event ({result.event_type or event}) to {endpoint.url}"
    code = result.response_code
    if result.success:
        status = f"HTTP {code}" if code is not None else "a 2xx"
        print(
            f"{sent}: it arrived, and the bot accepted it ({status}), so its signature "
            "verified with THUNDERPHONE_WEBHOOK_SECRET.",
            file=out,
        )
        return OK
    if code is None:
        print(
            f"{sent}, but it did not arrive: {result.error or 'no answer'}.\n"
            f"fix: start `thunderbot serve` and make sure {endpoint.url} reaches it from the "
            "internet (see README: Installing into your Slack workspace).",
            file=out,
        )
    elif code == 401:
        hint = f" (ThunderPhone shows it as {endpoint.secret_hint})" if endpoint.secret_hint else ""
        print(
            f"{sent}: it arrived, but the bot refused its signature (HTTP 401).\n"
            f"fix: set THUNDERPHONE_WEBHOOK_SECRET on the bot to this endpoint's secret{hint} "
            "and restart the bot; a proxy in front of the bot must pass "
            f"{ROUTE} through unchanged. If the secret is lost, delete the endpoint in "
            "ThunderPhone's dashboard and run `thunderbot webhooks register` again.",
            file=out,
        )
    else:
        detail = f": {result.error}" if result.error and result.error != f"HTTP {code}" else ""
        print(
            f"{sent}: an answer came back, but HTTP {code}{detail}, not the bot's 2xx.\n"
            f"fix: make sure {endpoint.url} reaches `thunderbot serve` unchanged (a proxy "
            f"must pass {ROUTE} through as it is), and look at the bot's log.",
            file=out,
        )
    return FAILED
