"""The sandbox's generated calls and grades read like a person's and a grader's words."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sandbox import tp_scenarios
from bot.sandbox.tp_requests import read_request

AGENTS = ("Support agent", "Support XL")


def spoken(prompt: str, agent: str = "Support agent") -> list[tuple[str, str]]:
    """(who, line) for every generated sentence of a prompt: both directions' transcripts and
    the grade's summary, reasoning and issue titles."""
    scenario = tp_scenarios.plan(prompt)
    lines: list[tuple[str, str]] = []
    for direction in ("outbound", "inbound"):
        for entry in tp_scenarios.transcript(scenario, agent, direction):
            if isinstance(entry["content"], str):
                lines.append((entry["role"], entry["content"]))
    grade = tp_scenarios.grade_object(1, 2, scenario, agent, "2026-12-01T10:00:00.000Z")
    lines += [("grader", grade["summary"]), ("grader", grade["outcome_reasoning"])]
    lines += [("grader", issue["title"]) for issue in grade["detected_issues"]]
    return lines


def problems(line: str) -> list[str]:
    """What makes a generated line read like a template rather than a person."""
    found = []
    if re.search(r"[\[\]{}]", line):
        found.append("a directive tag or placeholder")
    if re.search(r"[.!?,;:]\s*[.!?,;:]", line) or re.search(r"\s[.!?,;:]", line):
        found.append("doubled or detached punctuation")
    if "  " in line or line != line.strip():
        found.append("stray spaces")
    if not re.match(r"[A-Z]", line) or re.search(r"[.!?] [a-z]", line):
        found.append("a sentence without a capital letter")
    if re.search(r"\b[Aa] [aeiou]", line) or re.search(r"\b[Aa]n [b-df-hj-np-tv-z]", line):
        found.append("a wrong article")
    if re.search(r"\b(\w+) \1\b", line, re.IGNORECASE):
        found.append("a doubled word")
    if re.search(r"\b(?:score|say|tool|duration|fail|low|flaky|no-grade)\s*:", line):
        found.append("a directive's words")
    if re.search(r"this is Support agent|Support agent (?:answered|could)", line):
        found.append("the agent's label used as a name")
    return found


@pytest.mark.parametrize(
    ("prompt", "opening", "summary", "reasoning"),
    [
        (
            "[score: 90] You are a polite caller asking about the refund policy for order 12345.",
            "Hi, I'm calling about the refund policy for my order. My order number is 12345.",
            "The caller asked about the refund policy for their order; the support agent "
            "answered clearly.",
            "The caller's question about the refund policy for their order was resolved, and "
            "they ended the call satisfied.",
        ),
        (
            "[score: 92] Book a table for two at 7pm on Friday.",
            "Hi, I'd like to book a table for two at 7pm on Friday.",
            "The caller wanted to book a table for two at 7pm on Friday; the support agent "
            "answered clearly.",
            "The caller's request to book a table for two at 7pm on Friday was resolved, and "
            "they ended the call satisfied.",
        ),
        (
            "You are an angry customer whose internet has been down for three days. "
            "Demand a refund!! [low]",
            "Hi, I'm calling to ask for a refund.",
            "The caller asked for a refund; the support agent could not resolve it.",
            "The caller's request for a refund was not resolved before the call ended.",
        ),
        (
            "[score: 80] [tool: lookup_order order=67890] Ask where order 67890 is.",
            "Hi, I'd like to know where my order is. My order number is 67890.",
            "The caller asked where their order is; the support agent answered clearly.",
            "The caller's question about where their order is was resolved, and they ended "
            "the call satisfied.",
        ),
        (
            "[score: 40] You want to cancel your subscription, and be firm about it.",
            "Hi, I'd like to cancel my subscription.",
            "The caller wanted to cancel their subscription; the support agent could not "
            "resolve it.",
            "The caller's request to cancel their subscription was not resolved before the "
            "call ended.",
        ),
        (
            "[low] Complain about late delivery",
            "Hi, I'm calling about late delivery.",
            "The caller complained about late delivery; the support agent could not resolve it.",
            "The caller's complaint about late delivery was not resolved before the call ended.",
        ),
        (
            "[score: 75] Hmm.",
            "Hi, I have a question.",
            "The caller had a general question; the support agent answered clearly.",
            "The caller's question was resolved, and they ended the call satisfied.",
        ),
    ],
)
def test_refund_booking_and_angry_calls_read_naturally(
    prompt: str, opening: str, summary: str, reasoning: str
) -> None:
    scenario = tp_scenarios.plan(prompt)
    turns = tp_scenarios.transcript(scenario, "Support agent", "outbound")
    caller = [t["content"] for t in turns if t["role"] == "user"]
    assert (
        turns[0]["content"]
        == "Thanks for calling, this is the support agent. How can I help you today?"
    )
    assert caller[0] == opening
    grade = tp_scenarios.grade_object(1, 2, scenario, "Support agent", "now")
    assert (grade["summary"], grade["outcome_reasoning"]) == (summary, reasoning)
    if grade["call_outcome"] == "failure":
        gist = reasoning.removeprefix("The caller's ").split(" was not resolved")[0]
        assert grade["detected_issues"] == [{"title": f"Unresolved {gist}", "severity": "warning"}]
    for _, line in spoken(prompt):
        assert not problems(line), (line, problems(line))


