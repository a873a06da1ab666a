"""A person in Slack, as the bot's request URL sees them: signed commands, clicks and events."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.slack import Ephemeral, FakeSlack, Message
from bot.sandbox.slack_render import (
    InvalidBlocks,
    Json,
    block_elements,
    validate_blocks,
    validate_view,
    value_key,
)

VERIFICATION_TOKEN = "sandbox-verification-token"  # deprecated by Slack but still sent


@dataclass
class SlashReply:
    """What Slack showed for a slash command: the bot's immediate answer."""

    status: int
    body_text: str
    ephemeral: Ephemeral | None
    response_url: str
    message: Message | None = None  # set when the bot answered in_channel


def _ack_content(body: str, where: str) -> tuple[str, list[Json], Json]:
    """Text, blocks and the whole answer of a non-empty ack body, checked as Slack checks it."""
    data: Json = {"text": body}
    if body.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            data = json.loads(body)
    blocks: list[Json] = data.get("blocks") or []
    try:
        validate_blocks(blocks)
    except InvalidBlocks as exc:
        raise AssertionError(f"Slack would reject the {where} answer: {exc}") from exc
    return str(data.get("text") or ""), blocks, data


def _find_element(blocks: list[Json], action_id: str) -> tuple[str, Json]:
    for block in blocks:
        for element in block_elements(block):
            if element.get("action_id") == action_id:
                return str(block.get("block_id", "")), element
    available = [e.get("action_id") for b in blocks for e in block_elements(b)]
    raise AssertionError(f"no element with action_id {action_id!r}; available: {available}")


def _plain(text: str) -> Json:
    return {"type": "plain_text", "text": text, "emoji": True}


def _action(block_id: str, element: Json, value: str | None, action_ts: str) -> Json:
    """One entry of block_actions' ``actions``, shaped per element type as Slack sends it."""
    etype = str(element.get("type"))
    action: Json = {
        "action_id": element["action_id"],
        "block_id": block_id,
        "type": etype,
        "action_ts": action_ts,
    }
    if etype == "button":
        action["text"] = element.get("text")
        chosen = value if value is not None else element.get("value")
        if chosen is not None:
            action["value"] = chosen
        if "style" in element:
            action["style"] = element["style"]
        return action
    key = value_key(etype)
    options = list(element.get("options", []))
    options += [o for group in element.get("option_groups", []) for o in group.get("options", [])]
    if key in ("selected_option", "selected_options"):
        picked = [o for o in options if o.get("value") == value] if value is not None else []
        if value is not None and not picked:
            if options:
                values = [o.get("value") for o in options]
                raise AssertionError(f"no option {value!r} in {element['action_id']}: {values}")
            picked = [{"text": _plain(value), "value": value}]  # external options
        initial = element.get("initial_option")
        if key == "selected_option":
            action[key] = picked[0] if picked else initial
        else:
            action[key] = picked or element.get("initial_options", [])
    elif key is not None:
        action[key] = value
    if "placeholder" in element:
        action["placeholder"] = element["placeholder"]
    return action


