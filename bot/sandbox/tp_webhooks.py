"""Signed webhook delivery for the ThunderPhone sandbox: ordered per run, retried with backoff."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from thunderphone.webhooks import compute_signature

from bot.sandbox.tp_scenarios import JSON


@dataclass
class WebhookDelivery:
    """One webhook delivery attempt; `status` is None when the connection failed."""

    event_id: str
    type: str
    body: bytes
    headers: dict[str, str]
    attempt: int
    status: int | None = None
    error: str | None = None


@dataclass
class WebhookFaults:
    """How the sandbox's own webhooks misbehave, as ThunderPhone's may (at-least-once, best-effort
    order): a share `drop` of events is never sent, a share `duplicate` is sent twice, each
    delivery waits a random `delay` (uniform, seconds) before its first attempt, and with
    `shuffle` a run's deliveries no longer wait for each other, so `call.graded` can arrive
    before `test-call.completed`.

    Draws come from `random.Random(seed)`: the same seed gives the same draws for the same
    sequence of events. `dropped` and `duplicated` count what was done.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    shuffle: bool = False
    delay: tuple[float, float] = (0.0, 0.0)
    seed: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (event id, type)
    duplicated: int = 0

    def __post_init__(self) -> None:
        for share in (self.drop, self.duplicate):
            if not 0.0 <= share <= 1.0:
                raise ValueError("drop and duplicate are shares between 0 and 1")
        if not 0.0 <= self.delay[0] <= self.delay[1]:
            raise ValueError("delay is a (low, high) range of seconds")
        self._random = random.Random(self.seed)

    def copies(self, event_id: str, event_type: str) -> int:
        """How many times to send this event: 0 (dropped), 1 or 2."""
        if self._random.random() < self.drop:
            self.dropped.append((event_id, event_type))
            return 0
        if self._random.random() < self.duplicate:
            self.duplicated += 1
            return 2
        return 1

    def wait(self) -> float:
        return self._random.uniform(*self.delay)


class WebhookSender:
    """Sends the sandbox's events to `webhook_url`; the class using it sets these attributes."""

    webhook_url: str | None
    webhook_secret: str
    webhook_retry_base_seconds: float
    webhook_max_attempts: int
    duplicate_webhooks: bool
    webhook_faults: WebhookFaults | None
    clock: Callable[[], float]
    deliveries: list[WebhookDelivery]
    _deliveries_pending: set[asyncio.Task[None]]
    _tails: dict[int, asyncio.Task[None]]
    _session: aiohttp.ClientSession | None

    def _emit(self, run_id: int, event_type: str, data: JSON) -> list[asyncio.Task[None]]:
        """Queue one event behind the run's earlier deliveries so a run's events stay ordered
        (unless `webhook_faults` drop, repeat, delay or shuffle them)."""
        if self.webhook_url is None:
            return []
        event_id = str(uuid.uuid4())
        envelope = {"event_id": event_id, "type": event_type, "data": data}
        body = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
        faults = self.webhook_faults
        copies = 2 if self.duplicate_webhooks else 1
        if faults is not None:
            copies *= faults.copies(event_id, event_type)
        tasks = []
        for _ in range(copies):
            ordered = faults is None or not faults.shuffle
            previous = self._tails.get(run_id) if ordered else None
            delay = faults.wait() if faults is not None else 0.0
            task = asyncio.create_task(self._deliver(previous, event_id, event_type, body, delay))
            if ordered:
                self._tails[run_id] = task
            self._deliveries_pending.add(task)
            task.add_done_callback(self._deliveries_pending.discard)
            tasks.append(task)
        return tasks

    def signature_headers(
        self, url: str, body: bytes, timestamp: int, secret: str | None = None
    ) -> dict[str, str]:
        """Both signature headers ThunderPhone puts on a webhook POST to `url`, signed with
        `secret` (by default the sandbox's own webhook secret)."""
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        secret = self.webhook_secret if secret is None else secret
        v2 = compute_signature(secret, timestamp=timestamp, method="POST", path=path, body=body)
        return {
            "Content-Type": "application/json",
            "X-ThunderPhone-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
            "X-ThunderPhone-Signature-V2": f"t={timestamp},v1={v2}",
        }

    async def deliver_once(
        self, url: str, secret: str, event_type: str, data: JSON
    ) -> WebhookDelivery:
        """Send one signed event to `url` now, without retrying, as a test send does."""
        event_id = str(uuid.uuid4())
        envelope = {"event_id": event_id, "type": event_type, "data": data}
        body = json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()
        headers = self.signature_headers(url, body, int(self.clock()), secret)
        delivery = WebhookDelivery(event_id, event_type, body, headers, attempt=1)
        self.deliveries.append(delivery)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=10)
            ) as response:
                delivery.status = response.status
                await response.read()
            if not 200 <= response.status < 300:
                delivery.error = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"
        return delivery

    async def _deliver(
        self,
        previous: asyncio.Task[None] | None,
        event_id: str,
        event_type: str,
        body: bytes,
        delay: float = 0.0,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        if delay:
            await asyncio.sleep(delay)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        for attempt in range(1, self.webhook_max_attempts + 1):
            url = self.webhook_url
            if url is None:
                return
            headers = self.signature_headers(url, body, int(self.clock()))
            delivery = WebhookDelivery(event_id, event_type, body, headers, attempt)
            self.deliveries.append(delivery)
            try:
                async with self._session.post(url, data=body, headers=headers) as response:
                    delivery.status = response.status
                    await response.read()
                if 200 <= response.status < 300:
                    return
                delivery.error = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                delivery.error = f"{type(exc).__name__}: {exc}"
            if attempt < self.webhook_max_attempts:
                await asyncio.sleep(self.webhook_retry_base_seconds * 2 ** (attempt - 1))
        logging.getLogger(type(self).__module__).warning(
            "gave up delivering %s %s after %d attempts",
            event_type,
            event_id,
            self.webhook_max_attempts,
        )
