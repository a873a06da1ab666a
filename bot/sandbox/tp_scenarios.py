"""Deterministic call outcomes for the ThunderPhone sandbox.

Everything here is a pure function of its inputs: the same scenario prompt always yields
the same duration, transcript and grade, so tests and demos are reproducible. The seeded
organization and the other API object shapes (from `tp_objects`) are available here too.

The conversation and the grade are about what the prompt's caller wants, in the prompt's own
words as each speaker would put them (see `tp_requests`): "Ask to change the delivery address."
gives "Hi, I'd like to change the delivery address." and "The caller wanted to change the
delivery address; the support agent answered clearly."

Scenario directives
-------------------
A scenario prompt may carry directives in square brackets that fix parts of the outcome on
purpose, so demos and tests can produce regressions and fixes. Directive names are
case-insensitive, may sit anywhere in the prompt, and are removed from the topic the simulated
conversation is about (and from the text searched for an order number):

- `[fail]`: the run fails before a call exists, with `FAILED_CALL_MESSAGE`.
- `[low]`: a failing grade, score 35-60.
- `[score: N]`: the grade score is exactly N percent (whole number 0-100, a trailing `%` is
  allowed, values above 100 count as 100); wins over `[low]`. The grade's `call_outcome` follows
  the score as always: `success` at 70 or more, else `failure` (and the agent's answers turn
  weak, the grade lists an unresolved-question issue).
- `[say: some phrase]`: the agent (`assistant` role) says the phrase verbatim as one of its
  turns. Several `[say: ...]` directives give one turn each, in order. The phrase may not
  contain square brackets.
- `[tool: NAME key=value ...]`: the transcript has a `tool_call` turn whose content is
  `{"name": NAME, "arguments": {key: value, ...}}` (values are strings; quote a value with spaces,
  `note="two words"`), followed by its `tool_response`. Several `[tool: ...]` directives give
  several calls, in order, made together where the agent first looks something up. Without any
  `[tool: ...]` directive a prompt that mentions an order number (4+ digits) gets the default
  `lookup_order` call with that number; with one, only the directed tools are called.
- `[flaky]`: the outcome alternates between success and failure on successive runs of the same
  prompt (the exact same text) within one sandbox: runs 1, 3, 5, ... pass (score 70-98, or N
  from `[score: N]`), runs 2, 4, ... get a failing grade (score 35-60), so a repeated suite case
  is mixed. The call itself completes either way; `[fail]` still fails every run. `plan` takes
  the 0-based `attempt` number; the sandbox counts runs per prompt.
- `[duration: N]`: the call lasts N seconds (whole number, `s` suffix allowed, kept within
  1-7200); billing (whole minutes, rounded up) and the transcript timing follow.
- `[no-grade]`: the call completes but is never graded: no grade object, no `call.graded`
  webhook, `GET /v1/calls/{id}/grade` stays 404 and the call's `grade_status` stays `pending`
  (a grader that never answers, for testing what waits on a grade).

A directive whose value cannot be read (e.g. `[score: high]`) is ignored but still removed from
the topic. Without `[flaky]`, the same prompt always gives the same outcome.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from dataclasses import dataclass, field

from bot.sandbox.tp_objects import AGENTS as AGENTS
from bot.sandbox.tp_objects import CHARGE_MULTIPLIER as CHARGE_MULTIPLIER
from bot.sandbox.tp_objects import DEMO_CALLER_NUMBER as DEMO_CALLER_NUMBER
from bot.sandbox.tp_objects import JSON as JSON
from bot.sandbox.tp_objects import PHONE_NUMBERS as PHONE_NUMBERS
from bot.sandbox.tp_objects import RATE_CENTS_PER_MINUTE as RATE_CENTS_PER_MINUTE
from bot.sandbox.tp_objects import Agent as Agent
from bot.sandbox.tp_objects import Target as Target
from bot.sandbox.tp_objects import agent_object as agent_object
from bot.sandbox.tp_objects import batch_object as batch_object
from bot.sandbox.tp_objects import call_object as call_object
from bot.sandbox.tp_objects import find_target as find_target
from bot.sandbox.tp_objects import iso as iso
from bot.sandbox.tp_objects import issue_object as issue_object
from bot.sandbox.tp_objects import phone_number_object as phone_number_object
from bot.sandbox.tp_objects import run_object as run_object
from bot.sandbox.tp_requests import AGENT, Request, read_request

FAIL_TAG = "[fail]"
LOW_TAG = "[low]"
FLAKY_TAG = "[flaky]"
NO_GRADE_TAG = "[no-grade]"
FAILED_CALL_MESSAGE = "The agent did not answer (SIP 480 Temporarily Unavailable)."
MAX_DURATION_SECONDS = 7200

_DIRECTIVE_RE = re.compile(
    r"\[\s*(?:(?P<flag>fail|low|flaky|no-grade)\s*|(?P<key>score|say|tool|duration)\s*:(?P<value>[^\[\]]*))\]",
    re.IGNORECASE,
)
_SCORE_RE = re.compile(r"^(\d{1,3})\s*%?$")
_DURATION_RE = re.compile(r"^(\d{1,6})\s*s?$", re.IGNORECASE)
_TOOL_NAME_RE = re.compile(r"^[A-Za-z_][\w.-]*$")
_ORDER_RE = re.compile(r"\d{4,}")


@dataclass(frozen=True)
class ToolUse:
    """One tool call the agent makes during the call."""

    name: str
    arguments: tuple[tuple[str, str], ...] = ()

    def call(self) -> JSON:
        """The content of the `tool_call` transcript turn."""
        return {"name": self.name, "arguments": dict(self.arguments)}

    def result(self) -> JSON:
        """The content of the `tool_response` turn that answers it."""
        arguments = dict(self.arguments)
        if self.name == "lookup_order" and "order" in arguments:
            order = arguments["order"]
            return {"status": "shipped", "order": order, "carrier": "UPS", "eta_days": 2}
        return {"status": "ok", "tool": self.name, **arguments}


@dataclass(frozen=True)
class Directives:
    """The bracketed directives of a prompt (see the module docstring) and the text without them."""

    text: str
    fails: bool = False
    low: bool = False
    flaky: bool = False
    score: int | None = None
    duration_seconds: int | None = None
    said: tuple[str, ...] = ()
    tools: tuple[ToolUse, ...] = ()
    no_grade: bool = False


def directives(prompt: str) -> Directives:
    """Read the directives of a scenario prompt; unreadable values are ignored."""
    flags: set[str] = set()
    score: int | None = None
    duration: int | None = None
    said: list[str] = []
    tools: list[ToolUse] = []
    for match in _DIRECTIVE_RE.finditer(prompt):
        if match.group("flag"):
            flags.add(match.group("flag").lower())
            continue
        key, value = match.group("key").lower(), match.group("value").strip()
        if key == "score" and (number := _SCORE_RE.match(value)):
            score = min(100, int(number.group(1)))
        elif key == "duration" and (number := _DURATION_RE.match(value)):
            duration = min(MAX_DURATION_SECONDS, max(1, int(number.group(1))))
        elif key == "say" and value:
            said.append(value)
        elif key == "tool" and (tool := _tool_use(value)) is not None:
            tools.append(tool)
    return Directives(
        text=_DIRECTIVE_RE.sub(" ", prompt),
        fails="fail" in flags,
        low="low" in flags,
        flaky="flaky" in flags,
        no_grade="no-grade" in flags,
        score=score,
        duration_seconds=duration,
        said=tuple(said),
        tools=tuple(tools),
    )


def _tool_use(value: str) -> ToolUse | None:
    """`lookup_order order=12345 note="two words"` as a ToolUse; None without a valid name."""
    try:
        tokens = shlex.split(value)
    except ValueError:  # an unbalanced quote: fall back to plain words
        tokens = value.split()
    if not tokens or not _TOOL_NAME_RE.match(tokens[0]):
        return None
    arguments: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, argument = token.partition("=")
        if sep and key:
            arguments[key] = argument
    return ToolUse(tokens[0], tuple(arguments.items()))


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
    said: tuple[str, ...] = ()
    tools: tuple[ToolUse, ...] = ()
    flaky: bool = False
    graded: bool = True  # False with `[no-grade]`: the call is never graded
    request: Request = field(default_factory=Request)  # what the caller wants

    @property
    def call_outcome(self) -> str:
        return "success" if self.score >= 70 else "failure"


def plan(prompt: str, attempt: int = 0) -> Scenario:
    """Derive the outcome of a call from its scenario prompt (hash based, never random).

    `attempt` is how many runs of the same prompt came before this one; only `[flaky]` uses it.
    """
    seed = hashlib.sha256(prompt.encode("utf-8")).digest()
    found = directives(prompt)
    low_score = 35 + seed[2] % 26
    if found.flaky and attempt % 2 == 1:
        score = low_score
    elif found.score is not None:
        score = found.score
    elif found.low:
        score = low_score
    elif found.flaky:
        score = 70 + seed[2] % 29
    else:
        score = 62 + seed[2] % 37
    order = _ORDER_RE.search(found.text)
    order_id = order.group(0) if order else None
    default_tools = (ToolUse("lookup_order", (("order", order_id),)),) if order_id else ()
    request = read_request(found.text, order_id)
    return Scenario(
        prompt=prompt,
        fails=found.fails,
        duration_seconds=found.duration_seconds or 35 + int.from_bytes(seed[0:2], "big") % 136,
        score=score,
        end_reason=("caller_hangup", "agent_end")[seed[3] % 2],
        topic=request.topic,
        order_id=order_id,
        seed=seed,
        said=found.said,
        tools=found.tools or default_tools,
        flaky=found.flaky,
        graded=not found.no_grade,
        request=request,
    )


def topic_of(prompt: str) -> str:
    """What the caller wants to talk about, as a grader names it: 'refunds' for 'Ask about
    refunds.', 'change their delivery address' for 'Ask to change the delivery address.'."""
    found = directives(prompt)
    order = _ORDER_RE.search(found.text)
    return read_request(found.text, order.group(0) if order else None).topic


