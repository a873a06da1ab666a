"""Webhook endpoints for the ThunderPhone sandbox: list, create (the secret shown once) and
test (one real signed synthetic event sent to the endpoint's URL). Admin keys only."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

from aiohttp import web

from bot.sandbox import tp_objects as objects
from bot.sandbox import tp_validation as check
from bot.sandbox.tp_objects import JSON
from bot.sandbox.tp_webhooks import WebhookSender

ADMIN_PREFIX = "/v1/developer/"
TEST_MESSAGE = "This is a test event from ThunderPhone."


class WebhookEndpoints(WebhookSender):
    """The `/v1/developer/webhook-endpoints` routes; the class using it sets these attributes."""

    webhook_endpoints: dict[str, JSON]
    endpoint_secrets: dict[str, str]
    _now: Callable[[], str]

    def endpoint_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/developer/webhook-endpoints", self._list_endpoints),
            web.post("/v1/developer/webhook-endpoints", self._create_endpoint),
            web.post("/v1/developer/webhook-endpoints/{endpoint_id}/test", self._test_endpoint),
        ]

    def add_webhook_endpoint(
        self,
        url: str,
        *,
        events: list[str] | None = None,
        label: str = "thunderbot",
        secret: str | None = None,
        status: str = "active",
    ) -> JSON:
        """An endpoint the organisation already has (made in the dashboard, say); returns it
        with its `secret`, as the create route answers."""
        body = {"label": label, "url": url, "events": events or [], "status": status}
        return self._new_endpoint(body, secret)

    def _new_endpoint(self, body: JSON, secret: str | None = None) -> JSON:
        endpoint_id = str(uuid.uuid4())
        secret = secret if secret is not None else "whsec_" + secrets.token_hex(24)
        endpoint = objects.endpoint_object(endpoint_id, body, secret, self._now())
        self.webhook_endpoints[endpoint_id] = endpoint
        self.endpoint_secrets[endpoint_id] = secret
        return {**endpoint, "secret": secret}

    async def _list_endpoints(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.webhook_endpoints.values()))

    async def _create_endpoint(self, request: web.Request) -> web.Response:
        body = check.object_body(request)
        if isinstance(body, web.Response):
            return body
        errs = check.endpoint_request(body)
        if errs.fields:
            return web.json_response(errs.fields, status=400)
        return web.json_response(self._new_endpoint(body), status=201)

    async def _test_endpoint(self, request: web.Request) -> web.Response:
        endpoint_id = request.match_info["endpoint_id"]
        endpoint = self.webhook_endpoints.get(endpoint_id)
        if endpoint is None:
            return web.json_response({"detail": "Not found."}, status=404)
        body = check.object_body(request)
        if isinstance(body, web.Response):
            return body
        errs = check.endpoint_test_request(body)
        if errs.fields:
            return web.json_response(errs.fields, status=400)
        event_type = body["event_type"]
        delivery = await self.deliver_once(
            endpoint["url"],
            self.endpoint_secrets[endpoint_id],
            event_type,
            _sample_data(event_type, endpoint_id, self._now()),
        )
        success = delivery.status is not None and 200 <= delivery.status < 300
        return web.json_response(
            {
                "event_id": delivery.event_id,
                "event_type": event_type,
                "status": "delivered" if success else "failed",
                "success": success,
                "response_code": delivery.status,
                "error": delivery.error or "",
            }
        )


def _sample_data(event_type: str, endpoint_id: str, now: str) -> JSON:
    """What a synthetic event carries: sample objects of the kind the real event carries."""
    if event_type == "test-call.completed":
        target = objects.find_target("agent", 12)
        assert target is not None
        run = objects.run_object(0, target, {"scenario_prompt": TEST_MESSAGE}, None, now)
        run.update(status="completed", completed_at=now)
        return {"test_call_run": run, "test": True}
    if event_type == "call.graded":
        grade = {"id": 0, "call_id": 0, "status": "completed", "score": 100, "graded_at": now}
        return {"call_id": 0, "grade": grade, "test": True}
    return {"endpoint_id": endpoint_id, "message": TEST_MESSAGE, "test": True}
