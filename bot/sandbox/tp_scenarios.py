"""Deterministic call outcomes and API object shapes for the ThunderPhone sandbox.

Everything here is a pure function of its inputs: the same scenario prompt always yields
the same duration, transcript and grade, so tests and demos are reproducible.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JSON = dict[str, Any]

FAIL_TAG = "[fail]"
LOW_TAG = "[low]"
FAILED_CALL_MESSAGE = "The agent did not answer (SIP 480 Temporarily Unavailable)."
CHARGE_MULTIPLIER = 2
RATE_CENTS_PER_MINUTE = {"spark": 8, "bolt": 10}
DEMO_CALLER_NUMBER = "+14155550199"

_ORDER_RE = re.compile(r"\d{4,}")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'-]+")
# Words that describe the role-play rather than what the caller wants.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "with",
        "about",
        "from",
        "as",
        "by",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "am",
        "do",
        "does",
        "did",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "may",
        "might",
        "must",
        "you",
        "your",
        "yours",
        "i",
        "me",
        "my",
        "we",
        "our",
        "they",
        "them",
        "their",
        "he",
        "she",
        "his",
        "her",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "there",
        "here",
        "what",
        "which",
        "who",
        "whom",
        "when",
        "where",
        "why",
        "how",
        "roleplay",
        "role-play",
        "play",
        "pretend",
        "act",
        "acting",
        "as",
        "customer",
        "caller",
        "user",
        "someone",
        "person",
        "who's",
        "calling",
        "call",
        "calls",
        "asking",
        "ask",
        "asks",
        "asked",
        "wants",
        "want",
        "wanting",
        "need",
        "needs",
        "try",
        "tries",
        "trying",
        "order",
        "number",
        "please",
        "then",
        "also",
        "very",
        "really",
        "just",
        "some",
        "any",
        "into",
        "like",
    ]
)


@dataclass(frozen=True)
class Agent:
    """An agent the sandbox organization owns."""

    id: int
    name: str
    product: str
    number: str


@dataclass(frozen=True)
class Target:
    """What a test call dials: an agent directly or a phone number routed to an agent."""

    type: str
    id: int
    name: str
    agent: Agent


AGENTS = {
    12: Agent(12, "Support agent", "spark", "+14155550123"),
    14: Agent(14, "Sales agent", "bolt", "+14155550124"),
}
PHONE_NUMBERS = {34: Target("phone_number", 34, "Main line", AGENTS[12])}


def find_target(target_type: str, target_id: int) -> Target | None:
    """Return the seeded target, or None when the organization has no such id."""
    if target_type == "agent" and target_id in AGENTS:
        agent = AGENTS[target_id]
        return Target("agent", agent.id, agent.name, agent)
    if target_type == "phone_number":
        return PHONE_NUMBERS.get(target_id)
    return None


@dataclass(frozen=True)
class Scenario:
    """The outcome a scenario prompt leads to."""

    prompt: str
    fails: bool
    duration_seconds: int
    score: int
    end_reason: str
    topic: str
    order_id: str | None
    seed: bytes

    @property
    def call_outcome(self) -> str:
        return "success" if self.score >= 70 else "failure"


def plan(prompt: str) -> Scenario:
    """Derive the outcome of a call from its scenario prompt (hash based, never random)."""
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    low = LOW_TAG in prompt.lower()
    score = 35 + seed[2] % 26 if low else 62 + seed[2] % 37
    order = _ORDER_RE.search(prompt)
    return Scenario(
        prompt=prompt,
        fails=FAIL_TAG in prompt.lower(),
        duration_seconds=35 + int.from_bytes(seed[0:2], "big") % 136,
        score=score,
        end_reason=("caller_hangup", "agent_end")[seed[3] % 2],
        topic=topic_of(prompt),
        order_id=order.group(0) if order else None,
        seed=seed,
    )


def topic_of(prompt: str) -> str:
    """The few content words of a prompt, e.g. 'refunds' for 'Ask about refunds.'."""
    text = prompt.replace(FAIL_TAG, " ").replace(LOW_TAG, " ")
    words = [w.lower() for w in _WORD_RE.findall(text) if w.lower() not in _STOPWORDS]
    unique = list(dict.fromkeys(words))[:4]
    return " ".join(unique) if unique else "a general question"


def billing(scenario: Scenario, product: str) -> tuple[int, int]:
    """Billable minutes and total cents (test calls cost the normal rate times two)."""
    minutes = max(1, math.ceil(scenario.duration_seconds / 60))
    return minutes, RATE_CENTS_PER_MINUTE.get(product, 8) * minutes * CHARGE_MULTIPLIER


def _speech_lines(s: Scenario, agent_name: str, count: int, outbound: bool) -> list[str]:
    """Alternating lines; even indexes belong to whoever speaks first."""
    topic, order = s.topic, s.order_id
    weak = s.call_outcome == "failure"
    answers = [
        f"Sure. For {topic}, I can walk you through it step by step.",
        f"Good question. Our policy on {topic} is explained on your account page too.",
        "That usually takes three to five business days.",
        "Nothing else is needed from you; it is all set on our side.",
    ]
    if weak:
        answers = [
            f"I'm not sure I can help with {topic}, sorry.",
            "Could you repeat that? I didn't catch it.",
            "I don't have that information right now.",
            "You may want to call back later.",
        ]
    follow_ups = [
        f"Can you tell me more about {topic}?",
        "How long will that take?",
        "Is there anything else I need to do?",
        "Okay. And what happens after that?",
    ]
    opening = f"Hi, I'm calling about {topic}."
    if order:
        opening += f" My order number is {order}."
    if outbound:
        lines = [f"Thanks for calling, this is {agent_name}. How can I help you today?", opening]
    else:
        lines = ["Hello?", f"Hi, this is {agent_name}. I'm following up about {topic}."]
        if order:
            lines.append(f"Yes, thanks for calling back. My order number is {order}.")
    if order:
        lines.append(f"I found order {order}. It has shipped and should arrive in two days.")
    rot = s.seed[4]
    while len(lines) < count:
        caller_turn = (len(lines) % 2 == 1) == outbound
        pool = follow_ups if caller_turn else answers
        lines.append(pool[(rot + len(lines)) % len(pool)])
    last_is_caller = ((count - 1) % 2 == 1) == outbound
    if last_is_caller:
        lines[-1] = "Great, that's all I needed. Thanks, bye!" if not weak else "Okay, never mind."
    else:
        lines[-1] = "Thanks for calling. Have a great day, goodbye!"
    return lines[:count]


def transcript(s: Scenario, agent_name: str, direction: str) -> list[JSON]:
    """Transcript entries spanning the call; tool turns appear when an order id is mentioned."""
    outbound = direction == "outbound"
    total = 5 + s.seed[5] % 5
    with_tools = s.order_id is not None
    speech_count = max(5, total - 2) if with_tools else total
    # The agent looks the order up right after the caller mentions it.
    tool_index = 2 if outbound else 3
    lines = _speech_lines(s, agent_name, speech_count, outbound)
    lengths = [600 + 320 * len(line.split()) for line in lines]
    budget = s.duration_seconds * 1000 - 1300
    # Stretch turns towards the call length, keeping some silence between them.
    scale = min(2.5, 0.75 * budget / (sum(lengths) + 1))
    lengths = [max(300, int(n * scale)) for n in lengths]
    gap = max(50, (budget - sum(lengths)) // len(lines))
    entries: list[JSON] = []
    clock = 300
    for index, line in enumerate(lines):
        if with_tools and index == tool_index:
            tool_at = clock - gap // 2
            call = {"name": "lookup_order", "arguments": {"order": s.order_id}}
            result = {"status": "shipped", "order": s.order_id, "carrier": "UPS", "eta_days": 2}
            entries.append(_entry("tool_call", call, tool_at, tool_at))
            entries.append(_entry("tool_response", result, tool_at + 10, tool_at + 10))
        first_speaker = "assistant" if outbound else "user"
        other = "user" if outbound else "assistant"
        role = first_speaker if index % 2 == 0 else other
        entries.append(_entry(role, line, clock, clock + lengths[index]))
        clock += lengths[index] + gap
    return entries


def _entry(role: str, content: str | JSON, start_ms: int, end_ms: int) -> JSON:
    kind = "text/plain" if isinstance(content, str) else "application/json"
    return {
        "role": role,
        "content_type": kind,
        "content": content,
        "start_ms": start_ms,
        "end_ms": end_ms,
    }


def _nulls(*names: str) -> JSON:
    return dict.fromkeys(" ".join(names).split())


def iso(ts: float) -> str:
    """ISO 8601 UTC with milliseconds and a Z suffix."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def run_object(run_id: int, target: Target, body: JSON, batch_id: int | None, now: str) -> JSON:
    """A run in the superset shape both the docs and the SDK accept."""
    rate = RATE_CENTS_PER_MINUTE.get(target.agent.product, 8)
    return {
        "id": run_id,
        "target_type": target.type,
        "target_id": target.id,
        "target_name": target.name,
        "agent_name": target.agent.name,
        "direction": body.get("direction", "outbound"),
        "target_number": body.get("target_number") or "",
        "scenario_prompt": body.get("scenario_prompt") or "",
        "mode": body.get("mode", "bot"),
        "status": "queued",
        "charge_multiplier": CHARGE_MULTIPLIER,
        "estimated_cost_cents": rate * CHARGE_MULTIPLIER,
        "batch_id": batch_id,
        "error_message": "",
        **_nulls(
            "call_id sip_call_id duration_seconds recording_url grade requested_by_id",
            "started_at completed_at",
        ),
        "transcript": [],
        "metadata": {},
        "created_at": now,
        "updated_at": now,
    }


