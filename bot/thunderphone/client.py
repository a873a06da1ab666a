"""Async client for the ThunderPhone REST API (the parts the bot uses).

Creates (POST) are sent exactly once: ThunderPhone has no idempotency key for test calls,
batches or issue reports, so a retried create could start a second paid run. Reads (GET) are
retried on transport errors and 5xx replies.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
import httpx
import stamina
from httpx_aiohttp import AiohttpTransport

from bot.bodies import may_spell_lone_surrogates, whole_characters
from bot.thunderphone.errors import (
    ThunderPhoneBadResponse,
    ThunderPhoneNotFound,
    ThunderPhoneUnavailable,
    error_for_status,
    extract_detail,
)
from bot.thunderphone.models import (
    Agent,
    Batch,
    BatchRequest,
    Call,
    Grade,
    IssueReport,
    IssueReportRequest,
    PhoneNumber,
    ResponseModel,
    Run,
    TestCallRequest,
    Transcript,
    WebhookEndpoint,
    WebhookEndpointCreated,
    WebhookEndpointRequest,
    WebhookTestDelivery,
)

__all__ = ["DEFAULT_TIMEOUT", "ThunderPhoneClient"]

DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=5.0)
READ_ATTEMPTS = 3

M = TypeVar("M", bound=ResponseModel)


log = logging.getLogger(__name__)


def _client_version() -> str:
    try:
        return importlib.metadata.version("thunderbot")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


def default_http() -> httpx.AsyncClient:
    """The HTTP client a `ThunderPhoneClient` makes for itself: httpx's interface over
    aiohttp's connection pool."""
    return httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, transport=AiohttpTransport())


