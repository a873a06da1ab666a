"""`thunderbot serve` as a real process, as production runs it, against a fake Slack and the
ThunderPhone sandbox that the caller (a test, a benchmark) runs in-process on loopback.

    async with ServedBot(tmp_path) as served:       # fake Slack, sandbox, then the bot
        reply = await served.user().slash("help")     # a person drives it over HTTP
        exited = await served.stop_bot(signal.SIGKILL)
        await served.start_bot()                      # same database, same port
    # leaving the block always kills the process and closes everything

`BotProcess` is the process alone, for a caller that brings its own environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_user import SlackUser
from bot.sandbox.stack import API_KEY, SIGNING_SECRET, WEBHOOK_SECRET, signed_user
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from bot.server import SLACK_ROUTE
from handlers.webhooks import ROUTE as WEBHOOK_ROUTE

REPO = Path(__file__).resolve().parents[2]
# Variables of the machine the bot would read; none reach the process.
BOT_VARIABLE_PREFIXES = ("SLACK_", "THUNDERPHONE_", "THUNDERBOT_")
BOT_VARIABLES = {"HOST", "PORT"}
START_TIMEOUT = 30.0  # importing Bolt and friends in a fresh interpreter on a slow machine
STOP_TIMEOUT = 15.0  # serve's own shutdown is bounded at a few seconds


@dataclass(frozen=True)
class Exited:
    """How a process ended: its exit code (negative: killed by that signal) and output."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def free_port() -> int:
    """A port nothing listens on right now, on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_environment(variables: Mapping[str, str | None]) -> dict[str, str]:
    """This environment without anything the bot reads, plus ``variables`` (None unsets)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(BOT_VARIABLE_PREFIXES) and name not in BOT_VARIABLES
    }
    # The checkout under test comes first, installed (`pip install -e .`) or not.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in variables.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def thunderbot_command(*args: str) -> list[str]:
    """`thunderbot ARGS` run by this interpreter; ResourceWarnings are shown, not hidden."""
    return [sys.executable, "-W", "always::ResourceWarning", "-m", "bot.cli", *args]


