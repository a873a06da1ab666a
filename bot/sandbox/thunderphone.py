"""A local simulator of the ThunderPhone REST API (test calls, calls, grades, webhooks).

It serves the `/v1` routes a chat-ops client uses, moves test-call runs through their
lifecycle on a timer (or one step at a time with `advance`), and delivers signed webhooks
with retries. Objects use the superset shape that both the public docs and the official
SDK accept. Outcomes are derived from the scenario prompt, never from randomness: bracketed
directives such as `[fail]`, `[score: 62]`, `[say: ...]`, `[tool: ...]`, `[flaky]`,
`[duration: 90]` and `[no-grade]` fix them on purpose (see `tp_scenarios`).

Batches create all their runs at once (`queued`, `run_ids` in prompt order); with the
automatic clock the i-th run starts moving after i x `stagger_seconds` x `stagger_scale`
seconds, with the manual clock (`step_seconds=None`) only `advance` moves a run.
`GET /v1/test-calls?batch_id=N` lists one batch's runs.

Webhook endpoints (`/v1/developer/webhook-endpoints`, see `tp_endpoints`) can be listed,
created and sent a test event; the runs' own webhooks go to `webhook_url` alone.

Faults: `fail_next` makes the next matching request fail; `api_faults` (`ApiFaults`) makes
requests fail or answer late at random, and `webhook_faults` (`WebhookFaults`) drops, repeats,
delays and reorders webhooks at random, both seeded.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from bot.sandbox import tp_scenarios as sc
from bot.sandbox import tp_validation as check
from bot.sandbox.tp_endpoints import ADMIN_PREFIX, WebhookEndpoints
from bot.sandbox.tp_scenarios import JSON
from bot.sandbox.tp_validation import CONSENT_MESSAGE as CONSENT_MESSAGE
from bot.sandbox.tp_validation import E164_MESSAGE as E164_MESSAGE
from bot.sandbox.tp_validation import REQUIRED as REQUIRED
from bot.sandbox.tp_webhooks import WebhookDelivery as WebhookDelivery
from bot.sandbox.tp_webhooks import WebhookFaults as WebhookFaults

NOT_FOUND = {"detail": "Not found."}
BALANCE_MESSAGE = "Insufficient balance. Top up your account to place test calls."
_QUEUED, _IN_PROGRESS, _COMPLETED, _DONE = range(4)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class RecordedRequest:
    """One API request as the sandbox received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any


@dataclass
class _Fault:
    method: str
    path: str
    status: int
    body: JSON
    after_handling: bool = False
    skip: int = 0  # matching requests let through before this one fails


# What a request hit by `ApiFaults` gets: a 5xx before anything is done ("error"), the request
# carried out and then a 5xx, its answer lost ("lost"), a 429 with Retry-After ("rate_limited"),
# or the right answer, late ("slow").
API_FAULT_KINDS = ("error", "lost", "rate_limited", "slow")
RATE_LIMITED = {"detail": "Request was throttled. Expected available in 1 second."}


@dataclass
class ApiFaults:
    """API requests failing at random, at `rate` (a share between 0 and 1), as ThunderPhone or
    what stands in front of it fails: 5xx answers, 429s and slow answers (see
    `API_FAULT_KINDS`; a kind listed twice is drawn twice as often).

    `create_kinds` is what may happen to a POST (a create: a test call, a batch, an issue
    report). An "error" or "lost" create leaves the client unable to tell whether it was made;
    leave them out when the run under test cannot wait for the client to find out.

    Draws come from `random.Random(seed)`: the same seed gives the same draws for the same
    sequence of requests. `injected` counts (method, kind) of what was done.
    """

    rate: float
    seed: int = 0
    kinds: tuple[str, ...] = API_FAULT_KINDS
    create_kinds: tuple[str, ...] = API_FAULT_KINDS
    slow_seconds: tuple[float, float] = (0.3, 1.5)
    statuses: tuple[int, ...] = (500, 502, 503)
    injected: Counter[tuple[str, str]] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("rate is a share between 0 and 1")
        unknown = set(self.kinds) | set(self.create_kinds)
        if unknown - set(API_FAULT_KINDS):
            raise ValueError(f"fault kinds are among {API_FAULT_KINDS}")
        self._random = random.Random(self.seed)

    def draw(self, method: str) -> str | None:
        """The fault for one request, or None (most of the time)."""
        kinds = self.create_kinds if method == "POST" else self.kinds
        if not kinds or self._random.random() >= self.rate:
            return None
        kind = self._random.choice(kinds)
        self.injected[(method, kind)] += 1
        return kind

    def status(self) -> int:
        return self._random.choice(self.statuses)

    def delay(self) -> float:
        return self._random.uniform(*self.slow_seconds)