def _transport_reason(exc: httpx.TransportError) -> str:
    cause = exc.__cause__
    # The aiohttp transport maps every connection error to a timeout; say what happened.
    if isinstance(cause, aiohttp.ClientConnectorError):
        return "the connection failed"
    if isinstance(cause, asyncio.TimeoutError):
        return "the request timed out"
    if isinstance(cause, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
        return "the connection dropped"
    if isinstance(exc, httpx.TimeoutException):
        return "the request timed out"
    if isinstance(exc, httpx.ConnectError):
        return "the connection failed"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "the connection dropped"
    return f"network error: {type(exc).__name__}"


def _parse(model: type[M], data: object, status: int) -> M:
    try:
        return model.parse(data)
    except ThunderPhoneBadResponse as exc:
        raise ThunderPhoneBadResponse(exc.detail, status=status, body=data) from exc


class ThunderPhoneClient:
    """ThunderPhone API client sharing one `httpx.AsyncClient`.

    `base_url` is the host without `/v1`, e.g. `https://api.thunderphone.com`. When `http` is
    given, its owner closes it; otherwise `aclose` does.
    """

    def __init__(
        self, *, base_url: str, api_key: str, http: httpx.AsyncClient | None = None
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "X-ThunderPhone-Client": f"thunderbot/{_client_version()}",
            "Accept": "application/json",
        }
        self._owns_http = http is None
        self._http = http if http is not None else default_http()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> ThunderPhoneClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- transport -------------------------------------------------------------------------

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str | int] | None = None,
    ) -> tuple[int, Any]:
        """One HTTP exchange; returns (status, decoded JSON) for a 2xx or raises."""
        try:
            response = await self._http.request(
                method, self._base_url + path, json=json, params=params, headers=self._headers
            )
        except httpx.TransportError as exc:
            raise ThunderPhoneUnavailable(_transport_reason(exc)) from exc
        status = response.status_code
        text = response.text
        try:
            body: Any = response.json()
            decoded = True
        except (ValueError, RecursionError):  # not JSON, or nested too deep to read
            body, decoded = None, False
        if decoded and may_spell_lone_surrogates(text):
            body = whole_characters(body)
        if not 200 <= status < 300:
            raise error_for_status(status, body, text)
        if not decoded:
            raise ThunderPhoneBadResponse(
                f"the body is not JSON: {extract_detail(None, text) or '(empty)'}",
                status=status,
                body=text,
            )
        return status, body

    async def _post(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        # Never retried: a second attempt could create a second paid run.
        return await self._send_once("POST", path, json=body)

    async def _get(self, path: str, params: dict[str, str | int] | None = None) -> tuple[int, Any]:
        async for attempt in stamina.retry_context(
            on=ThunderPhoneUnavailable, attempts=READ_ATTEMPTS
        ):
            with attempt:
                return await self._send_once("GET", path, params=params)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    # -- endpoints -------------------------------------------------------------------------

    async def create_test_call(self, request: TestCallRequest) -> Run:
        """Start one test-call run (POST /v1/test-calls)."""
        status, body = await self._post("/v1/test-calls", request.to_json())
        return _parse(Run, body, status)

    async def create_batch(self, request: BatchRequest) -> Batch:
        """Start a batch of runs (POST /v1/test-call-batches)."""
        status, body = await self._post("/v1/test-call-batches", request.to_json())
        return _parse(Batch, body, status)

    async def get_batch(self, batch_id: int) -> Batch:
        """Batch progress and child run ids."""
        status, body = await self._get(f"/v1/test-call-batches/{int(batch_id)}")
        return _parse(Batch, body, status)

    async def list_batches(self) -> list[Batch]:
        """Batches, newest first (a plain array, or a `{"results": [...]}` envelope)."""
        code, body = await self._get("/v1/test-call-batches")
        return _parse_list(Batch, body, code, "batch")

    async def list_test_calls(
        self,
        *,
        limit: int = 200,
        offset: int = 0,
        status: str | None = None,
        agent_id: int | None = None,
        batch_id: int | None = None,
    ) -> list[Run]:
        """Recent runs, newest first, or only one batch's (`batch_id`); accepts a plain array
        or a `{"results": [...]}` envelope."""
        params: dict[str, str | int] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        if agent_id is not None:
            params["agent_id"] = agent_id
        if batch_id is not None:
            params["batch_id"] = int(batch_id)
        code, body = await self._get("/v1/test-calls", params)
        return _parse_list(Run, body, code, "run")

    async def get_agent(self, agent_id: int) -> Agent:
        """One agent, with its name and product tier (free to read)."""
        status, body = await self._get(f"/v1/agents/{int(agent_id)}")
        return _parse(Agent, body, status)

    async def get_phone_number(self, phone_number_id: int) -> PhoneNumber:
        """One phone number, with its label and the agents it routes to (free to read)."""
        status, body = await self._get(f"/v1/phone-numbers/{int(phone_number_id)}")
        return _parse(PhoneNumber, body, status)

    async def get_call(self, call_id: int) -> Call:
        """One call log."""
        status, body = await self._get(f"/v1/calls/{int(call_id)}")
        return _parse(Call, body, status)

    async def get_transcript(self, call_id: int) -> Transcript:
        """The transcript of a call."""
        status, body = await self._get(f"/v1/calls/{int(call_id)}/transcript")
        return _parse(Transcript, body, status)

    async def get_grade(self, call_id: int) -> Grade | None:
        """The latest grade of a call, or None when it has not been graded yet (404)."""
        try:
            status, body = await self._get(f"/v1/calls/{int(call_id)}/grade")
        except ThunderPhoneNotFound:
            return None
        if isinstance(body, dict) and body.get("call_id") is None:
            body = {**body, "call_id": call_id}
        return _parse(Grade, body, status)

    async def create_issue_report(self, call_id: int, request: IssueReportRequest) -> IssueReport:
        """File an issue report against a call."""
        status, body = await self._post(
            f"/v1/calls/{int(call_id)}/issue-reports", request.to_json()
        )
        return _parse(IssueReport, body, status)

    async def list_agents(self) -> list[Agent]:
        """The organisation's agents (free to read: a cheap check that the key works)."""
        code, body = await self._get("/v1/agents")
        return _parse_list(Agent, body, code, "agent")

    async def list_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """The organisation's webhook endpoints (admin keys only: 403 otherwise)."""
        code, body = await self._get("/v1/developer/webhook-endpoints")
        return _parse_list(WebhookEndpoint, body, code, "webhook endpoint")

    async def create_webhook_endpoint(
        self, request: WebhookEndpointRequest
    ) -> WebhookEndpointCreated:
        """Register a webhook endpoint; the answer holds its signing secret, shown only once."""
        status, body = await self._post("/v1/developer/webhook-endpoints", request.to_json())
        return _parse(WebhookEndpointCreated, body, status)

    async def test_webhook_endpoint(
        self, endpoint_id: str, event_type: str | None = None
    ) -> WebhookTestDelivery:
        """Have ThunderPhone send one signed synthetic event (`webhook.test` unless
        `event_type` names another) to the endpoint, and say how it was answered."""
        body = {} if event_type is None else {"event_type": event_type}
        path = f"/v1/developer/webhook-endpoints/{quote(endpoint_id, safe='')}/test"
        status, answer = await self._post(path, body)
        return _parse(WebhookTestDelivery, answer, status)


def _parse_list(model: type[M], body: Any, code: int, noun: str) -> list[M]:
    """A list answer: a plain array or a `{"results": [...]}` envelope. One unreadable row
    is skipped (and logged) rather than hide every other one from the bot."""
    items = body.get("results") if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise ThunderPhoneBadResponse(
            f"expected a list of {noun}s or an object with `results`", status=code, body=body
        )
    parsed: list[M] = []
    for item in items:
        try:
            parsed.append(_parse(model, item, code))
        except ThunderPhoneBadResponse as error:
            log.warning("skipped an unreadable %s in the list: %s", noun, error)
    return parsed