class BotProcess:
    """One `thunderbot` process. Its output goes to files, so it can never block on a full
    pipe, and stays readable after it exits; `kill` (idempotent) makes sure it is gone."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        *,
        cwd: Path,
        name: str = "thunderbot",
        port: int | None = None,
    ) -> None:
        self.args = list(args)
        self.env = dict(env)
        self.cwd = cwd
        self.port = port
        self.stdout_path = cwd / f"{name}.stdout"
        self.stderr_path = cwd / f"{name}.stderr"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        assert self.port is not None, "this process was started without a port"
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    async def start(self) -> None:
        """Spawn the process (it may still be starting up; see `wait_until_healthy`)."""
        assert self._process is None, "already started"
        self.cwd.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as stdout, self.stderr_path.open("wb") as stderr:
            # The child holds its own copies of the files; ours close right away.
            self._process = await asyncio.create_subprocess_exec(
                *self.args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
            )

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def stderr(self) -> str:
        return _read(self.stderr_path)

    def output(self) -> str:
        return self.stdout() + self.stderr()

    def describe(self) -> str:
        """For failure messages: the command, its state and everything it printed."""
        state = "running" if self.returncode is None else f"exited with {self.returncode}"
        return (
            f"`{' '.join(self.args)}` ({state})\n"
            f"--- stdout ---\n{self.stdout()}\n--- stderr ---\n{self.stderr()}"
        )

    async def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until GET /healthz answers 200; fails early, with the output, if the process exits."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last_problem = "no answer yet"
        client_timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            while True:
                if self.returncode is not None:
                    raise AssertionError(f"thunderbot exited while starting\n{self.describe()}")
                try:
                    async with session.get(self.url + "/healthz") as response:
                        if response.status == 200:
                            return
                        last_problem = f"HTTP {response.status}: {await response.text()}"
                except (aiohttp.ClientError, TimeoutError) as error:
                    last_problem = repr(error)
                if loop.time() >= deadline:
                    raise AssertionError(
                        f"/healthz did not answer within {timeout}s ({last_problem})\n"
                        f"{self.describe()}"
                    )
                await asyncio.sleep(0.1)

    async def wait(self, timeout: float = STOP_TIMEOUT) -> Exited:
        """Until the process exits on its own; killed (AssertionError) after ``timeout``."""
        assert self._process is not None, "not started"
        try:
            async with asyncio.timeout(timeout):
                code = await self._process.wait()
        except TimeoutError:
            await self.kill()
            raise AssertionError(
                f"thunderbot did not exit within {timeout}s\n{self.describe()}"
            ) from None
        return Exited(code, self.stdout(), self.stderr())

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Exited:
        """Send ``sig`` (SIGTERM, SIGINT, SIGKILL…) and wait, bounded, for the process to exit."""
        assert self._process is not None, "not started"
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(sig)
        return await self.wait(timeout)

    async def kill(self) -> None:
        """Make sure the process is gone and reaped; safe to call at any time, repeatedly."""
        if self._process is None or self._process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._process.kill()
        await self._process.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


class ServedBot:
    """`thunderbot serve` in a subprocess, wired to a FakeSlack and (unless ``sandbox``, where
    the bot runs its own simulator) a ThunderPhoneSandbox, both in this process on loopback.

    Restarts (`stop_bot`, then `start_bot`) keep the database, the port and the fakes, so a
    ThunderPhone webhook or a person's click reaches the new process as it would in production.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        sandbox: bool = False,
        step_seconds: float | None = 0.2,
        poll_seconds: float = 0.2,
        env: Mapping[str, str | None] | None = None,
    ) -> None:
        self.workdir = workdir
        self.sandbox = sandbox
        self.fake = FakeSlack()
        self.thunderphone: ThunderPhoneSandbox | None = None
        if not sandbox:
            self.thunderphone = ThunderPhoneSandbox(
                api_key=API_KEY, webhook_secret=WEBHOOK_SECRET, step_seconds=step_seconds
            )
        self.port = free_port()
        self._poll_seconds = poll_seconds
        self._env_overrides = dict(env or {})
        self.variables: dict[str, str] = {}
        self.process: BotProcess | None = None
        self._starts = 0
        self._users: list[SlackUser] = []

    async def __aenter__(self) -> ServedBot:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        await self.fake.start()
        variables: dict[str, str | None] = {
            "SLACK_BOT_TOKEN": self.fake.token,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": self.fake.api_url,
            "THUNDERBOT_DB": str(self.workdir / "thunderbot.db"),
            "THUNDERBOT_POLL_SECONDS": str(self._poll_seconds),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }
        if self.thunderphone is not None:
            variables |= {
                "THUNDERPHONE_API_KEY": API_KEY,
                "THUNDERPHONE_BASE_URL": await self.thunderphone.start(),
                "THUNDERPHONE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            }
            self.thunderphone.webhook_url = self.webhook_url
        variables |= self._env_overrides
        self.variables = {name: value for name, value in variables.items() if value is not None}
        await self.start_bot()

    async def start_bot(self, timeout: float = START_TIMEOUT) -> BotProcess:
        """Start (or, after `stop_bot`, restart) the bot and wait until /healthz answers."""
        assert self.process is None or self.process.returncode is not None, "already running"
        self._starts += 1
        args = thunderbot_command("serve", *(["--sandbox"] if self.sandbox else []))
        self.process = BotProcess(
            args,
            process_environment(self.variables),
            cwd=self.workdir,
            name=f"thunderbot-{self._starts}",
            port=self.port,
        )
        await self.process.start()
        await self.process.wait_until_healthy(timeout)
        return self.process

    async def stop_bot(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> Exited:
        """Signal the bot and wait, bounded, until it exits; its people's connections close."""
        assert self.process is not None, "not started"
        await self._close_users()
        return await self.process.stop(sig, timeout)

    async def close(self) -> None:
        try:
            if self.process is not None:
                await self.process.kill()
        finally:
            await self._close_users()
            if self.thunderphone is not None:
                await self.thunderphone.close()
            await self.fake.close()

    async def _close_users(self) -> None:
        users, self._users = self._users, []
        for user in users:
            await user.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events_url(self) -> str:
        return self.url + SLACK_ROUTE

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_ROUTE

    @property
    def db_path(self) -> Path:
        """The bot's SQLite file (with no THUNDERBOT_DB, the default in its working directory)."""
        return self.workdir / self.variables.get("THUNDERBOT_DB", "thunderbot.db")

    def user(self, user_id: str = "U0MARIA", channel_id: str = "C0QA") -> SlackUser:
        """A person in the fake workspace whose actions reach the bot signed as Slack signs."""
        user = signed_user(self.fake, self.events_url, user_id, channel_id)
        self._users.append(user)
        return user