def batch_object(
    batch_id: int, body: JSON, prompts: list[str], run_ids: list[int], now: str
) -> JSON:
    """A batch in the superset shape; `run_ids` lists the child runs."""
    target = find_target(body["target_type"], body["target_id"])
    assert target is not None
    per_run = RATE_CENTS_PER_MINUTE.get(target.agent.product, 8) * CHARGE_MULTIPLIER
    return {
        "id": batch_id,
        "name": body.get("name") or "",
        "target_type": target.type,
        "target_id": target.id,
        "target_number": body.get("target_number") or "",
        "direction": body.get("direction", "outbound"),
        "run_count": len(run_ids),
        "stagger_seconds": body.get("stagger_seconds", 5),
        "scenario_prompts": prompts,
        "matrix_dimensions": {},
        "status": "in_progress",
        "total_runs": len(run_ids),
        "completed_runs": 0,
        "failed_runs": 0,
        "run_ids": run_ids,
        "estimated_cost_cents": per_run * len(run_ids),
        "estimated_minutes": len(run_ids),
        "error_message": "",
        **_nulls("requested_by_id completed_at"),
        "started_at": now,
        "created_at": now,
        "updated_at": now,
    }


def call_object(call_id: int, run: JSON, target: Target, now: str) -> JSON:
    """An in-progress test call in the superset shape."""
    outbound = run["direction"] == "outbound"
    caller = run["target_number"] or DEMO_CALLER_NUMBER
    agent = target.agent
    return {
        "call_id": call_id,
        "agent_id": agent.id,
        **_nulls(
            "agent_variant_id agent_variant_label end_time duration_seconds recording_url",
            "recording_retention_notice billable_minutes billing_total_cents billed_at",
            "grade_score grade_updated_at call_outcome goal_achievement goal_reasoning",
            "cloud_run_execution_name collected_values extracted_data livekit_room_sid",
            "steps_trace transfer_bridge_kind transfer_bridge_seconds",
            "transfer_bridge_total_cents transfer_outcome transfer_sip_status",
        ),
        "direction": run["direction"],
        "from_number": caller if outbound else agent.number,
        "to_number": agent.number if outbound else caller,
        "start_time": now,
        "status": "in_progress",
        "end_reason": "",
        "recording_mode": "recording",
        "recording_policy": {},
        "recording_started_at": now,
        "is_test_call": True,
        "is_simulation": False,
        "is_scenario_call": False,
        "product": agent.product,
        "voice": "en-US-James1",
        "locale": "en-US",
        "thinking_level": "",
        "grade_status": "pending",
        "issue_count": 0,
        "critical_issue_count": 0,
        "consent_evidence": {},
        "livekit_room_name": f"call-{call_id}",
        "outbound_dial_state": "answered",
        "prompt_snapshot": "",
        "sip_answered_at": now,
        "tool_snapshot": [],
        "transfer_destination": "",
        "unresolved_variables": [],
        "variables": {},
    }


