"""What the fake Slack holds and shows: its records, Block Kit checks, and plain-text rendering."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View as SdkView

Json = dict[str, Any]

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
DIVIDER = "─" * 40

# Element type -> the key Slack uses for its value in state.values and in block_actions.
_VALUE_KEYS = {
    "plain_text_input": "value",
    "number_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "rich_text_input": "rich_text_value",
    "static_select": "selected_option",
    "external_select": "selected_option",
    "radio_buttons": "selected_option",
    "overflow": "selected_option",
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
    "datetimepicker": "selected_date_time",
}
_INITIAL_KEYS = {
    "value": "initial_value",
    "selected_option": "initial_option",
    "selected_options": "initial_options",
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
    "selected_date_time": "initial_date_time",
    "rich_text_value": "initial_value",
}


@dataclass
class Fault:
    """How FakeSlack misbehaves for the Web API calls it matches; see ``FakeSlack.fault``.

    ``times`` counts the matches still to come (None: every match until cleared) and ``hits``
    the calls it has already affected.
    """

    method: str
    error: str | None = "ratelimited"
    status: int = 429
    retry_after: int | None = 1
    plain_text: str | None = None
    drop: bool = False
    hang: float = 0.0
    handled: bool = False
    channel: str | None = None
    times: int | None = 1
    hits: int = 0

    def matches(self, method: str, args: Mapping[str, Any]) -> bool:
        """Whether a call of ``method`` with ``args`` is one this fault affects."""
        if method != self.method:
            return False
        return self.channel is None or self.channel in (args.get("channel"), args.get("channel_id"))

    @property
    def answers_normally(self) -> bool:
        """No error answer, no plain text, no drop: only a delay (``hang``) before the answer."""
        return self.error is None and self.plain_text is None and not self.drop


@dataclass
class SlackCall:
    """One Web API call as the fake received it.

    ``at`` is when it arrived (``time.monotonic()``). ``status`` is the HTTP status answered (0
    when the connection was dropped instead). ``result`` is the body the method itself produced,
    kept even when a fault replaced the answer (``fault``); ``ok``/``error`` describe what the
    client got.
    """

    method: str
    args: Json
    ok: bool = True
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)
    status: int = 200
    fault: Fault | None = None
    result: Json | None = None


@dataclass
class Message:
    """A channel message (top level or thread reply)."""

    channel: str
    ts: str
    user: str
    text: str
    blocks: list[Json] = field(default_factory=list)
    thread_ts: str | None = None
    bot_id: str | None = None
    edits: int = 0
    files: list[Json] = field(default_factory=list)
    metadata: Json | None = None

    def to_json(self, *, include_metadata: bool = True) -> Json:
        data: Json = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.bot_id:
            data["bot_id"] = self.bot_id
        if self.blocks:
            data["blocks"] = copy.deepcopy(self.blocks)
        if self.thread_ts:
            data["thread_ts"] = self.thread_ts
        if self.files:
            data["files"] = copy.deepcopy(self.files)
        if self.metadata and include_metadata:
            data["metadata"] = copy.deepcopy(self.metadata)
        if self.edits:
            data["edited"] = {"user": self.user, "ts": self.ts}
        return data


@dataclass
class Ephemeral:
    """An ephemeral message as its one viewer sees it."""

    channel: str
    user: str
    text: str
    blocks: list[Json]
    message_ts: str
    response_url: str | None = None
    thread_ts: str | None = None
    replaced: int = 0
    deleted: bool = False


@dataclass
class View:
    """A modal or home tab; ``view`` is the latest definition the bot sent."""

    id: str
    type: str
    view: Json
    hash: str
    user: str | None
    root_view_id: str
    previous_view_id: str | None = None
    external_id: str | None = None
    state_values: dict[str, Json] = field(default_factory=dict)
    closed: bool = False
    errors: dict[str, str] | None = None
    history: list[tuple[str, Json]] = field(default_factory=list)

    @property
    def callback_id(self) -> str:
        return str(self.view.get("callback_id", ""))

    @property
    def private_metadata(self) -> str:
        return str(self.view.get("private_metadata", ""))

    @property
    def blocks(self) -> list[Json]:
        return list(self.view.get("blocks", []))

    def to_json(self, *, team_id: str, app_id: str, bot_id: str) -> Json:
        data: Json = {"private_metadata": "", "callback_id": "", "external_id": ""}
        data.update(copy.deepcopy(self.view))
        data.update(
            id=self.id,
            team_id=team_id,
            hash=self.hash,
            state={"values": copy.deepcopy(self.state_values)},
            root_view_id=self.root_view_id,
            previous_view_id=self.previous_view_id,
            app_id=app_id,
            app_installed_team_id=team_id,
            bot_id=bot_id,
        )
        return data


@dataclass
class UploadedFile:
    """A file going through files.getUploadURLExternal → upload → completeUploadExternal."""

    id: str
    filename: str
    length: int
    alt_txt: str | None = None
    title: str | None = None
    content: bytes | None = None
    completed: bool = False


class InvalidBlocks(Exception):
    """Blocks or a view that Slack would refuse with ``invalid_blocks``."""


def validate_blocks(blocks: Any, *, limit: int = MESSAGE_BLOCKS_MAX) -> list[dict[str, Any]]:
    """Check blocks as Slack does (count, known types, slack_sdk model rules)."""
    if not isinstance(blocks, list):
        raise InvalidBlocks("blocks must be an array")
    if len(blocks) > limit:
        raise InvalidBlocks(f"no more than {limit} items allowed [json-pointer:/blocks]")
    for i, raw in enumerate(blocks):
        if not isinstance(raw, dict):
            raise InvalidBlocks(f"expected an object [json-pointer:/blocks/{i}]")
        try:
            parsed = Block.parse(raw)
            if parsed is None:
                raise InvalidBlocks(
                    f"unsupported type: {raw.get('type')} [json-pointer:/blocks/{i}]"
                )
            parsed.to_dict()
        except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InvalidBlocks(f"{exc} [json-pointer:/blocks/{i}]") from exc
    return blocks


def validate_view(view: Any) -> dict[str, Any]:
    """Check a modal or home view as Slack does."""
    if not isinstance(view, dict):
        raise InvalidBlocks("view must be an object")
    validate_blocks(view.get("blocks", []), limit=VIEW_BLOCKS_MAX)
    try:
        SdkView(**view).to_dict()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidBlocks(str(exc)) from exc
    return view


def with_ids(blocks: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Copy blocks, filling block_id/action_id where missing, as Slack does on storing them."""
    out = copy.deepcopy(blocks)
    for i, block in enumerate(out):
        block.setdefault("block_id", f"{prefix}{i}")
        for j, element in enumerate(block_elements(block)):
            if element.get("type") in _VALUE_KEYS or element.get("type") == "button":
                element.setdefault("action_id", f"{block['block_id']}-{j}")
    return out


