"""Pre-built, pre-signed requests for the load generator: ThunderPhone webhooks signed as the
sandbox signs them (both signatures, V2 timestamped), Slack slash commands signed with
slack_sdk's SignatureVerifier. Signatures are good for five minutes, so every round builds its
requests afresh just before it starts."""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from benchmarks.common import Request
from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_user import VERIFICATION_TOKEN
from bot.sandbox.thunderphone import ThunderPhoneSandbox
from bot.server import SLACK_ROUTE
from handlers.commands import COMMAND
from handlers.webhooks import ROUTE as WEBHOOK_ROUTE

JSON = dict[str, Any]


def encode(envelope: JSON) -> bytes:
    """As ThunderPhone (and the sandbox) serialise a webhook envelope."""
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def webhook_request(sandbox: ThunderPhoneSandbox, envelope: JSON, timestamp: int) -> Request:
    """A POST of `envelope` to the bot's webhook route, signed with the sandbox's secret."""
    body = encode(envelope)
    headers = sandbox.signature_headers("http://127.0.0.1" + WEBHOOK_ROUTE, body, timestamp)
    return {"method": "POST", "path": WEBHOOK_ROUTE, "headers": headers, "body": body.decode()}


def webhook_requests(sandbox: ThunderPhoneSandbox, envelopes: Iterable[JSON]) -> list[Request]:
    stamp = int(time.time())
    return [webhook_request(sandbox, envelope, stamp) for envelope in envelopes]


def event(event_type: str, data: JSON) -> JSON:
    """One delivery with its own `event_id`, so the bot's deduplication never answers it early."""
    return {"event_id": str(uuid.uuid4()), "type": event_type, "data": data}


@dataclass(frozen=True)
class CallTemplate:
    """A finished test call as the sandbox reports it: the run (before grading), its call,
    transcript and grade. Copies with other ids stand for as many runs as a round needs."""

    run: JSON
    call: JSON
    transcript: list[JSON]
    grade: JSON

    def completed(self, run_id: int, call_id: int) -> JSON:
        """The `test-call.completed` data of a run with these ids."""
        return {"test_call_run": {**self.run, "id": run_id, "call_id": call_id}}

    def graded(self, call_id: int) -> JSON:
        """The `call.graded` data of the call with this id."""
        grade = {**self.grade, "call_id": call_id}
        return {"call_id": call_id, "agent_name": self.run.get("agent_name"), "grade": grade}

    def add_call(self, sandbox: ThunderPhoneSandbox, call_id: int) -> None:
        """Make the sandbox answer for this call (GET /v1/calls/{id} and its transcript), as it
        would for a call it placed. The run itself is not listed, so the bot's poller, which
        pages through the run list, leaves it to the webhooks."""
        call = copy.deepcopy(self.call)
        call["call_id"] = call_id
        sandbox.calls[call_id] = call
        sandbox.transcripts[call_id] = self.transcript


async def call_template(sandbox: ThunderPhoneSandbox, base_url: str) -> CallTemplate:
    """Place one test call on the sandbox (manual clock, no webhook address, so nothing is
    delivered) and step it through to its grade."""
    assert sandbox.step_seconds is None and sandbox.webhook_url is None
    body = {
        "target_type": "agent",
        "target_id": 12,
        "direction": "outbound",
        "consent_to_charge": True,
        "scenario_prompt": "Book a table for two on Friday at eight",
    }
    headers = {"Authorization": f"Bearer {sandbox.api_key}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(base_url + "/v1/test-calls", json=body, headers=headers) as response,
    ):
        response.raise_for_status()
        run_id = int((await response.json())["id"])
    await sandbox.advance(run_id)  # in progress
    await sandbox.advance(run_id)  # completed
    run = copy.deepcopy(sandbox.runs[run_id])
    call_id = int(run["call_id"])
    await sandbox.advance(run_id)  # graded
    grade = next(grade for grade in sandbox.grades.values() if grade["call_id"] == call_id)
    return CallTemplate(
        run=run,
        call=copy.deepcopy(sandbox.calls[call_id]),
        transcript=copy.deepcopy(sandbox.transcripts[call_id]),
        grade=copy.deepcopy(grade),
    )


class Ids:
    """Fresh run and call ids, far from the sandbox's own."""

    def __init__(self, first_run: int = 50_000_000, first_call: int = 5_000_000_000) -> None:
        self._run = first_run
        self._call = first_call

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return self

    def __next__(self) -> tuple[int, int]:
        self._run += 1
        self._call += 1
        return self._run, self._call


# ---------------------------------------------------------------- Slack


def slash_form(
    fake: FakeSlack, text: str, *, channel_id: str = "C0QA", user_id: str = "U0MARIA"
) -> dict[str, str]:
    """The form Slack posts for `/testcall text`, as `SlackUser.slash` builds it."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": fake.team_id,
        "team_domain": "sandbox",
        "channel_id": channel_id,
        "channel_name": fake.channels.get(channel_id, channel_id),
        "user_id": user_id,
        "user_name": fake.users.get(user_id, user_id),
        "command": COMMAND,
        "text": text,
        "api_app_id": fake.app_id,
        "is_enterprise_install": "false",
        "response_url": fake.new_response_url(channel=channel_id, user=user_id),
        "trigger_id": fake.new_trigger_id(user_id),
    }


def slack_request(signing_secret: str, form: dict[str, str], timestamp: int) -> Request:
    """A POST of `form` to the Slack route, signed as Slack signs it."""
    body = urlencode(form)
    stamp = str(timestamp)
    signature = SignatureVerifier(signing_secret).generate_signature(timestamp=stamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": signature,
    }
    return {"method": "POST", "path": SLACK_ROUTE, "headers": headers, "body": body}


def slash_requests(
    fake: FakeSlack, signing_secret: str, texts: Iterable[str], *, copies: int = 1
) -> list[Request]:
    """Signed `/testcall` requests, `copies` of each text (each with its own trigger id)."""
    stamp = int(time.time())
    return [
        slack_request(signing_secret, slash_form(fake, text), stamp)
        for text in texts
        for _ in range(copies)
    ]