def billing(scenario: Scenario, product: str) -> tuple[int, int]:
    """Billable minutes and total cents (test calls cost the normal rate times two)."""
    minutes = max(1, math.ceil(scenario.duration_seconds / 60))
    return minutes, RATE_CENTS_PER_MINUTE.get(product, 8) * minutes * CHARGE_MULTIPLIER


# What the caller asks after the opening, each with the agent's answer: a helpful one, and
# the weak one of a call that fails its grade.
_FOLLOW_UPS = (
    (
        "Can you tell me a bit more about that?",
        "Of course. I can walk you through it step by step.",
        "Sorry, I don't have any more details on that.",
    ),
    (
        "How long will that take?",
        "It usually takes three to five business days.",
        "I'm not sure. I don't have that information right now.",
    ),
    (
        "Is there anything else I need to do?",
        "No, nothing else is needed from you. It's all set on our side.",
        "I don't know. You may want to call back later.",
    ),
    (
        "Okay. And what happens after that?",
        "You'll get a confirmation by email once it's done.",
        "Sorry, could you repeat that? I didn't catch it.",
    ),
)


def agent_intro(agent_name: str) -> str:
    """How the agent names itself: "the support agent" for an agent called "Support agent",
    else its name ("Support XL")."""
    if re.fullmatch(r"[A-Za-z]+ agent", agent_name, re.IGNORECASE):
        return f"the {agent_name.lower()}"
    return agent_name


