"""The Slack Web API methods and response_url requests that FakeSlack answers.

Each Web API method is a function of the FakeSlack state, the call's arguments and its
record; `METHODS` maps Slack's method names to them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import mimetypes
from collections.abc import Callable
from dataclasses import dataclass
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


def _channel(slack: FakeSlack, args: Json, key: str = "channel") -> str:
    channel = str(args.get(key) or "")
    if channel in slack.users:  # posting to a user id lands in the DM with them
        channel = "D" + channel[1:]
        slack.channels.setdefault(channel, slack.users[args[key]])
        slack.messages.setdefault(channel, [])
    if channel not in slack.channels:
        raise SlackError("channel_not_found")
    return channel


def _message(slack: FakeSlack, args: Json, key: str = "ts") -> Message:
    msg = slack.find_message(_channel(slack, args), str(args.get(key) or ""))
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


def chat_post_message(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    channel = _channel(slack, args)
    text, blocks = _content(slack, args, call)
    msg = slack.add_message(channel, text=text, blocks=blocks, thread_ts=args.get("thread_ts"))
    msg.metadata = args.get("metadata") if isinstance(args.get("metadata"), dict) else None
    return {"channel": channel, "ts": msg.ts, "message": msg.to_json()}


def chat_update(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    msg = _message(slack, args)
    if msg.bot_id != slack.bot_id:
        raise SlackError("cant_update_message")
    if "blocks" in args:
        msg.blocks = with_ids(_blocks(args["blocks"] or []), f"u{slack._next()}.")
    if "text" in args or "markdown_text" in args:
        msg.text = str(args.get("text") or args.get("markdown_text") or "")
    if not msg.text and not msg.blocks:
        raise SlackError("no_text")
    if msg.blocks and not msg.text:
        call.warnings.append("missing_text_fallback")
    if isinstance(args.get("metadata"), dict):
        msg.metadata = args["metadata"]
    msg.edits += 1
    return {"channel": msg.channel, "ts": msg.ts, "text": msg.text, "message": msg.to_json()}


def chat_delete(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    msg = _message(slack, args)
    if msg.bot_id != slack.bot_id:
        raise SlackError("cant_delete_message")
    slack.messages[msg.channel].remove(msg)
    return {"channel": msg.channel, "ts": msg.ts}


def chat_post_ephemeral(slack: FakeSlack, args: Json, call: SlackCall) -> Json:
    channel = _channel(slack, args)
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
    shared = [_channel(slack, args, "channel_id")] if args.get("channel_id") else []
    infos = []
    for entry, upload in zip(entries, uploads, strict=True):
        assert upload is not None
        upload.title, upload.completed = entry.get("title") or upload.filename, True
        infos.append(_file_json(slack, upload))
    for channel in shared:
        msg = slack.add_message(
            channel,
            text=str(args.get("initial_comment") or ""),
            thread_ts=args.get("thread_ts"),
        )
        msg.files = copy.deepcopy(infos)
    return {"files": infos}


def _file_json(slack: FakeSlack, upload: UploadedFile) -> Json:
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
    "files.getUploadURLExternal": files_get_upload_url,
    "files.completeUploadExternal": files_complete_upload,
}
