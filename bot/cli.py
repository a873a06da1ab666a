"""`thunderbot serve | demo | sandbox`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web
from pydantic import Field, SecretStr, ValidationError, field_validator

from bot.config import Settings, describe_settings_error

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
    return _serve(settings, sandbox=args.sandbox)


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
    print("\nDemo finished: one test call started, reported and flagged for review.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
