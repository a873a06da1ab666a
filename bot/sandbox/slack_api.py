"""The Slack Web API methods and response_url requests that FakeSlack answers.

Each Web API method is a function of the FakeSlack state, the call's arguments and its
record; `METHODS` maps Slack's method names to them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.sandbox.slack_render import (
    Ephemeral,
    InvalidBlocks,
    Json,
    Message,
    SlackCall,
    UploadedFile,
    View,
    validate_blocks,
    validate_view,
    with_ids,
)

if TYPE_CHECKING:
    from bot.sandbox.slack import FakeSlack

RESPONSE_URL_USES = 5
HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX = 100, 999
REPLIES_LIMIT_DEFAULT, REPLIES_LIMIT_MAX = 1000, 1000
# Form-encoded calls carry these as JSON strings; record them decoded.
_JSON_FIELDS = ("blocks", "attachments", "view", "files", "metadata")


@dataclass
class ResponseHook:
    """A response_url and the ephemeral or channel message it is bound to, if any."""

    url: str
    channel: str
    user: str
    ephemeral: Ephemeral | None = None
    message: Message | None = None
    uses: int = 0


class SlackError(Exception):
    """A Web API error answer: ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _blocks(raw: Any) -> list[Json]:
    try:
        return validate_blocks(raw)
    except InvalidBlocks as exc:
        raise SlackError("invalid_blocks", errors=[str(exc)]) from exc


async def read_args(request: web.Request) -> Json:
    """The arguments of a Web API call, from its query string and JSON or form body."""
    args: Json = dict(request.query)
    if request.method == "POST" and request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            args.update(body if isinstance(body, dict) else {})
        else:
            form = await request.post()
            args.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_FIELDS:
        value = args.get(key)
        if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
            with contextlib.suppress(ValueError):  # left as sent; the method rejects it
                args[key] = json.loads(value)
    return args


async def serve_response(slack: FakeSlack, request: web.Request) -> web.Response:
    """A POST to a response_url, as Slack applies it."""
    hook = slack._hooks.get(request.match_info["key"])
    if hook is None:
        return web.Response(status=404, text="invalid_url")
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return web.Response(status=400, text="invalid_payload")
    slack.calls.append(call := SlackCall("response_url", body))
    hook.uses += 1
    if hook.uses > RESPONSE_URL_USES:
        call.ok, call.error = False, "used_url"
        return web.Response(status=404, text="used_url")
    try:
        _apply_response(slack, hook, body)
    except SlackError as exc:
        call.ok, call.error = False, exc.error
        return web.Response(status=404 if exc.error.endswith("not_found") else 400, text=exc.error)
    return web.json_response({"ok": True})


def _apply_response(slack: FakeSlack, hook: ResponseHook, body: Json) -> None:
    if _flag(body.get("delete_original")):
        if hook.ephemeral is not None:
            hook.ephemeral.deleted = True
        elif hook.message is not None and hook.message in slack.messages[hook.channel]:
            slack.messages[hook.channel].remove(hook.message)
        else:
            raise SlackError("message_not_found")
        return
    text = str(body.get("text") or "")
    blocks = _blocks(body["blocks"]) if body.get("blocks") is not None else []
    if not text and not blocks:
        raise SlackError("no_text")
    target = hook.ephemeral or hook.message
    if _flag(body.get("replace_original")) and target is not None:
        target.text, target.blocks = text, with_ids(blocks, f"r{slack._next()}.")
        if isinstance(target, Ephemeral):
            target.replaced += 1
        else:
            target.edits += 1
    elif body.get("response_type") == "in_channel":
        slack.add_message(hook.channel, text=text, blocks=blocks, thread_ts=body.get("thread_ts"))
    else:
        slack.add_ephemeral(
            hook.channel,
            hook.user,
            text=text,
            blocks=blocks,
            response_url=hook.url,
            thread_ts=body.get("thread_ts"),
        )


def _channel(slack: FakeSlack, args: Json, key: str = "channel", *, write: bool = False) -> str:
    """The channel a call names, as the bot can see it.

    Unknown channels and private ones the bot is not in answer ``channel_not_found``; with
    ``write`` archived ones answer ``is_archived``. Public channels need no membership for
    writing (the app has ``chat:write.public``).
    """
    channel = str(args.get(key) or "")
    if channel in slack.users:  # posting to a user id lands in the DM with them
        channel = "D" + channel[1:]
        slack.channels.setdefault(channel, slack.users[args[key]])
        slack.messages.setdefault(channel, [])
        slack.members.setdefault(channel, {str(args[key])})
        slack.bot_channels.add(channel)
    if channel not in slack.channels or (
        channel in slack.private_channels and channel not in slack.bot_channels
    ):
        raise SlackError("channel_not_found")
    if write and channel in slack.archived_channels:
        raise SlackError("is_archived")
    return channel


