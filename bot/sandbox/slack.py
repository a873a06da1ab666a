"""A fake Slack Web API on aiohttp: records what the bot does and answers as Slack would."""

from __future__ import annotations

import asyncio
import copy
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from bot.sandbox import slack_api
from bot.sandbox.slack_api import RESPONSE_URL_USES as RESPONSE_URL_USES
from bot.sandbox.slack_api import ResponseHook, SlackError
from bot.sandbox.slack_render import (
    Ephemeral,
    Fault,
    Json,
    Message,
    SlackCall,
    UploadedFile,
    View,
    initial_state,
    render_channel,
    render_ephemerals,
    with_ids,
)

__all__ = [
    "Ephemeral",
    "FakeSlack",
    "Fault",
    "Message",
    "SlackCall",
    "SlackChaos",
    "SlackError",
    "UploadedFile",
    "Usergroup",
    "View",
]

T = TypeVar("T")


@dataclass
class Usergroup:
    """A Slack user group (`@qa-leads`): its id, handle and members."""

    id: str
    handle: str
    users: list[str] = field(default_factory=list)


MODAL_STACK_MAX = 3  # root + two pushes
SHUTDOWN_TIMEOUT = 1.0  # seconds close() lets an in-flight handler finish before cancelling it


# What a call hit by `SlackChaos` gets: a burst of 429s (this call and the next few to the same
# method and channel), an error (a 5xx from the load balancer or Slack's own `fatal_error`), a
# lost answer (Slack did it, the connection dropped), or a hang (answered late: past the client's
# timeout, the client gives up while Slack still does it).
SLACK_FAULT_KINDS = ("burst", "error", "lost", "hang")


@dataclass
class SlackChaos:
    """Web API calls misbehaving at random, at `rate` (a share between 0 and 1), made of the
    same `Fault`s as `FakeSlack.fault` (see `SLACK_FAULT_KINDS`; a kind listed twice is drawn
    twice as often). `methods` limits it to those Web API methods (None: all of them).

    Draws come from `random.Random(seed)`: the same seed gives the same draws for the same
    sequence of calls. `injected` counts (method, kind) of what was done.
    """

    rate: float
    seed: int = 0
    methods: Collection[str] | None = None
    kinds: tuple[str, ...] = SLACK_FAULT_KINDS
    burst: tuple[int, int] = (2, 5)  # calls refused in one burst, this one included
    retry_after: int = 1
    hang_seconds: tuple[float, float] = (0.5, 3.0)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate is a share between 0 and 1")
        if set(self.kinds) - set(SLACK_FAULT_KINDS):
            raise ValueError(f"fault kinds are among {SLACK_FAULT_KINDS}")
        self._random = random.Random(self.seed)

    def draw(self, method: str, args: Json) -> Fault | None:
        """The fault for one call, or None (most of the time)."""
        if self.methods is not None and method not in self.methods:
            return None
        if not self.kinds or self._random.random() >= self.rate:
            return None
        kind = self._random.choice(self.kinds)
        self.injected[(method, kind)] += 1
        if kind == "burst":
            channel = args.get("channel") or args.get("channel_id")
            return Fault(
                method,
                retry_after=self.retry_after,
                channel=str(channel) if channel else None,
                times=self._random.randint(*self.burst),
            )
        if kind == "error":
            if self._random.random() < 0.5:
                return Fault(
                    method, status=503, plain_text="upstream connect error", retry_after=None
                )
            return Fault(method, error="fatal_error", status=500, retry_after=None)
        if kind == "lost":
            return Fault(method, error=None, drop=True, handled=True)
        hang = self._random.uniform(*self.hang_seconds)
        return Fault(method, error=None, hang=hang, handled=self._random.random() < 0.5)


