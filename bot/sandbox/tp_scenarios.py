"""Deterministic call outcomes for the ThunderPhone sandbox.

Everything here is a pure function of its inputs: the same scenario prompt always yields
the same duration, transcript and grade, so tests and demos are reproducible. The seeded
organization and the other API object shapes (from `tp_objects`) are available here too.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from bot.sandbox.tp_objects import AGENTS as AGENTS
from bot.sandbox.tp_objects import CHARGE_MULTIPLIER as CHARGE_MULTIPLIER
from bot.sandbox.tp_objects import DEMO_CALLER_NUMBER as DEMO_CALLER_NUMBER
from bot.sandbox.tp_objects import JSON as JSON
from bot.sandbox.tp_objects import PHONE_NUMBERS as PHONE_NUMBERS
from bot.sandbox.tp_objects import RATE_CENTS_PER_MINUTE as RATE_CENTS_PER_MINUTE
from bot.sandbox.tp_objects import Agent as Agent
from bot.sandbox.tp_objects import Target as Target
from bot.sandbox.tp_objects import batch_object as batch_object
from bot.sandbox.tp_objects import call_object as call_object
from bot.sandbox.tp_objects import find_target as find_target
from bot.sandbox.tp_objects import iso as iso
from bot.sandbox.tp_objects import issue_object as issue_object
from bot.sandbox.tp_objects import run_object as run_object

FAIL_TAG = "[fail]"
LOW_TAG = "[low]"
FAILED_CALL_MESSAGE = "The agent did not answer (SIP 480 Temporarily Unavailable)."

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