def test_the_agent_follows_up_and_answers_what_was_asked() -> None:
    scenario = tp_scenarios.plan("[score: 88] Ask about the warranty for order 55512.")
    inbound = [t["content"] for t in tp_scenarios.transcript(scenario, "Support XL", "inbound")]
    assert inbound[:3] == [
        "Hello?",
        "Hi, this is Support XL. I'm following up on your question about the warranty for "
        "your order.",
        "Yes, thanks for calling back. My order number is 55512.",
    ]
    answers = {
        "Can you tell me a bit more about that?": (
            "Of course. I can walk you through it step by step."
        ),
        "How long will that take?": "It usually takes three to five business days.",
        "Is there anything else I need to do?": (
            "No, nothing else is needed from you. It's all set on our side."
        ),
        "Okay. And what happens after that?": "You'll get a confirmation by email once it's done.",
    }
    for prompt in ("[score: 90] Ask about invoices.", "[score: 91] Ask to change the PIN."):
        for direction in ("outbound", "inbound"):
            turns = tp_scenarios.transcript(tp_scenarios.plan(prompt), "Support agent", direction)
            lines = [t["content"] for t in turns]
            for question, answer in itertools.pairwise(lines):
                if question in answers:
                    assert answer == answers[question], (prompt, direction)


@pytest.mark.parametrize(
    ("prompt", "topic"),
    [
        ("Ask about refunds.", "refunds"),
        (
            "Roleplay as a customer asking about a refund for order 123456.",
            "a refund for their order",
        ),
        ("Ask about a delayed order 12345.", "their delayed order"),
        ("Ask for the opening hours on Sunday.", "the opening hours on Sunday"),
        ("Ask to speak to a person, then hang up.", "speak to a person"),
        ("Ask when you are open.", "when they are open"),
        ("Ask about your opening hours.", "the opening hours"),
        ("Ask if I can pay by card.", "whether I can pay by card"),
        (
            "Pretend to be an elderly caller who wants to update their address.",
            "update their address",
        ),
        ("Talk about the weather.", "the weather"),
        ("One.", "a general question"),
    ],
)
def test_topics_are_the_prompts_own_words(prompt: str, topic: str) -> None:
    assert tp_scenarios.topic_of(prompt) == topic


def test_a_request_names_the_callers_things_for_each_speaker() -> None:
    request = read_request("You want to return your order 12345 and get a refund.", "12345")
    assert [request.words(who) for who in ("caller", "agent", "grader")] == [
        "return my order and get a refund",
        "return your order and get a refund",
        "return their order and get a refund",
    ]


_FILLER = {"a", "an", "the", "my", "your", "their", "you", "they", "order", "whether", "if"}


def _gist(text: str) -> str:
    """The words of a phrase in order, without the words a speaker swaps (my/your/their,
    you/they, order numbers)."""
    words = re.findall(r"[a-z']+|\d+", text.lower())
    return " " + " ".join(w for w in words if w not in _FILLER and not w.isdigit()) + " "


LEAD_INS = ["", "You are a polite caller. ", "You are an impatient customer. "]
REQUESTS = [
    "Ask about {np}.",
    "You are a polite caller asking about {np}.",
    "Roleplay as a customer asking about {np}.",
    "Call about {np}.",
    "Complain about {np}!",
    "Ask for {np}.",
    "Demand {np}!!",
    "Ask to {vp}.",
    "You want to {vp}.",
    "Pretend to be an elderly caller who wants to {vp}.",
    "Ask where order 67890 is.",
    "Ask whether the store is open on Sunday.",
    "Book a table for two at 7pm.",
    "Say nothing useful.",
]
NOUNS = [
    "the refund policy",
    "a refund",
    "an upgrade",
    "the opening hours on Sunday",
    "a damaged parcel",
    "invoices",
    "the refund policy for order 12345",
    "a refund for order 123456",
    "an invoice, and be polite",
]
VERBS = [
    "change the delivery address",
    "cancel your subscription",
    "update the billing address",
    "speak to a person",
    "reschedule the appointment to next Tuesday",
    "track order 67890",
]
DIRECTIVES = [
    "[fail]",
    "[low]",
    "[score: 55]",
    "[score: 91]",
    "[flaky]",
    "[duration: 90]",
    "[no-grade]",
    "[say: Refunds take five days.]",
    "[say: Your order is on its way.]",
    "[tool: lookup_order order=12345]",
    '[tool: create_ticket note="call back"]',
]


@st.composite
def prompts(draw: Any) -> str:
    sentence = draw(st.sampled_from(REQUESTS)).format(
        np=draw(st.sampled_from(NOUNS)), vp=draw(st.sampled_from(VERBS))
    )
    words = (draw(st.sampled_from(LEAD_INS)) + sentence).split(" ")
    for directive in draw(st.lists(st.sampled_from(DIRECTIVES), max_size=3)):
        words.insert(draw(st.integers(0, len(words))), directive)
    return " ".join(words)


@settings(max_examples=150, deadline=None)
@given(prompts(), st.sampled_from(AGENTS))
def test_every_generated_line_reads_like_a_person_wrote_it(prompt: str, agent: str) -> None:
    lines = spoken(prompt, agent)
    for who, line in lines:
        assert not problems(line), (prompt, who, line, problems(line))
    text = tp_scenarios.directives(prompt).text
    pasted = " ".join(text.split()).rstrip(".!")
    assert all(pasted not in line for who, line in lines if who != "user"), "prompt pasted in"
    topic = tp_scenarios.plan(prompt).topic
    if topic != "a general question":
        assert _gist(topic) in _gist(text), f"{topic!r} is not the prompt's own words"
    for phrase in tp_scenarios.directives(prompt).said:
        assert ("assistant", phrase) in lines
    assert spoken(prompt, agent) == lines, "the same prompt always reads the same"