def _speech_lines(s: Scenario, agent_name: str, count: int, outbound: bool) -> list[str]:
    """Alternating lines; even indexes belong to whoever speaks first."""
    request, order = s.request, s.order_id
    weak = s.call_outcome == "failure"
    agent = agent_intro(agent_name)
    opening = request.opening()
    if order:
        opening += f" My order number is {order}."
    if outbound:
        lines = [f"Thanks for calling, this is {agent}. How can I help you today?", opening]
    else:
        lines = ["Hello?", f"Hi, this is {agent}. I'm following up on your {request.gist(AGENT)}."]
        if order:
            lines.append(f"Yes, thanks for calling back. My order number is {order}.")
    fixed = set(range(len(lines)))
    if order:
        fixed.add(len(lines))
        lines.append(f"I found order {order}. It has shipped and should arrive in two days.")
    asked: int | None = None  # the follow-up the agent answers next
    rot = s.seed[4]
    while len(lines) < count:
        caller_turn = (len(lines) % 2 == 1) == outbound
        if caller_turn:
            asked = (rot + sum(1 for line in lines if _is_follow_up(line))) % len(_FOLLOW_UPS)
            lines.append(_FOLLOW_UPS[asked][0])
        elif asked is None:
            lines.append(
                "I'm sorry, I'm not sure I can help with that."
                if weak
                else "Sure, I can help with that."
            )
        else:
            lines.append(_FOLLOW_UPS[asked][2 if weak else 1])
            asked = None
    last_is_caller = ((count - 1) % 2 == 1) == outbound
    if last_is_caller:
        lines[count - 1] = (
            "Okay, never mind. Bye." if weak else "Great, that's all I needed. Thanks, bye!"
        )
    else:
        lines[count - 1] = (
            "Sorry, I couldn't help more today. Thanks for calling, goodbye."
            if weak
            else "Thanks for calling. Have a great day, goodbye!"
        )
    lines = _with_phrases(lines[:count], s.said, outbound, fixed)
    if not last_is_caller and len(lines) - 2 not in fixed:
        # The caller's last word before the agent's goodbye closes the call.
        lines[-2] = "Okay, never mind." if weak else "Great, that's all I needed. Thanks!"
    return lines


