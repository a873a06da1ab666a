"""`thunderbot serve | demo | sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from aiohttp import web
from pydantic import ValidationError

from bot.config import Settings, describe_settings_error


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
    sandbox.add_argument("--api-key", default="sk_test_sandbox")
    sandbox.add_argument("--webhook-url", default=None, help="where to deliver webhooks")
    sandbox.add_argument("--webhook-secret", default="whsec_sandbox")
    sandbox.add_argument("--step-seconds", type=float, default=3.0, help="time per run stage")
    args = parser.parse_args(argv)
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
    return _run(_serve(settings, sandbox=args.sandbox))


def _settings_for_serve(sandbox: bool) -> Settings:
    if not sandbox:
        settings = Settings()  # type: ignore[call-arg]
        if not settings.slack_bot_token.get_secret_value():
            raise _missing("slack_bot_token")
        return settings
    # The simulator stands in for ThunderPhone; its key and secret are the built-in ones.
    return Settings.model_validate(
        {"thunderphone_api_key": "sk_test_sandbox", "thunderphone_webhook_secret": "whsec_sandbox"}
    )


def _missing(field: str) -> ValidationError:
    return ValidationError.from_exception_data(
        "Settings", [{"type": "missing", "loc": (field,), "input": None}]
    )


def _run(coroutine: object) -> int:
    try:
        return asyncio.run(coroutine)  # type: ignore[arg-type]
    except KeyboardInterrupt:
        return 0


async def _serve(settings: Settings, *, sandbox: bool) -> int:
    from bot.sandbox.thunderphone import ThunderPhoneSandbox
    from bot.server import create_app
    from handlers.webhooks import ROUTE

    simulator: ThunderPhoneSandbox | None = None
    if sandbox:
        simulator = ThunderPhoneSandbox(step_seconds=3.0)
        base_url = await simulator.start()
        settings = settings.model_copy(update={"thunderphone_base_url": base_url})
        simulator.webhook_url = f"http://127.0.0.1:{settings.port}{ROUTE}"
        logging.info("ThunderPhone simulator at %s (no calls are billed)", base_url)
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    logging.info("thunderbot listening on %s:%s", settings.host, settings.port)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        if simulator is not None:
            await simulator.close()
    return 0


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
    print("\nDemo finished: one test call started, reported and flagged for review.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
