"""The servers the bot is compared with, each run as its own process on loopback:

    python -m benchmarks.baselines aiohttp --port P
        a bare aiohttp app: POST reads the body and answers 200 {"ok": true}
    python -m benchmarks.baselines bolt --port P --signing-secret S --slack-api-url URL \
            --slack-token T
        a bare Bolt app (AsyncApp, its aiohttp adapter on one route) whose /testcall listener
        only acks; its client points at the fake Slack, where Bolt checks its token once
    python -m benchmarks.baselines careful --port P --secret S --db PATH
        a minimal careful webhook receiver: the V2 signature checked with the official
        package, json.loads, one SQLite insert committed before the answer
    python -m benchmarks.baselines relay --port P --secret S --slack-api-url URL \
            --slack-token T --cards PATH
        a bare relay from ThunderPhone to Slack: the V2 signature checked, json.loads, the
        answer, then one chat.update through slack_sdk (one shared session, no retries, as the
        bot's client) of the run's card, found in memory in PATH ({run id: [channel, ts,
        payload]}); nothing is stored

Each serves GET /healthz, and has no access log (neither would a server tuned for speed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sqlite3
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web
from thunderphone.webhooks import SIGNATURE_HEADER, verify_signature

# The bot's routes and command, written out so a baseline imports nothing of the bot (the
# figure modules check that they agree).
SLACK_ROUTE = "/slack/events"
COMMAND = "/testcall"
WEBHOOK_ROUTE = "/webhooks/thunderphone"
OK = json.dumps({"ok": True})
CLIENT = web.AppKey("client", object)  # the relay's slack_sdk client


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text=OK, content_type="application/json")


def bare_aiohttp() -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text=OK, content_type="application/json")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{tail:.*}", receive)
    return app


def bare_bolt(signing_secret: str, slack_api_url: str, slack_token: str) -> web.Application:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    client = AsyncWebClient(token=slack_token, base_url=slack_api_url)
    bolt = AsyncApp(client=client, signing_secret=signing_secret)

    @bolt.command(COMMAND)
    async def only_ack(ack: Any) -> None:
        await ack()

    async def events(request: web.Request) -> web.Response:
        bolt_response = await bolt.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_post(SLACK_ROUTE, events)
    return app


def signed(request: web.Request, body: bytes, secret: str) -> bool:
    """Whether the request carries ThunderPhone's V2 signature, checked with the official
    package."""
    return verify_signature(
        request.headers.get(SIGNATURE_HEADER),
        secret=secret,
        method=request.method,
        path=request.raw_path,
        body=body,
    )


def careful_receiver(secret: str, db_path: str) -> web.Application:
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(
        "create table if not exists events (event_id text primary key, type text, body text)"
    )
    db.commit()

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not signed(request, body, secret):
            return web.json_response({"ok": False}, status=401)
        event = json.loads(body)
        db.execute(
            "insert or ignore into events (event_id, type, body) values (?, ?, ?)",
            [event.get("event_id"), event.get("type"), body.decode()],
        )
        db.commit()
        return web.Response(text=OK, content_type="application/json")

    async def close(app: web.Application) -> None:
        db.close()

    app = web.Application()
    app.on_cleanup.append(close)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(WEBHOOK_ROUTE, receive)
    return app


def bare_relay(
    secret: str, slack_api_url: str, slack_token: str, cards_path: str
) -> web.Application:
    import aiohttp
    from slack_sdk.web.async_client import AsyncWebClient

    with open(cards_path, encoding="utf-8") as file:
        cards = {int(run_id): card for run_id, card in json.load(file).items()}
    # As the bot's client: its logger's level set, so slack_sdk skips formatting debug lines.
    logger = logging.getLogger("slack_sdk.web.async_client")
    logger.setLevel(logger.getEffectiveLevel())
    tasks: set[asyncio.Task[Any]] = set()

    async def open_client(app: web.Application) -> AsyncIterator[None]:
        session = aiohttp.ClientSession()
        app[CLIENT] = AsyncWebClient(
            token=slack_token,
            base_url=slack_api_url,
            session=session,
            retry_handlers=[],
            logger=logger,
        )
        yield
        for task in list(tasks):
            task.cancel()
        await session.close()

    async def update(client: Any, run_id: int) -> None:
        channel, ts, payload = cards[run_id]
        await client.chat_update(channel=channel, ts=ts, **payload)

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not signed(request, body, secret):
            return web.json_response({"ok": False}, status=401)
        run_id = json.loads(body)["data"]["test_call_run"]["id"]
        task = asyncio.create_task(update(request.app[CLIENT], run_id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.Response(text=OK, content_type="application/json")

    app = web.Application()
    app.cleanup_ctx.append(open_client)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(WEBHOOK_ROUTE, receive)
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines", description=__doc__)
    parser.add_argument("kind", choices=["aiohttp", "bolt", "careful", "relay"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--signing-secret", default="")
    parser.add_argument("--slack-api-url", default="")
    parser.add_argument("--slack-token", default="")
    parser.add_argument("--secret", default="")
    parser.add_argument("--db", default="")
    parser.add_argument("--cards", default="")
    args = parser.parse_args(argv)
    if args.kind == "aiohttp":
        app = bare_aiohttp()
    elif args.kind == "bolt":
        app = bare_bolt(args.signing_secret, args.slack_api_url, args.slack_token)
    elif args.kind == "careful":
        app = careful_receiver(args.secret, args.db)
    else:
        app = bare_relay(args.secret, args.slack_api_url, args.slack_token, args.cards)
    web.run_app(app, host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