def _is_follow_up(line: str) -> bool:
    return any(line == question for question, _, _ in _FOLLOW_UPS)


def _with_phrases(
    lines: list[str], said: tuple[str, ...], outbound: bool, fixed: set[int]
) -> list[str]:
    """Give each `[say: ...]` phrase an agent turn: a middle answer, or a new turn near the end."""

    def agent_turn(index: int) -> bool:
        return (index % 2 == 0) == outbound

    slots = [i for i in range(1, len(lines) - 1) if agent_turn(i) and i not in fixed]
    for phrase, index in zip(said, slots, strict=False):
        lines[index] = phrase
        fixed.add(index)
    for phrase in said[len(slots) :]:
        at = len(lines) - 1  # keep the goodbye last; a pair keeps the turns alternating
        pair = [phrase, "Okay, I see."] if agent_turn(at) else ["Okay. Anything else?", phrase]
        lines[at:at] = pair
        fixed.add(at if agent_turn(at) else at + 1)
    return lines


def transcript(s: Scenario, agent_name: str, direction: str) -> list[JSON]:
    """Transcript entries spanning the call; tool turns come where the agent first looks up
    (the order number's `lookup_order` by default, or the `[tool: ...]` directives)."""
    outbound = direction == "outbound"
    total = 5 + s.seed[5] % 5
    with_tools = bool(s.tools)
    speech_count = max(5, total - 2) if with_tools else total
    # The agent looks things up right after the caller's first request.
    tool_index = 2 if outbound else 3
    lines = _speech_lines(s, agent_name, speech_count, outbound)
    lengths = [600 + 320 * len(line.split()) for line in lines]
    call_ms = s.duration_seconds * 1000
    clock = min(300, call_ms // 20)
    budget = call_ms - clock - min(1000, call_ms // 10)
    # Stretch turns towards the call length, keeping some silence between them.
    scale = min(2.5, 0.75 * budget / (sum(lengths) + 1))
    shortest = min(300, budget // (4 * len(lines)))
    lengths = [max(shortest, int(n * scale)) for n in lengths]
    gap = max(min(50, budget // (20 * len(lines))), (budget - sum(lengths)) // len(lines))
    entries: list[JSON] = []
    for index, line in enumerate(lines):
        if with_tools and index == tool_index:
            tool_at = clock - gap // 2
            spacing = min(10, (gap // 2) // (2 * len(s.tools)))
            for number, tool in enumerate(s.tools):
                call_at = tool_at + 2 * number * spacing
                entries.append(_entry("tool_call", tool.call(), call_at, call_at))
                answer_at = call_at + spacing
                entries.append(_entry("tool_response", tool.result(), answer_at, answer_at))
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
    request, agent = s.request, agent_intro(agent_name)
    gist = request.gist()
    if ok:
        summary = f"The caller {request.asked()}; {agent} answered clearly."
        reasoning = f"The caller's {gist} was resolved, and they ended the call satisfied."
        issues: list[JSON] = []
    else:
        summary = f"The caller {request.asked()}; {agent} could not resolve it."
        reasoning = f"The caller's {gist} was not resolved before the call ended."
        issues = [{"title": f"Unresolved {gist}", "severity": "warning"}]
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