class SlackUser:
    """Delivers one person's actions to the bot over HTTP, signed as Slack signs them."""

    def __init__(
        self,
        *,
        fake: FakeSlack,
        events_url: str,
        signing_secret: str,
        user_id: str = "U0MARIA",
        channel_id: str = "C0QA",
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.fake = fake
        self.events_url = events_url
        self.user_id = user_id
        self.channel_id = channel_id
        self._verifier = SignatureVerifier(signing_secret)
        self._session = session
        self._owns_session = session is None
        self._events = 0

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SlackUser:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def name(self) -> str:
        return self.fake.users.get(self.user_id, self.user_id)

    def _user(self) -> Json:
        team = self.fake.team_id
        return {"id": self.user_id, "username": self.name, "name": self.name, "team_id": team}

    def _team(self) -> Json:
        return {"id": self.fake.team_id, "domain": "sandbox"}

    def _interaction(self, kind: str) -> Json:
        return {
            "type": kind,
            "user": self._user(),
            "api_app_id": self.fake.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": self.fake.new_trigger_id(self.user_id),
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }

    # ------------------------------------------------------------ transport

    async def send_raw(
        self,
        body: str,
        *,
        content_type: str,
        headers: Mapping[str, str] | None = None,
        sign: bool = True,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> tuple[int, str]:
        """POST a body to the bot; signs it unless told otherwise. Returns (status, body)."""
        stamp = str(timestamp if timestamp is not None else int(time.time()))
        sent = {"Content-Type": content_type}
        if sign or signature is not None:
            sent["X-Slack-Request-Timestamp"] = stamp
            expected = self._verifier.generate_signature(timestamp=stamp, body=body)
            sent["X-Slack-Signature"] = signature or str(expected)
        sent.update(headers or {})
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.post(self.events_url, data=body.encode(), headers=sent) as resp:
            return resp.status, await resp.text()

    async def _send_payload(self, payload: Json) -> tuple[int, str]:
        body = "payload=" + quote(json.dumps(payload))
        return await self.send_raw(body, content_type="application/x-www-form-urlencoded")

    # ------------------------------------------------------------ what a person does

    async def slash(self, text: str, *, command: str = "/testcall") -> SlashReply:
        """Type ``command text`` in the channel; what the bot answers at once is shown."""
        fake = self.fake
        url = fake.new_response_url(channel=self.channel_id, user=self.user_id)
        form = {
            "token": VERIFICATION_TOKEN,
            "team_id": fake.team_id,
            "team_domain": "sandbox",
            "channel_id": self.channel_id,
            "channel_name": fake.channels.get(self.channel_id, self.channel_id),
            "user_id": self.user_id,
            "user_name": self.name,
            "command": command,
            "text": text,
            "api_app_id": fake.app_id,
            "is_enterprise_install": "false",
            "response_url": url,
            "trigger_id": fake.new_trigger_id(self.user_id),
        }
        status, body = await self.send_raw(
            urlencode(form), content_type="application/x-www-form-urlencoded"
        )
        reply = SlashReply(status, body, None, url)
        if status == 200 and body.strip():
            shown, blocks, data = _ack_content(body, command)
            if data.get("response_type") == "in_channel":
                reply.message = fake.add_message(self.channel_id, text=shown, blocks=blocks)
            else:
                reply.ephemeral = fake.add_ephemeral(
                    self.channel_id, self.user_id, text=shown, blocks=blocks, response_url=url
                )
        return reply

    async def click(
        self, message: Message | Ephemeral, action_id: str, *, value: str | None = None
    ) -> int:
        """Click a button (or pick ``value`` in a menu) in a channel message or an ephemeral."""
        fake = self.fake
        block_id, element = _find_element(message.blocks, action_id)
        payload = self._interaction("block_actions")
        ephemeral = isinstance(message, Ephemeral)
        ts = message.message_ts if isinstance(message, Ephemeral) else message.ts
        # Slack issues a fresh response_url per interaction, bound to the clicked message.
        payload["response_url"] = fake.new_response_url(
            channel=message.channel,
            user=self.user_id,
            ephemeral=message if isinstance(message, Ephemeral) else None,
            message=message if isinstance(message, Message) else None,
        )
        container: Json = {
            "type": "message",
            "message_ts": ts,
            "channel_id": message.channel,
            "is_ephemeral": ephemeral,
        }
        if message.thread_ts and message.thread_ts != ts:
            container["thread_ts"] = message.thread_ts
        payload["container"] = container
        payload["channel"] = {"id": message.channel, "name": fake.name_of(message.channel)}
        if isinstance(message, Message):
            payload["message"] = message.to_json()
        payload["state"] = {"values": {}}
        payload["actions"] = [_action(block_id, element, value, fake.next_ts())]
        status, _ = await self._send_payload(payload)
        return status

    async def click_in_view(self, view_id: str, action_id: str, *, value: str | None = None) -> int:
        """Click a button or pick a menu value inside a modal or the home tab."""
        view = self.fake.views[view_id]
        block_id, element = _find_element(view.blocks, action_id)
        payload = self._interaction("block_actions")
        payload["container"] = {"type": "view", "view_id": view_id}
        payload["view"] = self.fake.view_json(view_id)
        payload["actions"] = [_action(block_id, element, value, self.fake.next_ts())]
        status, _ = await self._send_payload(payload)
        return status

    async def submit_view(
        self, view_id: str, values: Mapping[str, Mapping[str, Any]] | None = None
    ) -> tuple[int, Any]:
        """Fill inputs (``{block_id: {action_id: value object}}``) and press submit."""
        fake = self.fake
        view = fake.views.get(view_id)
        if view is None or view.closed:
            raise AssertionError(f"view {view_id} is not open\n{fake.dump()}")
        state = copy.deepcopy(view.state_values)
        for block_id, actions in (values or {}).items():
            for action_id, value in actions.items():
                if action_id not in state.get(block_id, {}):
                    inputs = {b: list(a) for b, a in state.items()}
                    raise AssertionError(f"no input {block_id}/{action_id}; inputs: {inputs}")
                state[block_id][action_id] = dict(value)
        view.state_values = state  # Slack keeps what was typed while the modal stays open
        payload = self._interaction("view_submission")
        payload["view"] = fake.view_json(view_id)
        payload["response_urls"] = []
        status, body = await self._send_payload(payload)
        answer = json.loads(body) if body.strip() else None
        if status != 200:
            return status, answer
        action = answer.get("response_action") if isinstance(answer, dict) else None
        if answer is None or action == "clear":
            fake.close_view(view_id, whole_stack=action == "clear")
        elif action in ("update", "push"):
            try:
                definition = validate_view(answer.get("view"))
            except InvalidBlocks as exc:
                raise AssertionError(f"Slack would reject the view answer: {exc}") from exc
            if action == "update":
                fake.replace_view(view_id, definition, "response_action.update")
            else:
                fake.push_view(definition, user=self.user_id, method="views.push")
        elif action == "errors":
            view.errors = dict(answer.get("errors") or {})
        return status, answer

    async def send_event(self, event: Json) -> int:
        """Deliver one Events API event in its event_callback envelope."""
        fake = self.fake
        self._events += 1
        envelope = {
            "token": VERIFICATION_TOKEN,
            "team_id": fake.team_id,
            "api_app_id": fake.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev0SANDBOX{self._events:04d}",
            "event_time": int(float(str(event.get("event_ts") or fake.next_ts()))),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": fake.team_id,
                    "user_id": fake.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        status, _ = await self.send_raw(json.dumps(envelope), content_type="application/json")
        return status

    async def open_home(self) -> int:
        """Open the bot's App Home (home tab)."""
        event: Json = {
            "type": "app_home_opened",
            "user": self.user_id,
            "channel": "D" + self.user_id[1:],
            "tab": "home",
            "event_ts": self.fake.next_ts(),
        }
        home = next(
            (v for v in self.fake.views.values() if v.type == "home" and v.user == self.user_id),
            None,
        )
        if home is not None:
            event["view"] = self.fake.view_json(home.id)
        return await self.send_event(event)

    async def mention(self, text: str, *, thread_ts: str | None = None) -> tuple[int, Message]:
        """Post ``@thunderbot text`` in the channel; Slack sends the bot an app_mention."""
        message = self.fake.add_message(
            self.channel_id,
            text=f"<@{self.fake.bot_user_id}> {text}",
            user=self.user_id,
            thread_ts=thread_ts,
        )
        event: Json = {
            "type": "app_mention",
            "user": self.user_id,
            "text": message.text,
            "ts": message.ts,
            "channel": self.channel_id,
            "event_ts": message.ts,
        }
        if thread_ts:
            event["thread_ts"] = thread_ts
        return await self.send_event(event), message