def _readable_channel(slack: FakeSlack, args: Json) -> str:
    """A channel whose history the bot may read: it must be a member."""
    if str(args.get("channel") or "") in slack.users:  # reading needs the DM's id, not the user's
        raise SlackError("channel_not_found")
    channel = _channel(slack, args)
    if channel not in slack.bot_channels:
        raise SlackError("not_in_channel")
    return channel


def _message(slack: FakeSlack, args: Json, key: str = "ts", *, write: bool = False) -> Message:
    msg = slack.find_message(_channel(slack, args, write=write), str(args.get(key) or ""))
    if msg is None:
        raise SlackError("message_not_found")
    return msg


def _content(slack: FakeSlack, args: Json, call: SlackCall) -> tuple[str, list[Json]]:
    text = str(args.get("text") or args.get("markdown_text") or "")
    blocks = _blocks(args["blocks"]) if args.get("blocks") not in (None, "") else []
    if not text and not blocks:
        raise SlackError("no_text")
    if blocks and not text:
        call.warnings.append("missing_text_fallback")
    return text, blocks


def auth_test(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    return {
        "url": "https://sandbox.slack.com/",
        "team": slack.team_name,
        "user": slack.bot_name,
        "team_id": slack.team_id,
        "user_id": slack.bot_user_id,
        "bot_id": slack.bot_id,
        "is_enterprise_install": False,
    }


def _metadata(args: Json) -> Json | None:
    """Message metadata as Slack stores it: ``{event_type, event_payload}``."""
    raw = args.get("metadata")
    if raw is None or raw == "":
        return None
    if not isinstance(raw, dict):
        raise SlackError("invalid_metadata_format")
    event_type, payload = raw.get("event_type"), raw.get("event_payload")
    if not isinstance(event_type, str) or not event_type or not isinstance(payload, dict):
        raise SlackError("invalid_metadata_schema")
    return {"event_type": event_type, "event_payload": copy.deepcopy(payload)}


def chat_post_message(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    channel = _channel(slack, args, write=True)
    metadata = _metadata(args)
    text, blocks = _content(slack, args, call)
    msg = slack.add_message(channel, text=text, blocks=blocks, thread_ts=args.get("thread_ts"))
    msg.metadata = metadata
    return {"channel": channel, "ts": msg.ts, "message": msg.to_json()}


def chat_update(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    msg = _message(slack, args, write=True)
    if msg.bot_id != slack.bot_id:
        raise SlackError("cant_update_message")
    metadata = _metadata(args)
    if "blocks" in args:
        msg.blocks = with_ids(_blocks(args["blocks"] or []), f"u{slack._next()}.")
    if "text" in args or "markdown_text" in args:
        msg.text = str(args.get("text") or args.get("markdown_text") or "")
    if not msg.text and not msg.blocks:
        raise SlackError("no_text")
    if msg.blocks and not msg.text:
        call.warnings.append("missing_text_fallback")
    if metadata is not None:
        msg.metadata = metadata
    msg.edits += 1
    return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.to_json()}


def chat_delete(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    msg = _message(slack, args)  # Slack documents no is_archived for chat.delete
    if msg.bot_id != slack.bot_id:
        raise SlackError("cant_delete_message")
    slack.messages[msg.channel].remove(msg)
    return {"channel": msg.channel, "ts": msg.ts}


def chat_post_ephemeral(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    channel = _channel(slack, args, write=True)
    user = str(args.get("user") or "")
    if user not in slack.users:
        raise SlackError("user_not_in_channel")
    text, blocks = _content(slack, args, call)
    eph = slack.add_ephemeral(
        channel, user, text=text, blocks=blocks, thread_ts=args.get("thread_ts")
    )
    return {"message_ts": eph.message_ts}


def chat_get_permalink(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    msg = _message(slack, args, "message_ts")
    link = f"https://sandbox.slack.com/archives/{msg.channel}/p{msg.ts.replace('.', '')}"
    if msg.thread_ts and msg.thread_ts != msg.ts:
        link += f"?thread_ts={msg.thread_ts}&cid={msg.channel}"
    return {"channel": msg.channel, "permalink": link}


# ---------------------------------------------------------------- conversations


def _ts(value: Any, error: str) -> Decimal:
    try:
        ts = Decimal(str(value))
    except InvalidOperation as exc:
        raise SlackError(error) from exc
    if not ts.is_finite():
        raise SlackError(error)
    return ts


def _in_window(args: Json) -> Callable[[Message], bool]:
    """The oldest/latest/inclusive filter of a conversations.* call."""
    oldest = _ts(args.get("oldest") or "0", "invalid_ts_oldest")
    latest = _ts(args["latest"], "invalid_ts_latest") if args.get("latest") else None
    inclusive = _flag(args.get("inclusive"))

    def inside(msg: Message) -> bool:
        ts = Decimal(msg.ts)
        if inclusive:
            return oldest <= ts and (latest is None or ts <= latest)
        return oldest < ts and (latest is None or ts < latest)

    return inside


def _limit(args: Json, default: int, maximum: int) -> int:
    raw = args.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(str(raw))
    except ValueError as exc:
        raise SlackError("invalid_limit") from exc
    return default if limit <= 0 else min(limit, maximum)


def _cursor(ts: str) -> str:
    return base64.b64encode(f"next_ts:{ts.replace('.', '')}".encode()).decode()


def _cursor_digits(cursor: str, prefix: str) -> str:
    """The digits a cursor of ours carries after `prefix`; invalid_cursor for anything else."""
    try:
        decoded = base64.b64decode(cursor, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SlackError("invalid_cursor") from exc
    digits = decoded.removeprefix(prefix)
    if digits == decoded or not digits.isdigit():
        raise SlackError("invalid_cursor")
    return digits


def _cursor_ts(cursor: str) -> Decimal:
    digits = _cursor_digits(cursor, "next_ts:")
    if len(digits) <= 6:
        raise SlackError("invalid_cursor")
    return Decimal(f"{digits[:-6]}.{digits[-6:]}")


def _page(
    messages: list[Message], args: Json, *, newest_first: bool, default: int, maximum: int
) -> tuple[list[Message], Json]:
    """One page of ``messages`` (already ordered) from the call's cursor; and what to add to
    the answer: ``has_more`` and, when there is more, ``response_metadata.next_cursor``."""
    limit = _limit(args, default, maximum)
    if args.get("cursor"):
        at = _cursor_ts(str(args["cursor"]))
        messages = [
            m for m in messages if (Decimal(m.ts) <= at if newest_first else Decimal(m.ts) >= at)
        ]
    page, rest = messages[:limit], messages[limit:]
    if not rest:
        return page, {"has_more": False}
    return page, {"has_more": True, "response_metadata": {"next_cursor": _cursor(rest[0].ts)}}


def _listed(slack: FakeSlack, msg: Message, args: Json) -> Json:
    """A message as conversations.history/replies show it, thread fields included."""
    data = msg.to_json(include_metadata=_flag(args.get("include_all_metadata")))
    data["team"] = slack.team_id
    if msg.bot_id == slack.bot_id:
        data["app_id"] = slack.app_id
    replies = slack.thread(msg.channel, msg.ts)
    if replies:
        users = list(dict.fromkeys(r.user for r in replies))
        data.update(
            thread_ts=msg.ts,
            reply_count=len(replies),
            reply_users_count=len(users),
            reply_users=users,
            latest_reply=replies[-1].ts,
            is_locked=False,
            subscribed=False,
        )
    elif msg.thread_ts and msg.thread_ts != msg.ts:
        parent = slack.find_message(msg.channel, msg.thread_ts)
        if parent is not None:
            data["parent_user_id"] = parent.user
    return data


def _is_top_level(msg: Message) -> bool:
    return not msg.thread_ts or msg.thread_ts == msg.ts


def conversations_history(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    """Top-level messages (thread parents, not their replies), newest first."""
    channel = _readable_channel(slack, args)
    inside = _in_window(args)
    tops = [m for m in slack.messages.get(channel, []) if _is_top_level(m) and inside(m)]
    tops.sort(key=lambda m: Decimal(m.ts), reverse=True)
    page, more = _page(
        tops,
        args,
        newest_first=True,
        default=HISTORY_LIMIT_DEFAULT,
        maximum=HISTORY_LIMIT_MAX,
    )
    return {
        "messages": [_listed(slack, m, args) for m in page],
        **more,
        "pin_count": 0,
        "channel_actions_ts": None,
        "channel_actions_count": 0,
    }


def conversations_replies(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    """A thread oldest first: its parent (first page only), then the replies in the window.

    ``ts`` may name the parent or any reply of the thread.
    """
    channel = _readable_channel(slack, args)
    if not args.get("ts"):
        raise SlackError("invalid_arguments")
    msg = slack.find_message(channel, str(args["ts"]))
    if msg is None:
        raise SlackError("thread_not_found")
    parent = msg
    if msg.thread_ts and msg.thread_ts != msg.ts:
        parent = slack.find_message(channel, msg.thread_ts) or msg
    inside = _in_window(args)
    replies = [r for r in slack.thread(channel, parent.ts) if inside(r)]
    replies.sort(key=lambda m: Decimal(m.ts))
    page, more = _page(
        [parent, *replies],
        args,
        newest_first=False,
        default=REPLIES_LIMIT_DEFAULT,
        maximum=REPLIES_LIMIT_MAX,
    )
    return {"messages": [_listed(slack, m, args) for m in page], **more}


def _channel_json(slack: FakeSlack, channel: str) -> Json:
    name = slack.channels[channel]
    private = channel in slack.private_channels
    return {
        "id": channel,
        "name": name,
        "name_normalized": name,
        "is_channel": not private,
        "is_group": private,
        "is_im": channel.startswith("D"),
        "is_mpim": False,
        "is_private": private,
        "is_archived": channel in slack.archived_channels,
        "is_general": False,
        "is_shared": False,
        "is_member": channel in slack.bot_channels,
        "created": int(slack.now()),
    }


def conversations_join(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    """The bot joins a public channel (answering ``already_in_channel`` if it was in it)."""
    channel = str(args.get("channel") or "")
    if channel not in slack.channels or (
        channel in slack.private_channels and channel not in slack.bot_channels
    ):
        raise SlackError("channel_not_found")
    if channel in slack.private_channels or channel.startswith("D"):
        raise SlackError("method_not_supported_for_channel_type")
    if channel in slack.archived_channels:
        raise SlackError("is_archived")
    if channel in slack.bot_channels:
        call.warnings.append("already_in_channel")
    slack.bot_channels.add(channel)
    return {"channel": _channel_json(slack, channel)}


MEMBERS_LIMIT_DEFAULT, MEMBERS_LIMIT_MAX = 100, 1000


def _offset_cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _cursor_offset(cursor: str) -> int:
    return int(_cursor_digits(cursor, "offset:"))


def conversations_members(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    """The people in a channel the bot can see (the bot too, where it is a member), a page
    at a time: ``limit`` (default 100, at most 1000) and ``cursor``."""
    if str(args.get("channel") or "") in slack.users:  # a DM is named by its own id
        raise SlackError("channel_not_found")
    channel = _channel(slack, args)
    people = sorted(slack.members.get(channel, set()))
    if channel in slack.bot_channels:
        people.append(slack.bot_user_id)
    limit = _limit(args, MEMBERS_LIMIT_DEFAULT, MEMBERS_LIMIT_MAX)
    start = _cursor_offset(str(args["cursor"])) if args.get("cursor") else 0
    page = people[start : start + limit]
    more = start + limit < len(people)
    return {
        "members": page,
        "response_metadata": {"next_cursor": _offset_cursor(start + limit) if more else ""},
    }


def usergroups_users_list(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    """The members of a user group, by its id (``S…``)."""
    group = slack.usergroups.get(str(args.get("usergroup") or ""))
    if group is None:
        raise SlackError("no_such_subteam")
    return {"users": list(group.users)}


def users_info(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    user = str(args.get("user") or "")
    name = slack.bot_name if user == slack.bot_user_id else slack.users.get(user)
    if name is None:
        raise SlackError("user_not_found")
    profile = {"display_name": name, "real_name": name.title()}
    return {
        "user": {
            "id": user,
            "team_id": slack.team_id,
            "name": name,
            "real_name": name.title(),
            "tz": "UTC",
            "tz_offset": 0,
            "is_bot": user == slack.bot_user_id,
            "deleted": False,
            "profile": profile,
        }
    }


def _view_definition(slack: FakeSlack, args: Json) -> Json:
    try:
        return validate_view(args.get("view"))
    except InvalidBlocks as exc:
        raise SlackError("invalid_blocks", errors=[str(exc)]) from exc


def _take_trigger(slack: FakeSlack, args: Json) -> str | None:
    trigger = str(args.get("trigger_id") or "")
    if trigger not in slack._triggers:
        raise SlackError("expired_trigger_id")
    if slack._triggers[trigger]:
        raise SlackError("exchanged_trigger_id")
    slack._triggers[trigger] = True
    return slack._trigger_users[trigger]


def _view_result(slack: FakeSlack, view: View) -> Json:
    return {"view": slack.view_json(view.id)}


def views_open(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    definition = _view_definition(slack, args)
    return _view_result(
        slack, slack.push_view(definition, user=_take_trigger(slack, args), method="views.open")
    )


def views_push(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    definition = _view_definition(slack, args)
    return _view_result(
        slack, slack.push_view(definition, user=_take_trigger(slack, args), method="views.push")
    )


def views_update(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    external = args.get("external_id")
    view = slack.views.get(str(args.get("view_id") or "")) or next(
        (v for v in slack.views.values() if external and v.external_id == external), None
    )
    if view is None or view.closed:
        raise SlackError("not_found")
    if args.get("hash") and args["hash"] != view.hash:
        raise SlackError("hash_conflict")
    return _view_result(
        slack, slack.replace_view(view.id, _view_definition(slack, args), "views.update")
    )


def views_publish(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    user = str(args.get("user_id") or "")
    if user not in slack.users:
        raise SlackError("user_not_found")
    definition = _view_definition(slack, args)
    if definition.get("type") != "home":
        raise SlackError("invalid_arguments", errors=["view type must be home"])
    home = next((v for v in slack.views.values() if v.type == "home" and v.user == user), None)
    if home is None:
        return _view_result(slack, slack.push_view(definition, user=user, method="views.publish"))
    if args.get("hash") and args["hash"] != home.hash:
        raise SlackError("hash_conflict")
    return _view_result(slack, slack.replace_view(home.id, definition, "views.publish"))


def files_get_upload_url(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    filename, length = str(args.get("filename") or ""), str(args.get("length") or "")
    if not filename or not length.isdigit():
        raise SlackError("invalid_arguments")
    file_id = f"F0{slack._next():08d}"
    slack.files[file_id] = UploadedFile(file_id, filename, int(length), args.get("alt_txt"))
    return {"upload_url": f"{slack.base_url}/upload/{file_id}", "file_id": file_id}


def files_complete_upload(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    entries = args.get("files")
    if not isinstance(entries, list) or not entries:
        raise SlackError("invalid_arguments")
    uploads = [slack.files.get(str(e.get("id"))) for e in entries]
    if any(u is None or u.content is None for u in uploads):
        raise SlackError("file_not_found")
    shared = [_channel(slack, args, "channel_id", write=True)] if args.get("channel_id") else []
    infos = []
    for entry, upload in zip(entries, uploads, strict=True):
        assert upload is not None
        upload.title, upload.completed = entry.get("title") or upload.filename, True
        infos.append(file_json(slack, upload))
    for channel in shared:
        msg = slack.add_message(
            channel,
            text=str(args.get("initial_comment") or ""),
            thread_ts=args.get("thread_ts"),
        )
        msg.files = copy.deepcopy(infos)
    return {"files": infos}


def file_json(slack: FakeSlack, upload: UploadedFile) -> Json:
    mimetype = mimetypes.guess_type(upload.filename)[0] or "application/octet-stream"
    return {
        "id": upload.id,
        "name": upload.filename,
        "title": upload.title,
        "mimetype": mimetype,
        "size": len(upload.content or b""),
        "user": slack.bot_user_id,
        "alt_txt": upload.alt_txt,
        "url_private": f"{slack.base_url}/files/{upload.id}/{upload.filename}",
        "permalink": f"https://sandbox.slack.com/files/{slack.bot_user_id}/{upload.id}/{upload.filename}",
    }


METHODS: dict[str, Callable[[FakeSlack, Json, SlackCall], Json]] = {
    "auth.test": auth_test,
    "chat.postMessage": chat_post_message,
    "chat.update": chat_update,
    "chat.delete": chat_delete,
    "chat.postEphemeral": chat_post_ephemeral,
    "chat.getPermalink": chat_get_permalink,
    "views.open": views_open,
    "views.update": views_update,
    "views.push": views_push,
    "views.publish": views_publish,
    "users.info": users_info,
    "conversations.history": conversations_history,
    "conversations.replies": conversations_replies,
    "conversations.join": conversations_join,
    "conversations.members": conversations_members,
    "usergroups.users.list": usergroups_users_list,
    "files.getUploadURLExternal": files_get_upload_url,
    "files.completeUploadExternal": files_complete_upload,
}