@dataclass
class _RunState:
    scenario: sc.Scenario
    target: sc.Target
    stage: int = _QUEUED


class ThunderPhoneSandbox(WebhookEndpoints):
    """In-process ThunderPhone API with seeded agents 12, 13 and 14 (spark, storm-base and
    bolt) and phone number 34.

    `api_key` is an admin's key; `member_api_keys` are keys of members, who may do everything
    but manage webhook endpoints (403, as ThunderPhone answers).
    """

    def __init__(
        self,
        *,
        api_key: str = "sk_test_sandbox",
        webhook_url: str | None = None,
        webhook_secret: str = "whsec_sandbox",
        step_seconds: float | None = 0.2,
        stagger_scale: float = 1.0,
        webhook_retry_base_seconds: float = 0.2,
        webhook_max_attempts: int = 5,
        balance_cents: int = 100_000,
        clock: Callable[[], float] = time.time,
        member_api_keys: Collection[str] = (),
    ) -> None:
        self.api_key = api_key
        self.member_api_keys = tuple(member_api_keys)
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.step_seconds = step_seconds
        # Batch launches wait i x stagger_seconds x stagger_scale (0.0 or 0.01 keeps tests fast).
        self.stagger_scale = stagger_scale
        self.webhook_retry_base_seconds = webhook_retry_base_seconds
        self.webhook_max_attempts = webhook_max_attempts
        self.balance_cents = balance_cents
        self.clock = clock
        self.grade_before_complete = False
        self.duplicate_webhooks = False
        # Random misbehaviour, off unless set: of the API (`ApiFaults`) and of the webhooks
        # the sandbox sends (`WebhookFaults`).
        self.api_faults: ApiFaults | None = None
        self.webhook_faults: WebhookFaults | None = None
        self.requests: list[RecordedRequest] = []
        self.deliveries: list[WebhookDelivery] = []
        self.runs: dict[int, JSON] = {}
        self.batches: dict[int, JSON] = {}
        self.calls: dict[int, JSON] = {}
        self.grades: dict[int, JSON] = {}  # by grade id
        self.transcripts: dict[int, list[JSON]] = {}  # by call id
        self.issue_reports: dict[int, JSON] = {}
        self.webhook_endpoints: dict[str, JSON] = {}
        self.endpoint_secrets: dict[str, str] = {}
        self._states: dict[int, _RunState] = {}
        self._grade_of_call: dict[int, int] = {}
        self._prompt_runs: dict[str, int] = {}  # runs per exact prompt, for [flaky]
        self._faults: list[_Fault] = []
        starts = {"run": 7110, "batch": 301, "call": 987654321, "grade": 5501, "issue": 4321}
        self._ids = {name: itertools.count(first) for name, first in starts.items()}
        self._drivers: set[asyncio.Task[None]] = set()
        self._deliveries_pending: set[asyncio.Task[None]] = set()
        self._tails: dict[int, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.app = web.Application(middlewares=[self._middleware])
        self.app.add_routes(
            [
                web.get("/v1/healthz", self._healthz),
                web.post("/v1/test-calls", self._create_run),
                web.get("/v1/test-calls", self._list_runs),
                web.get("/v1/agents", self._list_agents),
                web.get("/v1/agents/{id}", self._get_agent),
                web.get("/v1/phone-numbers", self._list_numbers),
                web.get("/v1/phone-numbers/{id}", self._get_number),
                web.post("/v1/test-call-batches", self._create_batch),
                web.get("/v1/test-call-batches", self._list_batches),
                web.get("/v1/test-call-batches/{id}", self._get_batch),
                web.get("/v1/calls/{id}", self._get_call),
                web.get("/v1/calls/{id}/transcript", self._get_transcript),
                web.get("/v1/calls/{id}/grade", self._get_grade),
                web.get("/v1/calls/{id}/issue-reports", self._list_issues),
                web.post("/v1/calls/{id}/issue-reports", self._create_issue),
                *self.endpoint_routes(),
            ]
        )

    # -- server ------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port (0 picks a free port); return the base URL without /v1."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        bound = self._runner.addresses[0][1]
        return f"http://{host}:{bound}"

    async def close(self) -> None:
        """Stop the server and cancel run progression and pending webhook deliveries."""
        tasks = [*self._drivers, *self._deliveries_pending]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        body: dict[str, Any],
        *,
        after_handling: bool = False,
        skip: int = 0,
    ) -> None:
        """Answer the next request matching method and path (exact or prefix) with status/body,
        after letting `skip` matching requests through.

        With `after_handling` the request is carried out first and only its answer is lost, as
        when a proxy or the network fails after ThunderPhone created the run.
        """
        self._faults.append(_Fault(method.upper(), path, status, body, after_handling, skip))

    async def advance(self, run_id: int) -> None:
        """Move a run one lifecycle step forward and wait for that step's webhook deliveries."""
        if run_id not in self._states:
            raise KeyError(run_id)
        await asyncio.gather(*self._step(run_id))

    async def wait_until_settled(self, timeout: float = 10) -> None:
        """Wait until every run is finished (and graded when completed) and deliveries are done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._settled():
            if loop.time() >= deadline:
                raise TimeoutError("sandbox runs or webhook deliveries still pending")
            await asyncio.sleep(0.01)

    def _settled(self) -> bool:
        runs_done = all(state.stage == _DONE for state in self._states.values())
        return runs_done and not self._deliveries_pending

    def _now(self) -> str:
        return sc.iso(self.clock())

    def _next(self, name: str) -> int:
        return next(self._ids[name])

    # -- request plumbing --------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        parsed = check.ParsedBody.parse(await request.read())
        request[check.PARSED_BODY] = parsed
        body = parsed.value
        self.requests.append(
            RecordedRequest(
                request.method, request.path, dict(request.query), dict(request.headers), body
            )
        )
        if request.path != "/v1/healthz":
            denied = check.unauthorized(request, (self.api_key, *self.member_api_keys))
            if denied is not None:
                return denied
            if request.path.startswith(ADMIN_PREFIX) and not check.holds_key(request, self.api_key):
                return web.json_response({"detail": check.PERMISSION_MESSAGE}, status=403)
        fault = next(
            (
                f
                for f in self._faults
                if f.method == request.method and request.path.startswith(f.path)
            ),
            None,
        )
        if fault is not None and fault.skip:
            fault.skip -= 1
            fault = None
        if fault is not None:
            self._faults.remove(fault)
            if not fault.after_handling:
                return web.json_response(fault.body, status=fault.status)
        elif self.api_faults is not None and request.path != "/v1/healthz":
            fault = await self._random_fault(request.method)
            if fault is not None and not fault.after_handling:
                headers = {"Retry-After": "1"} if fault.status == 429 else None
                return web.json_response(fault.body, status=fault.status, headers=headers)
        try:
            response = await handler(request)
            if fault is not None:
                return web.json_response(fault.body, status=fault.status)
            return response
        except web.HTTPNotFound:
            return web.json_response(NOT_FOUND, status=404)
        except web.HTTPMethodNotAllowed:
            detail = f'Method "{request.method}" not allowed.'
            return web.json_response({"detail": detail}, status=405)

    async def _random_fault(self, method: str) -> _Fault | None:
        """What `api_faults` does to this request: a fault to answer with (None: answer it,
        perhaps late)."""
        faults = self.api_faults
        assert faults is not None
        kind = faults.draw(method)
        if kind == "slow":
            await asyncio.sleep(faults.delay())
        elif kind == "rate_limited":
            return _Fault(method, "", 429, RATE_LIMITED)
        elif kind is not None:
            body = {"detail": "upstream connect error or disconnect/reset before headers"}
            return _Fault(method, "", faults.status(), body, after_handling=kind == "lost")
        return None

    @staticmethod
    def _id(request: web.Request) -> int | None:
        raw = request.match_info["id"]
        return int(raw) if raw.isdigit() else None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    # -- agents and phone numbers: free to read -----------------------------------------

    async def _list_agents(self, request: web.Request) -> web.Response:
        return web.json_response([sc.agent_object(agent) for agent in sc.AGENTS.values()])

    async def _get_agent(self, request: web.Request) -> web.Response:
        agent = sc.AGENTS.get(self._id(request) or -1)
        if agent is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(sc.agent_object(agent))

    async def _list_numbers(self, request: web.Request) -> web.Response:
        numbers = [sc.phone_number_object(target) for target in sc.PHONE_NUMBERS.values()]
        return web.json_response(numbers)

    async def _get_number(self, request: web.Request) -> web.Response:
        target = sc.PHONE_NUMBERS.get(self._id(request) or -1)
        if target is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(sc.phone_number_object(target))

    # -- test calls and batches --------------------------------------------------------

    def _reject(self, errs: check.Errors) -> web.Response | None:
        if errs.fields:
            return web.json_response(errs.fields, status=400)
        if self.balance_cents <= 0:
            return web.json_response({"detail": BALANCE_MESSAGE}, status=402)
        return None

    def _accepted(
        self, request: web.Request, checker: Callable[[JSON], tuple[check.Errors, sc.Target | None]]
    ) -> web.Response | tuple[JSON, sc.Target]:
        """The body and target of a create request, or the error ThunderPhone would answer."""
        body = check.object_body(request)
        if isinstance(body, web.Response):
            return body
        errs, target = checker(body)
        if (rejected := self._reject(errs)) is not None or target is None:
            return rejected or web.json_response(errs.fields, status=400)
        return body, target

    async def _create_run(self, request: web.Request) -> web.Response:
        accepted = self._accepted(request, check.run_request)
        if isinstance(accepted, web.Response):
            return accepted
        body, target = accepted
        run = self._new_run(target, body, None)
        self._launch(run["id"], 0.0)
        return web.json_response(run, status=201)

    async def _create_batch(self, request: web.Request) -> web.Response:
        accepted = self._accepted(request, check.batch_request)
        if isinstance(accepted, web.Response):
            return accepted
        body, target = accepted
        prompts = body["scenario_prompts"]
        batch_id = self._next("batch")
        run_ids = []
        for index in range(body["run_count"]):
            prompt = prompts[index % len(prompts)] if prompts else ""
            run = self._new_run(target, {**body, "scenario_prompt": prompt}, batch_id)
            run_ids.append(run["id"])
            self._launch(run["id"], index * body["stagger_seconds"] * self.stagger_scale)
        batch = sc.batch_object(batch_id, body, list(prompts), run_ids, self._now())
        self.batches[batch_id] = batch
        return web.json_response(batch, status=201)

    def _new_run(self, target: sc.Target, body: JSON, batch_id: int | None) -> JSON:
        run = sc.run_object(self._next("run"), target, body, batch_id, self._now())
        prompt = run["scenario_prompt"]
        attempt = self._prompt_runs.get(prompt, 0)
        self._prompt_runs[prompt] = attempt + 1
        self.runs[run["id"]] = run
        self._states[run["id"]] = _RunState(sc.plan(prompt, attempt), target)
        return run

    async def _list_runs(self, request: web.Request) -> web.Response:
        query = request.query
        runs = sorted(self.runs.values(), key=lambda r: r["id"], reverse=True)
        if "batch_id" in query:
            if not query["batch_id"].isdigit():
                errors = {"batch_id": ["A valid integer is required."]}
                return web.json_response(errors, status=400)
            runs = [r for r in runs if r["batch_id"] == int(query["batch_id"])]
        if "status" in query:
            runs = [r for r in runs if r["status"] == query["status"]]
        if "target_type" in query:
            runs = [r for r in runs if r["target_type"] == query["target_type"]]
        if query.get("agent_id", "").isdigit():
            agent = int(query["agent_id"])
            runs = [r for r in runs if self._states[r["id"]].target.agent.id == agent]
        limit = int(query["limit"]) if query.get("limit", "").isdigit() else 50
        offset = int(query["offset"]) if query.get("offset", "").isdigit() else 0
        return web.json_response(runs[offset : offset + min(max(limit, 1), 200)])

    async def _list_batches(self, request: web.Request) -> web.Response:
        return web.json_response(sorted(self.batches.values(), key=lambda b: -int(b["id"])))

    async def _get_batch(self, request: web.Request) -> web.Response:
        batch = self.batches.get(self._id(request) or -1)
        return web.json_response(batch) if batch else web.json_response(NOT_FOUND, status=404)

    # -- calls, transcripts, grades, issue reports ----------------------------------------

    async def _get_call(self, request: web.Request) -> web.Response:
        call = self.calls.get(self._id(request) or -1)
        return web.json_response(call) if call else web.json_response(NOT_FOUND, status=404)

    async def _get_transcript(self, request: web.Request) -> web.Response:
        call_id = self._id(request) or -1
        if call_id not in self.calls:
            return web.json_response(NOT_FOUND, status=404)
        entries = self.transcripts.get(call_id, [])
        return web.json_response({"call_id": call_id, "transcripts": entries})

    async def _get_grade(self, request: web.Request) -> web.Response:
        grade_id = self._grade_of_call.get(self._id(request) or -1)
        if grade_id is None:
            return web.json_response(NOT_FOUND, status=404)
        return web.json_response(self.grades[grade_id])

    async def _list_issues(self, request: web.Request) -> web.Response:
        call_id = self._id(request) or -1
        if call_id not in self.calls:
            return web.json_response(NOT_FOUND, status=404)
        issues = [i for i in self.issue_reports.values() if i["call_id"] == call_id]
        return web.json_response(sorted(issues, key=lambda i: -int(i["id"])))

    async def _create_issue(self, request: web.Request) -> web.Response:
        call = self.calls.get(self._id(request) or -1)
        if call is None:
            return web.json_response(NOT_FOUND, status=404)
        body = check.object_body(request)
        if isinstance(body, web.Response):
            return body
        errs = check.issue_request(body)
        if errs.fields:
            return web.json_response(errs.fields, status=400)
        issue = sc.issue_object(self._next("issue"), call, body, self._now())
        self.issue_reports[issue["id"]] = issue
        call["issue_count"] += 1
        call["critical_issue_count"] += body["severity"] == "critical"
        return web.json_response(issue, status=201)

    # -- lifecycle ---------------------------------------------------------------------

    def _launch(self, run_id: int, delay: float) -> None:
        if self.step_seconds is None:
            return
        task = asyncio.create_task(self._drive(run_id, delay, self.step_seconds))
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)

    async def _drive(self, run_id: int, delay: float, step: float) -> None:
        await asyncio.sleep(delay)
        while self._states[run_id].stage != _DONE:
            await asyncio.sleep(step)
            self._step(run_id)

    def _step(self, run_id: int) -> list[asyncio.Task[None]]:
        """Apply the next lifecycle step; return the webhook deliveries it started."""
        state, run, now = self._states[run_id], self.runs[run_id], self._now()
        scenario, agent = state.scenario, state.target.agent
        tasks: list[asyncio.Task[None]] = []
        if state.stage == _QUEUED and scenario.fails:
            message = sc.FAILED_CALL_MESSAGE
            run.update(status="failed", error_message=message, started_at=now, completed_at=now)
            run["updated_at"] = now
            state.stage = _DONE
            tasks += self._emit(run_id, "test-call.completed", {"test_call_run": run})
            self._batch_progress(run)
        elif state.stage == _QUEUED:
            call_id = self._next("call")
            self.calls[call_id] = sc.call_object(call_id, run, state.target, now)
            run.update(status="in_progress", call_id=call_id, started_at=now, updated_at=now)
            state.stage = _IN_PROGRESS
            if (batch := self.batches.get(run["batch_id"] or -1)) is not None:
                batch["updated_at"] = now
        elif state.stage == _IN_PROGRESS:
            # From the start_time as written, so end_time - start_time is the duration exactly.
            ended = _after(self.calls[run["call_id"]]["start_time"], scenario.duration_seconds)
            minutes, cents = sc.billing(scenario, agent.product)
            entries = sc.transcript(scenario, agent.name, run["direction"])
            self.transcripts[run["call_id"]] = entries
            self.calls[run["call_id"]].update(
                status="completed",
                end_time=ended,
                duration_seconds=scenario.duration_seconds,
                end_reason=scenario.end_reason,
                billable_minutes=minutes,
                billing_total_cents=cents,
                billed_at=ended,
            )
            self.balance_cents -= cents
            run.update(status="completed", duration_seconds=scenario.duration_seconds)
            run.update(transcript=entries, completed_at=ended, updated_at=now)
            state.stage = _COMPLETED
            if not self.grade_before_complete:
                tasks += self._emit(run_id, "test-call.completed", {"test_call_run": run})
            self._batch_progress(run)
        elif state.stage == _COMPLETED and not scenario.graded:
            # `[no-grade]`: the grader never answers; the call stays `pending` a grade.
            state.stage = _DONE
            if self.grade_before_complete:
                tasks += self._emit(run_id, "test-call.completed", {"test_call_run": run})
        elif state.stage == _COMPLETED:
            call = self.calls[run["call_id"]]
            grade = sc.grade_object(self._next("grade"), call["call_id"], scenario, agent.name, now)
            self.grades[grade["id"]] = grade
            self._grade_of_call[call["call_id"]] = grade["id"]
            call.update(grade_score=grade["score"], grade_status="completed", grade_updated_at=now)
            call["call_outcome"] = grade["call_outcome"]
            run.update(grade=grade, updated_at=now)
            state.stage = _DONE
            data = {"call_id": call["call_id"], "agent_name": agent.name, "grade": grade}
            tasks += self._emit(run_id, "call.graded", data)
            if self.grade_before_complete:
                tasks += self._emit(run_id, "test-call.completed", {"test_call_run": run})
        return tasks

    def _batch_progress(self, run: JSON) -> None:
        batch = self.batches.get(run["batch_id"] or -1)
        if batch is None:
            return
        key = "failed_runs" if run["status"] == "failed" else "completed_runs"
        batch[key] += 1
        batch["updated_at"] = self._now()
        if batch["completed_runs"] + batch["failed_runs"] == batch["total_runs"]:
            batch["status"] = "failed" if batch["completed_runs"] == 0 else "completed"
            batch["completed_at"] = batch["updated_at"]


def _after(stamp: str, seconds: int) -> str:
    """An ISO time as written by `iso`, `seconds` later, written the same way."""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"
