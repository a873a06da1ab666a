"""What the caller of a sandbox call wants, read from the scenario prompt, and how the caller,
the agent and the grader each put it in words.

A prompt is written for the simulated caller ("You are a polite caller asking about the refund
policy for order 12345.", "Ask to change the delivery address.", "Book a table for two."). The
first sentence that says what the caller wants gives the request: a question about something,
a request for something, a question of where/when/whether..., or something to do. Its words are
the prompt's own (order numbers become "my order", "your order", "their order" as the speaker
needs), so the generated sentences read like a person's, never like the prompt pasted in. A
prompt that says nothing readable about what the caller wants gives a general question.

Everything here is a pure function of the prompt text (without its directives).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ABOUT, FOR, ASK, DO, GENERAL = "about", "for", "ask", "do", "general"
CALLER, AGENT, GRADER = "caller", "agent", "grader"
# Placeholders in a request's phrase, and what each speaker says for them: the caller's own
# things ("{poss} order"), and the business called ("{biz} opening hours", "when {you} are open").
_SAY = {
    CALLER: {"{poss}": "my", "{biz}": "your", "{you}": "you"},
    AGENT: {"{poss}": "your", "{biz}": "our", "{you}": "we"},
    GRADER: {"{poss}": "their", "{biz}": "the", "{you}": "they"},
}
_MAX_WORDS = 12
# Verbs an imperative prompt starts with ("Book a table.", "Cancel your subscription.").
_IMPERATIVE_VERBS = (
    "activate|add|apply|arrange|book|buy|cancel|change|check|claim|close|collect|"
    "confirm|correct|delete|discuss|dispute|downgrade|exchange|extend|file|find|fix|"
    "get|join|leave|make|move|open|order|pause|pay|postpone|redeem|register|reinstate|"
    "remove|renew|reopen|repair|replace|report|request|reschedule|reset|resume|return|"
    "schedule|sign|speak|start|stop|switch|talk|track|transfer|unlock|update|upgrade|"
    "verify"
)
_ABOUT_VERBS = {
    "ask": "asked",
    "call": "called",
    "complain": "complained",
    "enquire": "asked",
    "inquire": "asked",
    "talk": "talked",
    "question": "asked",
}
_PATTERNS = [
    (
        ASK,
        re.compile(
            r"\b(?:ask(?:s|ing|ed)?|find(?:ing)? out|wonder(?:s|ing)?|know)\s+"
            r"(?P<phrase>(?:where|when|whether|if|how|why|what|which|who)\b.*)",
            re.IGNORECASE,
        ),
    ),
    (
        ABOUT,
        re.compile(
            r"\b(?P<verb>ask|call|complain|enquire|inquire|talk|question)(?:s|ing|ed)?\s+"
            r"about\s+(?P<phrase>.+)",
            re.IGNORECASE,
        ),
    ),
    (
        FOR,
        re.compile(
            r"\b(?:ask(?:s|ing|ed)?\s+for|(?:request|demand|want|need)(?:s|ing|ed)?(?=\s+"
            r"(?:a|an|the|some|my|your|their|his|her|our)\b))\s+(?P<phrase>.+)",
            re.IGNORECASE,
        ),
    ),
    (
        DO,
        re.compile(
            r"\b(?:ask(?:s|ing|ed)?|want(?:s|ing|ed)?|need(?:s|ing|ed)?|tr(?:y|ies|ying)|"
            r"(?:would|'d) like|hop(?:e|es|ing)|call(?:s|ing)?)\s+to\s+(?P<phrase>[a-z].*)",
            re.IGNORECASE,
        ),
    ),
    (
        DO,
        re.compile(rf"^(?P<phrase>(?:{_IMPERATIVE_VERBS})\b.*)", re.IGNORECASE),
    ),
    (ABOUT, re.compile(r"^(?P<verb>ask)\s+(?P<phrase>(?!about\b|for\b|to\b).+)", re.IGNORECASE)),
]
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
# Where a request stops: the next clause, condition or instruction to the caller.
_CLAUSE_END = re.compile(
    r"[,;:()\"“”]|\s[-–—]\s|\b(?:and then|then|but|if|because|while|so that|unless|and be|"
    r"and act|and sound|and insist|and keep)\b",
    re.IGNORECASE,
)
_TRAILING = re.compile(
    r"(?:\s+(?:please|a|an|the|and|or|of|for|to|in|on|at|with|about|\{poss\}|\{biz\}))+$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Request:
    """What the caller wants: ``kind`` (about, for, ask, do or general) and ``phrase``, the
    prompt's words for it, with ``{poss}`` where the caller's own things are named."""

    kind: str = GENERAL
    phrase: str = ""
    verb: str = "ask"  # for ``about``: the prompt's verb (ask, call, complain, ...)

    def words(self, speaker: str) -> str:
        """The phrase as ``speaker`` (caller, agent or grader) says it: "my order" for the
        caller is "your order" for the agent and "their order" for the grader."""
        phrase = self.phrase
        for placeholder, said in _SAY[speaker].items():
            phrase = phrase.replace(placeholder, said)
        return phrase

    @property
    def topic(self) -> str:
        """What the call is about, as a grader names it: "the refund policy for their order"."""
        return self.words(GRADER) if self.kind != GENERAL else "a general question"

    def opening(self) -> str:
        """The caller's first request, e.g. "Hi, I'd like to change my delivery address."."""
        phrase = self.words(CALLER)
        return {
            ABOUT: f"Hi, I'm calling about {phrase}.",
            FOR: f"Hi, I'm calling to ask for {phrase}.",
            ASK: f"Hi, I'd like to know {phrase}.",
            DO: f"Hi, I'd like to {phrase}.",
        }.get(self.kind, "Hi, I have a question.")

    def gist(self, speaker: str = GRADER) -> str:
        """A noun phrase for the request: "question about refunds", "request to cancel their
        subscription"."""
        phrase = self.words(speaker)
        return {
            ABOUT: f"{'complaint' if self.verb == 'complain' else 'question'} about {phrase}",
            FOR: f"request for {phrase}",
            ASK: f"question about {phrase}",
            DO: f"request to {phrase}",
        }.get(self.kind, "question")

    def asked(self) -> str:
        """What the caller did, for a grader's summary: "asked about refunds"."""
        phrase = self.words(GRADER)
        return {
            ABOUT: f"{_ABOUT_VERBS.get(self.verb, 'asked')} about {phrase}",
            FOR: f"asked for {phrase}",
            ASK: f"asked {phrase}",
            DO: f"wanted to {phrase}",
        }.get(self.kind, "had a general question")