class FakeSlack:
    """Slack's Web API, response_urls and file uploads, held in memory.

    Channels: ``channels`` maps ids to names. ``private_channels``, ``archived_channels`` and
    ``bot_channels`` (those the bot is a member of) qualify them; by default every channel is
    public and the bot is a member of none (it posts with ``chat:write.public``). A DM channel
    (``D…``) appears, with the bot in it, when the bot first posts to a user id.

    People: ``members`` maps a channel to the people in it (the bot's own membership is
    ``bot_channels``); every person is in each channel given at construction, and
    ``add_channel``, ``join`` and ``leave`` change that. ``usergroups`` maps a user group's id
    (``S…``) to its handle and members (``add_usergroup``).

    Clock: message timestamps (``ts``) are the wall-clock time of posting, as Slack's are, so
    the times a rendering shows agree with the times the bot writes from its own clock.
    ``clock`` (seconds since the epoch, ``time.time`` by default) can be swapped for a fixed
    one in tests; ``advance`` moves the fake's clock ahead of it.
    """

    def __init__(
        self,
        *,
        token: str = "xoxb-sandbox",
        team_id: str = "T0SANDBOX",
        team_name: str = "Sandbox",
        bot_user_id: str = "U0THUNDER",
        bot_id: str = "B0THUNDER",
        bot_name: str = "thunderbot",
        app_id: str = "A0THUNDER",
        users: Mapping[str, str] | None = None,
        channels: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token, self.team_id, self.team_name = token, team_id, team_name
        self.bot_user_id, self.bot_id, self.bot_name, self.app_id = (
            bot_user_id,
            bot_id,
            bot_name,
            app_id,
        )
        self.users = dict(users if users is not None else {"U0MARIA": "maria", "U0LI": "li"})
        self.channels = dict(channels if channels is not None else {"C0QA": "voice-qa"})
        self.private_channels: set[str] = set()
        self.archived_channels: set[str] = set()
        self.bot_channels: set[str] = set()
        self.members: dict[str, set[str]] = {c: set(self.users) for c in self.channels}
        self.usergroups: dict[str, Usergroup] = {}
        self.faults: list[Fault] = []
        self.chaos: SlackChaos | None = None  # random faults, off unless set
        self.calls: list[SlackCall] = []
        self.messages: dict[str, list[Message]] = {c: [] for c in self.channels}
        self.ephemerals: list[Ephemeral] = []
        self.views: dict[str, View] = {}
        self.files: dict[str, UploadedFile] = {}
        self._hooks: dict[str, ResponseHook] = {}
        self._triggers: dict[str, bool] = {}  # trigger id -> already used
        self._trigger_users: dict[str, str | None] = {}
        self.clock = clock
        self._offset_us = 0  # how far `advance` moved the fake's clock ahead of `clock`
        self._last_ts_us = 0
        self._counter = 0
        self._base = ""
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._methods = dict(slack_api.METHODS)
        self.app = web.Application()
        self.app.router.add_route("*", "/api/{method}", self._api)
        self.app.router.add_post("/response/{key}", self._response)
        self.app.router.add_post("/upload/{file_id}", self._upload)
        self.app.router.add_get("/files/{file_id}/{name}", self._download)

    # ------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on loopback; returns the base URL."""
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        bound_host, bound_port = self._runner.addresses[0][:2]
        self._base = f"http://{bound_host}:{bound_port}"
        return self._base

    @property
    def base_url(self) -> str:
        if not self._base:
            raise RuntimeError("FakeSlack is not started")
        return self._base

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    async def close(self) -> None:
        """Stop serving. Calls held by a ``hang`` fault end at once with a dropped connection."""
        if self._closing is not None:
            self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------ ids and clock

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    def now(self) -> float:
        """The fake's time in seconds since the epoch: ``clock`` plus what ``advance`` added."""
        return self._now_us() / 1_000_000

    def _now_us(self) -> int:
        return int(self.clock() * 1_000_000) + self._offset_us

    def next_ts(self) -> str:
        """A fresh message timestamp: the current time to the microsecond, strictly later than
        every earlier one (two messages in the same microsecond, or a clock that stands still
        or steps back, get the next free microsecond)."""
        self._last_ts_us = max(self._now_us(), self._last_ts_us + 1)
        return f"{self._last_ts_us // 1_000_000}.{self._last_ts_us % 1_000_000:06d}"

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (later timestamps, and renderings, follow it)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset_us += int(seconds * 1_000_000)

    def new_response_url(
        self,
        *,
        channel: str,
        user: str,
        ephemeral: Ephemeral | None = None,
        message: Message | None = None,
    ) -> str:
        """A response_url bound to an ephemeral or channel message (or to nothing yet)."""
        url = f"{self.base_url}/response/{self._next()}"
        self._hooks[url.rsplit("/", 1)[1]] = ResponseHook(url, channel, user, ephemeral, message)
        if ephemeral is not None and ephemeral.response_url is None:
            ephemeral.response_url = url
        return url

    def new_trigger_id(self, user: str | None = None) -> str:
        """A registered, single-use trigger id."""
        trigger = f"{int(self.now())}.{self._next()}.sandbox"
        self._triggers[trigger] = False
        self._trigger_users[trigger] = user
        return trigger

    def expire_trigger(self, trigger_id: str) -> None:
        """Make a trigger id stale, as one older than 3 s is."""
        self._triggers.pop(trigger_id, None)

    def fail_next(
        self,
        method: str,
        *,
        error: str = "ratelimited",
        status: int = 429,
        retry_after: int | None = 1,
    ) -> None:
        """Make the next call of ``method`` fail once: ``fault`` with its defaults."""
        self.fault(method, error=error, status=status, retry_after=retry_after)

    def fault(
        self,
        method: str,
        *,
        error: str | None = "ratelimited",
        status: int = 429,
        retry_after: int | None = 1,
        plain_text: str | None = None,
        drop: bool = False,
        hang: float = 0.0,
        handled: bool = False,
        channel: str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Make calls of the Web API ``method`` misbehave as Slack, or what is in front of it, does.

        Faults match in the order they were added, before the token is checked; the fault is
        returned so a test can look at its ``hits``.

        What the client gets back, by precedence:

        - ``drop``: no answer at all; the TCP connection is closed, so the client sees a
          connection error (aiohttp's ``ServerDisconnectedError``).
        - ``plain_text``: HTTP ``status`` with this text as a ``text/plain`` body, as a load
          balancer in front of Slack answers (``status=500``, ``"upstream connect error"``).
        - ``error``: HTTP ``status`` with ``{"ok": false, "error": error}``.
        - ``error=None`` (and neither of the above): the normal answer, only late (see ``hang``).

        ``retry_after`` adds a ``Retry-After`` header to a status answer (None: no header).
        ``hang`` waits that many seconds (on the event loop, so a client can time out meanwhile)
        before answering; ``close()`` cuts the wait short and drops the connection.

        ``handled=False``: the method has no effect (with ``error=None`` it takes effect after the
        hang). ``handled=True``: the method takes effect first, exactly as on success, and only
        then comes the hang and the fault: "Slack did it but the answer was lost".

        ``channel`` limits the fault to calls whose ``channel`` (or ``channel_id``) argument is
        exactly this; ``times`` is how many matching calls it affects (None or 0: every one until
        ``clear_faults``). Faulted calls are recorded with ``ok=False``, ``error`` set to the error
        code, ``"http_<status>"`` for plain text or ``"connection_dropped"``, and ``fault`` set;
        ``SlackCall.result`` keeps what a handled method did.
        """
        if hang < 0 or (times is not None and times < 0):
            raise ValueError("hang and times must not be negative")
        fault = Fault(
            method,
            error=error,
            status=status,
            retry_after=retry_after,
            plain_text=plain_text,
            drop=drop,
            hang=hang,
            handled=handled,
            channel=channel,
            times=times or None,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget every pending fault; Slack behaves again."""
        self.faults.clear()

    def _take_fault(self, method: str, args: Json) -> Fault | None:
        """The fault this call meets: the first one set that matches, else one `chaos` draws
        (a burst stays set for the calls after this one)."""
        fault = next((f for f in self.faults if f.matches(method, args)), None)
        if fault is None and self.chaos is not None:
            fault = self.chaos.draw(method, args)
            if fault is not None and (fault.times or 0) > 1:
                self.faults.append(fault)
        if fault is None:
            return None
        fault.hits += 1
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0 and any(f is fault for f in self.faults):
                self.faults.remove(fault)
        return fault

    # ------------------------------------------------------------ channels

    def add_channel(
        self,
        channel: str,
        name: str,
        *,
        private: bool = False,
        bot_member: bool = False,
        members: Iterable[str] | None = None,
    ) -> None:
        """Create (or redefine) a channel; a private one is invisible to the bot unless a member.

        ``members``: the people in it (None: everyone for a public channel, nobody for a
        private one or a direct message)."""
        self.channels[channel] = name
        self.messages.setdefault(channel, [])
        _toggle(self.private_channels, channel, private)
        _toggle(self.bot_channels, channel, bot_member)
        if members is None:
            members = () if private or channel.startswith("D") else self.users
        self.members[channel] = set(members)

    def join(self, channel: str, user: str) -> None:
        """A person joins the channel."""
        self._known(channel)
        self.members.setdefault(channel, set()).add(user)

    def leave(self, channel: str, user: str) -> None:
        """A person leaves the channel."""
        self._known(channel)
        self.members.setdefault(channel, set()).discard(user)

    def add_usergroup(self, group: str, handle: str, users: Iterable[str]) -> None:
        """Create (or redefine) a user group, like ``S0QALEADS`` "@qa-leads"."""
        self.usergroups[group] = Usergroup(group, handle, list(users))

    def archive_channel(self, channel: str) -> None:
        """Archive: posts and edits answer ``is_archived``; history stays readable."""
        self._known(channel)
        self.archived_channels.add(channel)

    def unarchive_channel(self, channel: str) -> None:
        self._known(channel)
        self.archived_channels.discard(channel)

    def remove_channel(self, channel: str) -> None:
        """Delete the channel: every method answers ``channel_not_found`` for it afterwards.

        Its messages stay in ``messages`` for inspection.
        """
        self._known(channel)
        del self.channels[channel]
        self.members.pop(channel, None)
        for group in (self.private_channels, self.archived_channels, self.bot_channels):
            group.discard(channel)

    def invite_bot(self, channel: str) -> None:
        """Someone adds the bot to the channel."""
        self._known(channel)
        self.bot_channels.add(channel)

    def kick_bot(self, channel: str) -> None:
        """Someone removes the bot from the channel."""
        self._known(channel)
        self.bot_channels.discard(channel)

    def _known(self, channel: str) -> None:
        if channel not in self.channels:
            raise KeyError(channel)

    # ------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages.get(channel, []) if m.thread_ts == ts and m.ts != ts]

    def find_message(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages.get(channel, []) if m.ts == ts), None)

    def last_message(self, channel: str) -> Message | None:
        msgs = self.messages.get(channel, [])
        return msgs[-1] if msgs else None

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float = 5.0) -> T:
        """Poll until ``predicate`` is truthy; on timeout fail with what Slack holds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if loop.time() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s\n{self.dump()}")
            await asyncio.sleep(0.01)

    def dump(self) -> str:
        """Recent calls, channels, ephemerals and open views, for failure messages."""
        out = ["recent calls:"]
        out += [f"  {c.method} ok={c.ok} {c.error or ''}" for c in self.calls[-20:]]
        out += [self.render_channel(c) for c in self.messages]
        out += [self.render_ephemerals(u) for u in sorted({e.user for e in self.ephemerals})]
        out += [
            f"view {v.id} ({v.type}, {v.callback_id})" for v in self.views.values() if not v.closed
        ]
        return "\n".join(out)

    def name_of(self, ident: str) -> str:
        if ident in (self.bot_user_id, self.bot_id):
            return self.bot_name
        return self.users.get(ident) or self.channels.get(ident) or ident

    def render_channel(self, channel: str) -> str:
        """The channel and its threads as a person reads them."""
        msgs = self.messages.get(channel, [])
        return render_channel(
            self.channels.get(channel, channel), msgs, self.name_of, self.bot_name, now=self.now()
        )

    def render_ephemerals(self, user: str, channel: str | None = None) -> str:
        """The ephemeral messages ``user`` currently sees (oldest first)."""
        shown = [
            e
            for e in self.ephemerals
            if e.user == user and not e.deleted and channel in (None, e.channel)
        ]
        return render_ephemerals(shown, self.name_of, self.bot_name, now=self.now())

    # ------------------------------------------------------------ what users do

    def add_message(
        self,
        channel: str,
        *,
        text: str,
        blocks: list[Json] | None = None,
        user: str | None = None,
        thread_ts: str | None = None,
    ) -> Message:
        """Put a message in a channel: the bot's by default, or a person's when ``user`` is set."""
        by_bot = user is None or user == self.bot_user_id
        msg = Message(
            channel=channel,
            ts=self.next_ts(),
            user=self.bot_user_id if by_bot else str(user),
            text=text,
            blocks=with_ids(blocks or [], f"b{self._next()}."),
            thread_ts=thread_ts,
            bot_id=self.bot_id if by_bot else None,
        )
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def add_ephemeral(
        self,
        channel: str,
        user: str,
        *,
        text: str,
        blocks: list[Json] | None = None,
        response_url: str | None = None,
        thread_ts: str | None = None,
    ) -> Ephemeral:
        """Show an ephemeral to ``user``; binds it to ``response_url`` when given."""
        eph = Ephemeral(
            channel=channel,
            user=user,
            text=text,
            blocks=with_ids(blocks or [], f"e{self._next()}."),
            message_ts=self.next_ts(),
            response_url=response_url,
            thread_ts=thread_ts,
        )
        self.ephemerals.append(eph)
        hook = self._hooks.get(response_url.rsplit("/", 1)[1]) if response_url else None
        if hook is not None and hook.ephemeral is None and hook.message is None:
            hook.ephemeral = eph
        return eph

    def view_json(self, view_id: str) -> Json:
        return self.views[view_id].to_json(
            team_id=self.team_id, app_id=self.app_id, bot_id=self.bot_id
        )

    def close_view(self, view_id: str, *, whole_stack: bool = False) -> None:
        view = self.views[view_id]
        view.closed = True
        if whole_stack:
            for other in self.views.values():
                if other.root_view_id == view.root_view_id:
                    other.closed = True

    def replace_view(self, view_id: str, definition: Json, method: str) -> View:
        """Swap a view's definition (views.update or response_action "update")."""
        view = self.views[view_id]
        definition = copy.deepcopy(definition)
        definition["blocks"] = with_ids(definition.get("blocks", []), f"{view.id}.")
        old = view.state_values
        view.state_values = {
            bid: old.get(bid, acts) if old.get(bid, {}).keys() == acts.keys() else acts
            for bid, acts in initial_state(definition["blocks"]).items()
        }
        view.view, view.hash, view.errors = definition, self._hash(), None
        view.history.append((method, definition))
        return view

    def open_stack(self, user: str | None) -> list[View]:
        """The user's open modals, root first."""
        modals = [v for v in self.views.values() if v.type == "modal" and not v.closed]
        top = next((v for v in reversed(modals) if v.user == user), None)
        return [v for v in modals if top and v.root_view_id == top.root_view_id]

    def push_view(self, definition: Json, *, user: str | None, method: str) -> View:
        """Open a view: a new root, or (views.push) on top of the user's open modals."""
        stack = self.open_stack(user) if method == "views.push" else []
        if len(stack) >= MODAL_STACK_MAX:
            raise SlackError("push_limit_reached")
        top = stack[-1] if stack else None
        view_id = f"V0{self._next():08d}"
        view = View(
            id=view_id,
            type=str(definition.get("type", "modal")),
            view={},
            hash="",
            user=user,
            root_view_id=top.root_view_id if top else view_id,
            previous_view_id=top.id if top else None,
            external_id=definition.get("external_id"),
        )
        self.views[view_id] = view
        self.replace_view(view_id, definition, method)
        return view

    def _hash(self) -> str:
        return f"{int(self.now())}.h{self._next():07d}"

    # ------------------------------------------------------------ HTTP

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        args = await slack_api.read_args(request)
        token = args.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth.removeprefix("Bearer ")
        call = SlackCall(method, args)
        self.calls.append(call)
        fault = self._take_fault(method, args)
        if fault is None:
            return web.json_response(self._call(method, token, args, call))
        call.fault = fault
        result = self._call(method, token, args, call) if fault.handled else None
        if fault.hang and await self._hang(fault.hang):
            return self._drop(request, call)
        if fault.answers_normally:
            if result is None:
                result = self._call(method, token, args, call)
            return web.json_response(result)
        if fault.drop:
            return self._drop(request, call)
        call.ok, call.status = False, fault.status
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        if fault.plain_text is not None:
            call.error = f"http_{fault.status}"
            return web.Response(status=fault.status, text=fault.plain_text, headers=headers)
        call.error = fault.error
        body = {"ok": False, "error": fault.error}
        return web.json_response(body, status=fault.status, headers=headers)

    def _call(self, method: str, token: str | None, args: Json, call: SlackCall) -> Json:
        """Run the method as Slack would; records and returns its answer body."""
        try:
            if not token:
                raise SlackError("not_authed")
            if token != self.token:
                raise SlackError("invalid_auth")
            handler = self._methods.get(method)
            if handler is None:
                raise SlackError("unknown_method", req_method=method)
            result: Json = {"ok": True, **handler(self, args, call)}
        except SlackError as exc:
            call.ok, call.error = False, exc.error
            result = {"ok": False, "error": exc.error, **exc.extra}
        if call.warnings:
            result["warning"] = ",".join(call.warnings)
            result.setdefault("response_metadata", {})["warnings"] = list(call.warnings)
        call.result = result
        return result

    async def _hang(self, seconds: float) -> bool:
        """Wait ``seconds``; True when ``close()`` ended the wait early."""
        if self._closing is None:
            self._closing = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _drop(request: web.Request, call: SlackCall) -> web.Response:
        """Close the connection without answering; aiohttp then sends nothing."""
        call.ok, call.error, call.status = False, "connection_dropped", 0
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=499)

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.files.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="file_not_found")
        upload.content = await request.read()
        return web.Response(text=f"OK - {len(upload.content)}")

    def add_file(self, filename: str, content: bytes, *, user: str = "U0MARIA") -> Json:
        """A file a person uploaded (to a form's file input, say); the file object Slack
        hands the app, whose `url_private_download` needs the bot token."""
        file_id = f"F0{self._next():08d}"
        upload = UploadedFile(file_id, filename, len(content), content=content, completed=True)
        self.files[file_id] = upload
        found = slack_api.file_json(self, upload)
        return {**found, "user": user, "url_private_download": found["url_private"]}

    async def _download(self, request: web.Request) -> web.Response:
        """Files are private: only a request with the bot token gets the bytes."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=403, text="not_authed")
        upload = self.files.get(request.match_info["file_id"])
        if upload is None or upload.content is None:
            return web.Response(status=404, text="file_not_found")
        return web.Response(body=upload.content, content_type="application/octet-stream")

    async def _response(self, request: web.Request) -> web.Response:
        return await slack_api.serve_response(self, request)


def _toggle(group: set[str], item: str, present: bool) -> None:
    if present:
        group.add(item)
    else:
        group.discard(item)