def block_elements(block: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Interactive elements of one block (actions, accessory, input element)."""
    found: list[dict[str, Any]] = []
    if block.get("type") == "actions":
        found.extend(e for e in block.get("elements", []) if isinstance(e, dict))
    for key in ("accessory", "element"):
        if isinstance(block.get(key), dict):
            found.append(block[key])
    return found


def value_key(element_type: str) -> str | None:
    """The state/action key carrying this element type's value."""
    return _VALUE_KEYS.get(element_type)


def initial_state(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """state.values for a view's input blocks from their initial values."""
    values: dict[str, dict[str, Any]] = {}
    for block in blocks:
        element = block.get("element")
        if block.get("type") != "input" or not isinstance(element, dict):
            continue
        etype = str(element.get("type", ""))
        state: dict[str, Any] = {"type": etype}
        key = value_key(etype)
        if key is not None:
            default: Any = [] if key.endswith("s") else None
            state[key] = copy.deepcopy(element.get(_INITIAL_KEYS[key], default))
        values[block["block_id"]] = {element["action_id"]: state}
    return values


# ---------------------------------------------------------------- rendering

_TOKEN = re.compile(r"<([^<>]*)>")
_DATE_TOKEN = re.compile(r"\{(\w+)\}")
Names = Callable[[str], str]

# The sandbox's reader has Slack set to UTC and a 24-hour clock: `<!date^…>` tokens show in
# UTC, as the times beside each message ("[14:05] thunderbot:") do.
READER_TIMEZONE = UTC


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _relative_day(moment: datetime, today: datetime) -> str:
    """'today', 'yesterday' or 'tomorrow' when ``moment`` falls on one of them, else ''."""
    days = (moment.date() - today.date()).days
    return {-1: "yesterday", 0: "today", 1: "tomorrow"}.get(days, "")


def _ago(seconds: float) -> str:
    """A distance in time as Slack's ``{ago}`` words it: "3 minutes ago", "in 2 hours"."""
    span = abs(seconds)
    steps = (
        (45, "a few seconds", None, 1),
        (90, "a minute", None, 60),
        (45 * 60, "", "minutes", 60),
        (90 * 60, "an hour", None, 3600),
        (22 * 3600, "", "hours", 3600),
        (36 * 3600, "a day", None, 86400),
        (26 * 86400, "", "days", 86400),
        (45 * 86400, "a month", None, 30 * 86400),
        (320 * 86400, "", "months", 30 * 86400),
        (548 * 86400, "a year", None, 365 * 86400),
    )
    words = f"{round(span / (365 * 86400))} years"
    for limit, single, plural, unit in steps:
        if span < limit:
            words = single or f"{max(2, round(span / unit))} {plural}"
            break
    return f"{words} ago" if seconds >= 0 else f"in {words}"


def format_date(timestamp: float, template: str, *, now: float | None = None) -> str | None:
    """What Slack shows for ``<!date^timestamp^template|fallback>``, in the reader's time zone
    (UTC in the sandbox); None when the template has a token Slack does not know, in which
    case Slack shows the fallback.

    Tokens: ``{date_num}`` 2026-12-01, ``{date_slash}`` 01/12/2026, ``{date}`` December 1st,
    2026, ``{date_short}`` Dec 1, 2026, ``{date_long}`` Tuesday, December 1st, 2026,
    ``{date_long_full}`` December 1, 2026; ``{date_pretty}``, ``{date_short_pretty}`` and
    ``{date_long_pretty}`` say today, yesterday or tomorrow when they apply (capitalised at the
    start of the text); ``{day_divider_pretty}`` does too, else the long date, without the year
    in the current year; ``{time}`` 14:05 and ``{time_secs}`` 14:05:09 on the reader's 24-hour
    clock; ``{ago}`` "3 minutes ago". ``now`` (default: the wall clock) decides what today is.
    """
    try:
        moment = datetime.fromtimestamp(timestamp, READER_TIMEZONE)
    except (OverflowError, OSError, ValueError):
        return None
    current = time.time() if now is None else now
    today = datetime.fromtimestamp(current, READER_TIMEZONE)
    month, day, year = f"{moment:%B}", moment.day, moment.year
    long_date = f"{moment:%A}, {month} {_ordinal(day)}, {year}"
    plain = {
        "date_num": f"{moment:%Y-%m-%d}",
        "date_slash": f"{moment:%d/%m/%Y}",
        "date": f"{month} {_ordinal(day)}, {year}",
        "date_short": f"{moment:%b} {day}, {year}",
        "date_long": long_date,
        "date_long_full": f"{month} {day}, {year}",
        "time": f"{moment:%H:%M}",
        "time_secs": f"{moment:%H:%M:%S}",
        "ago": _ago(current - timestamp),
    }
    relative = _relative_day(moment, today)
    this_year = long_date.removesuffix(f", {year}") if year == today.year else long_date
    pretty = {
        "date_pretty": relative or plain["date"],
        "date_short_pretty": relative or plain["date_short"],
        "date_long_pretty": relative or plain["date_long"],
        "day_divider_pretty": relative or this_year,
    }
    if any(name not in plain and name not in pretty for name in _DATE_TOKEN.findall(template)):
        return None

    def token(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in plain:
            return plain[name]
        shown = pretty[name]
        return shown.capitalize() if relative and match.start() == 0 else shown

    return _DATE_TOKEN.sub(token, template)


def _date(target: str, fallback: str, now: float | None) -> str:
    """``!date^timestamp^template[^link]`` as Slack shows it, else its fallback."""
    parts = target.split("^")
    if len(parts) < 3:
        return fallback
    try:
        timestamp = float(parts[1])
    except ValueError:
        return fallback
    shown = format_date(timestamp, parts[2], now=now)
    return fallback if shown is None else shown


def clean_mrkdwn(text: str, names: Names, *, now: float | None = None) -> str:
    """Turn Slack markup into what a person reads; ``names`` maps user/channel ids to names,
    ``now`` is the reader's time for ``<!date^…>`` tokens that say "today" (default: the
    wall clock)."""

    def token(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or names(target[1:]))
        if target.startswith("#"):
            return "#" + (label or names(target[1:]))
        if target.startswith("!date^"):
            return _date(target, label, now)
        if target.startswith("!"):
            if label:
                return label
            return "@" + target[1:].split("^")[0]
        return label or target

    text = _TOKEN.sub(token, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _text(obj: Any, names: Names, now: float | None) -> str:
    if isinstance(obj, str):
        return clean_mrkdwn(obj, names, now=now)
    if not isinstance(obj, Mapping):
        return ""
    raw = str(obj.get("text", ""))
    return clean_mrkdwn(raw, names, now=now) if obj.get("type") == "mrkdwn" else raw


def _element(element: Mapping[str, Any], names: Names, now: float | None) -> str:
    etype = element.get("type")
    if etype == "button":
        return f"[ {_text(element.get('text'), names, now)} ]"
    if etype == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if etype in ("mrkdwn", "plain_text"):
        return _text(element, names, now)
    if etype == "overflow":
        return "[ ⋯ ]"
    shown = element.get("initial_option") or {}
    label = _text(shown.get("text"), names, now) or _text(element.get("placeholder"), names, now)
    return f"[ {label or etype} ▾ ]"


def _rich_text(node: Any, names: Names, now: float | None) -> str:
    if isinstance(node, list):
        return "".join(_rich_text(n, names, now) for n in node)
    if not isinstance(node, Mapping):
        return ""
    kind = node.get("type")
    if kind == "text":
        return str(node.get("text", ""))
    if kind == "link":
        return str(node.get("text") or node.get("url", ""))
    if kind == "user":
        return "@" + names(str(node.get("user_id", "")))
    if kind == "channel":
        return "#" + names(str(node.get("channel_id", "")))
    if kind == "emoji":
        return f":{node.get('name', '')}:"
    if kind == "date":
        target = f"!date^{node.get('timestamp', '')}^{node.get('format', '')}"
        return _date(target, str(node.get("fallback", "")), now)
    separator = "\n" if kind == "rich_text_list" else ""
    return separator.join(_rich_text(n, names, now) for n in node.get("elements", []))


def render_block(block: Mapping[str, Any], names: Names, *, now: float | None = None) -> list[str]:
    """One block as the lines a person sees (``now`` as for ``clean_mrkdwn``)."""
    kind = block.get("type")
    lines: list[str] = []
    if kind in ("header", "markdown"):
        lines.append(_text(block.get("text"), names, now))
    elif kind == "section":
        if block.get("text"):
            lines.append(_text(block["text"], names, now))
        lines.extend(_text(f, names, now) for f in block.get("fields", []))
        if isinstance(block.get("accessory"), Mapping):
            lines.append(_element(block["accessory"], names, now))
    elif kind == "context" or kind == "actions":
        lines.append("  ".join(_element(e, names, now) for e in block.get("elements", [])))
    elif kind == "divider":
        lines.append(DIVIDER)
    elif kind == "image":
        lines.append(f"[image: {block.get('alt_text', '')}]")
    elif kind == "rich_text":
        lines.append(_rich_text(block.get("elements", []), names, now))
    elif kind == "input":
        label = _text(block.get("label"), names, now)
        lines.append(f"{label}: {_element(block['element'], names, now)}")
    else:
        lines.append(f"[{kind}]")
    return [line for chunk in lines for line in chunk.split("\n")]


def render_body(
    text: str,
    blocks: list[dict[str, Any]],
    files: list[dict[str, Any]],
    names: Names,
    *,
    now: float | None = None,
) -> list[str]:
    """A message body: its blocks, else its text, then any attached files."""
    lines: list[str] = []
    if blocks:
        for block in blocks:
            lines.extend(render_block(block, names, now=now))
    elif text:
        lines.extend(clean_mrkdwn(text, names, now=now).split("\n"))
    lines.extend(f"[file: {f.get('title') or f.get('name', '')}]" for f in files)
    return lines


def message_time(ts: str) -> str:
    """The time Slack shows beside a message: its ``ts`` on the reader's clock."""
    return datetime.fromtimestamp(float(ts), READER_TIMEZONE).strftime("%H:%M")


def _author_line(ts: str, author: str, suffix: str = "") -> str:
    return f"[{message_time(ts)}] {author}:{suffix}"


def _message_lines(m: Message, names: Names, bot_name: str, now: float | None) -> list[str]:
    author = bot_name if m.bot_id else names(m.user)
    head = _author_line(m.ts, author, " (edited)" if m.edits else "")
    return [head, *render_body(m.text, m.blocks, m.files, names, now=now)]


def render_channel(
    name: str,
    messages: list[Message],
    names: Names,
    bot_name: str,
    *,
    now: float | None = None,
) -> str:
    """A channel with replies indented under their parents, as a person reads it."""
    lines = [f"#{name}"]
    tops = {m.ts for m in messages if not m.thread_ts or m.thread_ts == m.ts}
    for m in messages:
        if m.thread_ts in tops and m.thread_ts != m.ts:
            continue
        lines += ["", *_message_lines(m, names, bot_name, now)]
        for reply in messages:
            if reply.thread_ts == m.ts and reply.ts != m.ts:
                lines += [f"  │ {line}" for line in _message_lines(reply, names, bot_name, now)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_ephemerals(
    ephemerals: list[Ephemeral], names: Names, bot_name: str, *, now: float | None = None
) -> str:
    """Ephemeral messages as their viewer sees them."""
    lines: list[str] = []
    for e in ephemerals:
        head = _author_line(e.message_ts, bot_name, " (only visible to you)")
        lines += ["", head, *render_body(e.text, e.blocks, [], names, now=now)]
    return "\n".join(line.rstrip() for line in lines[1:]) + "\n"
