"""`thunderbot serve` as a real process for the tests; it lives in `bot.sandbox.served`, where the
benchmarks use it too."""

from bot.sandbox.served import (
    BOT_VARIABLE_PREFIXES,
    BOT_VARIABLES,
    REPO,
    START_TIMEOUT,
    STOP_TIMEOUT,
    BotProcess,
    Exited,
    ServedBot,
    free_port,
    process_environment,
    thunderbot_command,
)

__all__ = [
    "BOT_VARIABLES",
    "BOT_VARIABLE_PREFIXES",
    "REPO",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "BotProcess",
    "Exited",
    "ServedBot",
    "free_port",
    "process_environment",
    "thunderbot_command",
]