def read_request(text: str, order_id: str | None = None) -> Request:
    """The request of a prompt without its directives; ``order_id``, when the prompt names an
    order, is put as the caller's order."""
    second_person = bool(re.match(r"\s*(?:you|you're)\b", text, re.IGNORECASE))
    for sentence in _SENTENCES.split(text.strip()):
        sentence = " ".join(sentence.split())
        found = [
            (index, match.start(), kind, match)
            for index, (kind, pattern) in enumerate(_PATTERNS)
            if (match := pattern.search(sentence))
        ]
        for _, _, kind, match in sorted(found, key=lambda item: item[:2]):
            phrase = _phrase(match.group("phrase"), order_id, second_person=second_person)
            if not phrase:
                continue
            if kind == DO:
                phrase = phrase[0].lower() + phrase[1:]
            elif kind == ASK:
                phrase = re.sub(r"^if\b", "whether", phrase, flags=re.IGNORECASE)
            verb = (match.groupdict().get("verb") or "ask").lower()
            return Request(kind, phrase, verb)
    return Request()


_ORDER_WORDS = r"\border\s+(?:number\s+|no\.?\s*|#\s*)?#?"
_DETERMINER = r"\b(?:a|an|the|my|your|their|this|that)\s+"
# Up to two words between a determiner and "order" ("a delayed order"), never a preposition.
_ADJECTIVES = r"(?P<adjectives>(?:(?!(?:for|of|on|about|with|to|in|from|at|by)\b)[\w-]+\s+){0,2}?)"


def _phrase(raw: str, order_id: str | None, *, second_person: bool) -> str:
    """The request's words: up to the end of its clause, without trailing filler, with the
    caller's and the business's things marked for each speaker to name."""
    cut = _CLAUSE_END.search(raw, 1)
    words = (raw[: cut.start()] if cut else raw).split()[:_MAX_WORDS]
    phrase = " ".join(words).rstrip(" .!?,;:-–—…'\"")
    if order_id:
        number = re.escape(order_id) + r"\b"
        phrase = re.sub(
            f"(?:{_DETERMINER}{_ADJECTIVES})?{_ORDER_WORDS}{number}",
            lambda match: "{poss} " + (match.group("adjectives") or "") + "order",
            phrase,
            flags=re.IGNORECASE,
        )
        phrase = re.sub(rf"#?{number}", "{poss} order", phrase)
    phrase = re.sub(r"\b(?:my|their)\b", "{poss}", phrase, flags=re.IGNORECASE)
    if second_person:
        phrase = re.sub(r"\byour\b", "{poss}", phrase, flags=re.IGNORECASE)
    else:
        phrase = re.sub(r"\byour\b", "{biz}", phrase, flags=re.IGNORECASE)
        phrase = re.sub(r"\byou\b", "{you}", phrase, flags=re.IGNORECASE)
    return _TRAILING.sub("", phrase).strip()