def grade_object(grade_id: int, call_id: int, s: Scenario, agent_name: str, now: str) -> JSON:
    """A completed AI grade whose score and wording follow from the scenario."""
    ok = s.call_outcome == "success"
    if ok:
        summary = f"The caller asked about {s.topic}; {agent_name} answered clearly."
        reasoning = f"The question about {s.topic} was resolved and the caller ended satisfied."
        issues: list[JSON] = []
    else:
        summary = f"The caller asked about {s.topic}; {agent_name} could not resolve it."
        reasoning = f"The caller did not get an answer about {s.topic} before the call ended."
        issues = [{"title": f"Unresolved question about {s.topic}", "severity": "warning"}]
    spread = s.seed[6] % 7
    return {
        "id": grade_id,
        "call_id": call_id,
        "status": "completed",
        "score": s.score,
        "summary": summary,
        "call_outcome": s.call_outcome,
        "outcome_reasoning": reasoning,
        "goal_achievement": "achieved" if ok else "missed",
        "goal_reasoning": "",
        "caller_welfare_violation": False,
        "caller_welfare_reasoning": "",
        "detected_issues": issues,
        "rubric_breakdown": {
            "accuracy": min(100, s.score + spread),
            "tone": min(100, s.score + 2),
            "resolution": max(0, s.score - spread),
        },
        "grader_model": "grader-full",
        "grader_version": "1",
        "error_message": None,
        "graded_at": now,
        "created_at": now,
        "updated_at": now,
    }


def issue_object(issue_id: int, call: JSON, body: JSON, now: str) -> JSON:
    """A user-filed issue report; `body` has been validated and defaulted."""
    turn = body["failing_turn_index"]
    fields = ("title", "description", "severity", "source", "timestamp_seconds", "metadata")
    return {
        "id": issue_id,
        "call_id": call["call_id"],
        "agent_id": call["agent_id"],
        "call_start_time": call["start_time"],
        **{name: body[name] for name in fields},
        "status": "open",
        "failing_turn_index": turn,
        "relevant_turn_indices": [] if turn is None else [turn],
        "detected_issue_ref": body.get("detected_issue_ref"),
        **dict.fromkeys(("evidence", "what_went_wrong", "suggested_fix"), ""),
        **_nulls("reported_by_id cluster_id"),
        "linked_test_cases": [],
        "regression_guarded": False,
        "trace_id": str(uuid.uuid4()),
        "created_at": now,
        "updated_at": now,
    }
