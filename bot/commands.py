"""The `/testcall` grammar: command text in, a typed request or a `CommandError` out. No I/O."""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from bot.thunderphone.models import MAX_ID

TargetKind = Literal["agent", "phone_number", "alias"]

USAGE = {
    "run": '/testcall run <target> [outbound|inbound] [--sip] [--caller +E164] "<scenario prompt>"',
    "batch": "/testcall batch <target> [outbound|inbound] [--caller +E164] [--stagger N] "
    '[--repeat K] "<prompt>" "<prompt>" …',
    "suite": "/testcall suite list | show NAME | run NAME [target] [--repeat K] [--stagger N] | "
    "import | export NAME | delete NAME | trend NAME [target] | smoke NAME <target>",
    "smoke": "/testcall smoke <target>",
    "compare": '/testcall compare <suite|"prompt"> <target> <target> … [--repeat K]',
    "alias": "/testcall alias set <name> agent:<id>  ·  /testcall alias list  ·  "
    "/testcall alias remove <name>",
    "audit": "/testcall audit [run-id | batch-id]",
    "budget": "/testcall budget  ·  /testcall budget set day|month $AMOUNT [#channel|here] "
    "[then wait|refuse]  ·  /testcall budget clear day|month [#channel|here]",
    "admin": "/testcall admin show  ·  /testcall admin start|bless|critical "
    "everyone|@person…|@group… [in #channel]  ·  /testcall admin start|bless|critical reset "
    "[in #channel]",
    "help": "/testcall help",
}
TARGET_HELP = "a target is agent:<id>, number:<id> or an alias, like agent:12"
MAX_PROMPT_CHARS = 4000
MAX_STAGGER_SECONDS = 60  # ThunderPhone's limit between the launches of a batch
MAX_REPEAT = 5
MAX_RUNS_PER_REQUEST = 100  # sent as batches of at most 20
DEFAULT_STAGGER_SECONDS = 2
T = TypeVar("T")
_SUITE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ALIAS_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_TARGET_KINDS = {"agent": "agent", "number": "phone_number", "phone_number": "phone_number"}
_BATCH_ID = re.compile(r"^[0-9a-f]{8,32}$")
MIN_BATCH_ID_CHARS = 8  # as a batch's card shows it
_MAX_DIGITS = len(str(MAX_ID))
_SMART_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"'})


class CommandError(Exception):
    """Input the bot cannot act on; `problem` names it, `usage` is the line to show with it."""

    def __init__(self, problem: str, usage: str = "run") -> None:
        super().__init__(problem)
        self.problem = problem
        self.usage = USAGE[usage]


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    id: int | None = None
    alias: str | None = None

    @property
    def label(self) -> str:
        if self.kind == "alias":
            return str(self.alias)
        return f"{'agent' if self.kind == 'agent' else 'number'}:{self.id}"


@dataclass(frozen=True)
class RunCommand:
    target: Target
    prompt: str
    direction: Literal["outbound", "inbound"] = "outbound"
    mode: Literal["bot", "sip"] = "bot"
    caller: str | None = None


@dataclass(frozen=True)
class BatchCommand:
    """Several scenarios against one target; no prompts means "ask for them in a form"."""

    target: Target
    prompts: tuple[str, ...] = ()
    direction: Literal["outbound", "inbound"] = "outbound"
    caller: str | None = None
    stagger: int = DEFAULT_STAGGER_SECONDS
    repeat: int = 1

    @property
    def run_count(self) -> int:
        return len(self.prompts) * self.repeat


@dataclass(frozen=True)
class SuiteList:
    pass


@dataclass(frozen=True)
class SuiteShow:
    name: str


@dataclass(frozen=True)
class SuiteRun:
    name: str
    target: Target | None = None
    repeat: int | None = None
    stagger: int | None = None


@dataclass(frozen=True)
class SuiteImport:
    pass


@dataclass(frozen=True)
class SuiteExport:
    name: str


@dataclass(frozen=True)
class SuiteDelete:
    name: str


@dataclass(frozen=True)
class SuiteTrend:
    name: str
    target: Target | None = None


@dataclass(frozen=True)
class SuiteSmoke:
    """Mark a suite as a target's smoke suite."""

    name: str
    target: Target


@dataclass(frozen=True)
class SmokeCommand:
    target: Target


@dataclass(frozen=True)
class CompareCommand:
    """The same scenarios against several targets: a suite's cases, or one prompt."""

    targets: tuple[Target, ...]
    suite: str | None = None
    prompt: str | None = None
    repeat: int = 1


SuiteCommand = (
    SuiteList
    | SuiteShow
    | SuiteRun
    | SuiteImport
    | SuiteExport
    | SuiteDelete
    | SuiteTrend
    | SuiteSmoke
)
MAX_COMPARE_TARGETS = 5


@dataclass(frozen=True)
class HelpCommand:
    pass


@dataclass(frozen=True)
class AuditCommand:
    """The audit trail of a run (`run_id`), of a batch or compare (`prefix`: its id's start,
    as its card shows it), or of the channel (neither). A number of 8 or more digits may be
    either a run's id or a batch's, so it sets both."""

    run_id: int | None = None
    prefix: str | None = None


@dataclass(frozen=True)
class BudgetShow:
    """Where spend stands against the caps, in the workspace and this channel."""


@dataclass(frozen=True)
class BudgetSet:
    """A spend cap per `period`; `channel` is a channel id, "here" for the channel the command
    was typed in, or None for the whole workspace."""

    period: Literal["day", "month"]
    cents: int
    channel: str | None = None
    over: Literal["wait", "refuse"] = "wait"


@dataclass(frozen=True)
class BudgetClear:
    period: Literal["day", "month"]
    channel: str | None = None


@dataclass(frozen=True)
class AliasSet:
    name: str
    target: Target


@dataclass(frozen=True)
class AliasList:
    pass


@dataclass(frozen=True)
class AliasRemove:
    name: str


Capability = Literal["start", "bless", "critical"]
CAPABILITIES: tuple[Capability, ...] = ("start", "bless", "critical")


@dataclass(frozen=True)
class Who:
    """Who a permission is given to: everyone, or these people and user groups. `labels`
    keeps the names they were typed with (id, name), for the answer and the audit trail."""

    everyone: bool = False
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AdminShow:
    pass


@dataclass(frozen=True)
class AdminSet:
    """Who may `capability` (in `channel`, or the whole workspace); `who` None: back to the
    default (the workspace's rule in a channel, everyone for the workspace). `channel` "here"
    is the channel the command was typed in."""

    capability: Capability
    who: Who | None
    channel: str | None = None


AdminCommand = AdminShow | AdminSet


Command = (
    RunCommand
    | BatchCommand
    | SuiteCommand
    | SmokeCommand
    | CompareCommand
    | HelpCommand
    | AliasSet
    | AliasList
    | AliasRemove
    | AuditCommand
    | BudgetShow
    | BudgetSet
    | BudgetClear
    | AdminCommand
)
VERBS = ("run", "batch", "suite", "smoke", "compare", "alias", "audit", "budget", "admin", "help")


@dataclass(frozen=True)
class _Token:
    text: str
    quoted: bool


def parse_command(text: str) -> Command:
    """Parse what followed `/testcall`. Raises `CommandError` naming the problem."""
    tokens = _tokenize(_clean(text))
    if not tokens or tokens[0].text.lower() in {"help", "-h", "--help"}:
        return HelpCommand()
    verb, rest = tokens[0].text.lower(), tokens[1:]
    if verb == "run":
        return _parse_run(rest)
    if verb == "batch":
        return _parse_batch(rest)
    if verb == "suite":
        return _parse_suite(rest)
    if verb == "smoke":
        if len(rest) != 1 or rest[0].quoted:
            raise CommandError("smoke needs one target, like: smoke agent:12.", "smoke")
        return SmokeCommand(_target_for(rest[0].text, "smoke"))
    if verb == "compare":
        return _parse_compare(rest)
    if verb == "alias":
        return _parse_alias(rest)
    if verb == "audit":
        return _parse_audit(rest)
    if verb == "budget":
        return _parse_budget(rest)
    if verb == "admin":
        return _parse_admin(rest)
    close = difflib.get_close_matches(verb, VERBS, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    raise CommandError(
        f'Unknown command: "{tokens[0].text}".{hint} Try run, batch, suite, smoke, compare, '
        "alias, audit, budget, admin or help.",
        "help",
    )


def parse_target(text: str, *, allow_alias: bool = True) -> Target:
    raw = text.strip()
    if ":" in raw:
        kind_text, _, id_text = raw.partition(":")
        kind = _TARGET_KINDS.get(kind_text.lower())
        if kind is None:
            raise CommandError(f'I couldn\'t read "{raw}": {TARGET_HELP}.')
        noun = "an agent id" if kind == "agent" else "a phone number id"
        number = whole_number(id_text)
        if number is None or number <= 0:
            raise CommandError(
                f'I couldn\'t read "{raw}": {noun} is a number, like {kind_text.lower()}:12.'
            )
        if number > MAX_ID:
            raise CommandError(
                f"There is no {'agent' if kind == 'agent' else 'number'} {_shortened(id_text)}: "
                f"ThunderPhone's ids go up to {MAX_ID}."
            )
        return Target(kind="agent" if kind == "agent" else "phone_number", id=number)
    if raw.isdigit():
        raise CommandError(f'I couldn\'t read "{raw}": say which kind, like agent:{raw}.')
    if allow_alias and _ALIAS_NAME.match(raw.lower()):
        return Target(kind="alias", alias=raw.lower())
    raise CommandError(f'I couldn\'t read "{raw}": {TARGET_HELP}.')


def whole_number(text: str) -> int | None:
    """ASCII digits as a number (of any size), or None. `str.isdigit` alone also takes "²" and
    other digits `int` refuses, and `int` refuses more than a few thousand digits."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= _MAX_DIGITS else MAX_ID + 1


def _shortened(digits: str) -> str:
    """A long number as it can be shown: its first and last digits."""
    return digits if len(digits) <= 40 else f"{digits[:20]}…{digits[-8:]} ({len(digits)} digits)"


def normalise_e164(text: str) -> str:
    """`+1 (415) 555-0123` -> `+14155550123`; raises `CommandError` if it is not E.164."""
    compact = re.sub(r"[\s().-]", "", text)
    if not _E164.match(compact):
        raise CommandError(f'"{text}" is not a phone number in E.164 format, like +14155550123.')
    return compact


def _clean(text: str) -> str:
    # Slack escapes &, < and > in command text; phones may send typographic quotes.
    unescaped = html.unescape(text or "").translate(_SMART_QUOTES)
    # Links and phone numbers Slack formatted: <tel:+1415...|+1415...> -> the label, and
    # <https://example.com> -> the address.
    labelled = re.sub(r"<(?:tel:|mailto:|https?://)[^|>]*\|([^>]*)>", r"\1", unescaped)
    return re.sub(r"<((?:tel:|mailto:|https?://)[^|>]*)>", r"\1", labelled).strip()


# How Slack sends what was picked as one typed (the manifest has it escape mentions): people,
# channels, user groups, @here and the like, and dates, each with the name shown, if any.
_SLACK_MARKUP = re.compile(r"<([@#!])([^<>|]*)(?:\|([^<>]*))?>")
_EVERYONE_MARKUP = re.compile(r"^<!(?:everyone|channel|here)(?:\|[^>]*)?>$")


def _markup_as_typed(match: re.Match[str]) -> str:
    sigil, target, label = match[1], match[2], match[3]
    if sigil == "!" and target.startswith("date^"):
        return label or target
    if sigil == "!" and target.startswith("subteam^"):
        shown = label or target.removeprefix("subteam^")
        return shown if shown.startswith("@") else f"@{shown}"
    if sigil == "!":
        return f"@{label or target}".replace("@@", "@")
    return f"{'@' if sigil == '@' else '#'}{label or target}"


def as_typed(text: str) -> str:
    """Text with Slack's markup for mentions, channels, user groups and dates read back as a
    person typed them: `<@U0LI|li>` -> `@li`, `<#C0QA|voice-qa>` -> `#voice-qa`. A scenario
    prompt is read by the test bot, not by Slack."""
    return _SLACK_MARKUP.sub(_markup_as_typed, text) if "<" in text else text


def _tokenize(text: str) -> list[_Token]:
    # Double quotes group words; apostrophes stay literal, since prompts are full of them.
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        char = text[position]
        if char.isspace():
            position += 1
        elif char == '"':
            end = text.find('"', position + 1)
            if end == -1:
                raise CommandError(
                    'The scenario prompt has an opening quote but no closing one (").'
                )
            tokens.append(_Token(as_typed(text[position + 1 : end]).strip(), quoted=True))
            position = end + 1
        else:
            end = position
            while end < len(text) and not text[end].isspace() and text[end] != '"':
                end += 1
            tokens.append(_Token(text[position:end], quoted=False))
            position = end
    return tokens


RUN_OPTIONS = ("outbound", "inbound", "--sip", "--bot", "--caller")
BATCH_OPTIONS = ("outbound", "inbound", "--caller", "--stagger", "--repeat")


def _unknown_word(word: str, options: tuple[str, ...], usage: str) -> CommandError:
    """An unquoted word that is no option: named, with the option it is closest to, so a typo
    never becomes part of a paid call's prompt."""
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]}?" if close else ""
    kind = "option" if word.startswith("-") else "word"
    return CommandError(
        f'I don\'t know the {kind} "{word}".{hint} Put the scenario prompt in double quotes.',
        usage,
    )


def _parse_run(tokens: list[_Token]) -> RunCommand:
    if not tokens or tokens[0].quoted:
        raise CommandError("Which agent or number should I call? Name a target, like agent:12.")
    target = parse_target(tokens[0].text)
    direction: Literal["outbound", "inbound"] = "outbound"
    mode: Literal["bot", "sip"] = "bot"
    caller: str | None = None
    prompts: list[str] = []
    remaining = iter(tokens[1:])
    for token in remaining:
        word = token.text.lower()
        if token.quoted:
            prompts.append(token.text)
        elif word in {"outbound", "inbound"}:
            direction = "outbound" if word == "outbound" else "inbound"
        elif word == "--sip":
            mode = "sip"
        elif word == "--bot":
            mode = "bot"
        elif word == "--caller":
            number = next(remaining, None)
            if number is None:
                raise CommandError("--caller needs a phone number after it, like +14155550123.")
            caller = normalise_e164(number.text)
        else:
            raise _unknown_word(token.text, RUN_OPTIONS, "run")
    if len(prompts) > 1:
        raise CommandError(
            f"That is {len(prompts)} quoted prompts; a run takes one. For several, use "
            "/testcall batch."
        )
    prompt = prompts[0].strip() if prompts else ""
    if not prompt:
        raise CommandError(
            'A test call needs a scenario prompt in quotes, like "You are a polite caller '
            'asking about refund policy."'
        )
    if len(prompt) > MAX_PROMPT_CHARS:
        raise CommandError(
            f"The scenario prompt is {len(prompt):,} characters; keep it under "
            f"{MAX_PROMPT_CHARS:,}."
        )
    return RunCommand(target=target, prompt=prompt, direction=direction, mode=mode, caller=caller)


def _parse_batch(tokens: list[_Token]) -> BatchCommand:
    if not tokens or tokens[0].quoted:
        raise CommandError(
            "Which agent or number should I call? Name a target, like agent:12.", "batch"
        )
    try:
        target = parse_target(tokens[0].text)
    except CommandError as error:
        raise CommandError(error.problem, "batch") from error
    direction: Literal["outbound", "inbound"] = "outbound"
    caller: str | None = None
    stagger, repeat = DEFAULT_STAGGER_SECONDS, 1
    prompts: list[str] = []
    remaining = iter(tokens[1:])
    for token in remaining:
        word = token.text.lower()
        if token.quoted:
            if not token.text:
                raise CommandError(f"Scenario prompt {len(prompts) + 1} is empty.", "batch")
            if len(token.text) > MAX_PROMPT_CHARS:
                raise CommandError(
                    f"Scenario prompt {len(prompts) + 1} is {len(token.text):,} characters; keep "
                    f"each under {MAX_PROMPT_CHARS:,}.",
                    "batch",
                )
            prompts.append(token.text)
        elif word in {"outbound", "inbound"}:
            direction = "outbound" if word == "outbound" else "inbound"
        elif word == "--sip":
            raise CommandError(
                "Batches are bot-to-bot: ThunderPhone's batch API has no SIP loopback. Use "
                "/testcall run --sip for a SIP call.",
                "batch",
            )
        elif word == "--caller":
            caller = _batch_option(remaining, "--caller", normalise_e164)
        elif word == "--stagger":
            stagger = _batch_option(remaining, "--stagger", _stagger)
        elif word == "--repeat":
            repeat = _batch_option(remaining, "--repeat", _repeat)
        else:
            raise _unknown_word(token.text, BATCH_OPTIONS, "batch")
    command = BatchCommand(target, tuple(prompts), direction, caller, stagger, repeat)
    _check_run_count(command.run_count, "batch")
    return command


def _parse_suite(tokens: list[_Token]) -> SuiteCommand:
    action = tokens[0].text.lower() if tokens else ""
    rest = tokens[1:]
    if action == "list" and not rest:
        return SuiteList()
    if action == "import" and not rest:
        return SuiteImport()
    if action in {"show", "export", "delete"} and len(rest) == 1:
        name = suite_name(rest[0].text)
        if action == "show":
            return SuiteShow(name)
        return SuiteExport(name) if action == "export" else SuiteDelete(name)
    if action == "trend" and 1 <= len(rest) <= 2:
        trend_target = _target_for(rest[1].text, "suite") if len(rest) == 2 else None
        return SuiteTrend(suite_name(rest[0].text), trend_target)
    if action == "smoke" and len(rest) == 2:
        return SuiteSmoke(suite_name(rest[0].text), _target_for(rest[1].text, "suite"))
    if action == "run" and rest:
        name = suite_name(rest[0].text)
        target: Target | None = None
        repeat: int | None = None
        stagger: int | None = None
        remaining = iter(rest[1:])
        for token in remaining:
            word = token.text.lower()
            if word == "--repeat":
                repeat = _batch_option(remaining, "--repeat", _repeat, usage="suite")
            elif word == "--stagger":
                stagger = _batch_option(remaining, "--stagger", _stagger, usage="suite")
            elif word.startswith("--"):
                raise CommandError(f'I don\'t know the option "{token.text}".', "suite")
            elif target is None and not token.quoted:
                try:
                    target = parse_target(token.text)
                except CommandError as error:
                    raise CommandError(error.problem, "suite") from error
            else:
                raise CommandError(f'I couldn\'t read "{token.text}" here.', "suite")
        return SuiteRun(name, target, repeat, stagger)
    raise CommandError("I couldn't read that suite command.", "suite")


def _target_for(text: str, usage: str) -> Target:
    try:
        return parse_target(text)
    except CommandError as error:
        raise CommandError(error.problem, usage) from error


def _parse_compare(tokens: list[_Token]) -> CompareCommand:
    if not tokens:
        raise CommandError(
            "compare needs a suite or a quoted prompt, then two or more targets.", "compare"
        )
    first, rest = tokens[0], tokens[1:]
    suite = None if first.quoted else suite_name(first.text)
    prompt = first.text if first.quoted else None
    if prompt is not None and not prompt:
        raise CommandError("The scenario prompt is empty.", "compare")
    targets: list[Target] = []
    repeat = 1
    remaining = iter(rest)
    for token in remaining:
        if token.text.lower() == "--repeat":
            repeat = _batch_option(remaining, "--repeat", _repeat, usage="compare")
        elif token.text.startswith("--"):
            raise CommandError(f'I don\'t know the option "{token.text}".', "compare")
        else:
            targets.append(_target_for(token.text, "compare"))
    if len(targets) < 2:
        raise CommandError("compare needs at least two targets, like agent:12 agent:13.", "compare")
    if len(targets) > MAX_COMPARE_TARGETS:
        raise CommandError(
            f"compare takes at most {MAX_COMPARE_TARGETS} targets; you named {len(targets)}.",
            "compare",
        )
    if len(set(targets)) != len(targets):
        raise CommandError("Each target may be named once.", "compare")
    return CompareCommand(tuple(targets), suite=suite, prompt=prompt, repeat=repeat)


def suite_name(text: str) -> str:
    """A suite's name as stored: lower case, letters, digits, ".", "-" or "_"."""
    name = text.strip().lower()
    if not _SUITE_NAME.match(name):
        raise CommandError(
            f'"{text}" can\'t be a suite name: use up to 64 letters, digits, ".", "-" or "_".',
            "suite",
        )
    return name


def _batch_option(
    remaining: Iterator[_Token], option: str, read: Callable[[str], T], *, usage: str = "batch"
) -> T:
    value = next(remaining, None)
    if value is None:
        raise CommandError(f"{option} needs a value after it.", usage)
    try:
        return read(value.text)
    except CommandError as error:
        raise CommandError(error.problem, usage) from error


def _stagger(text: str) -> int:
    seconds = whole_number(text)
    if seconds is None or seconds > MAX_STAGGER_SECONDS:
        raise CommandError(
            f"--stagger is the seconds between launches, from 0 to {MAX_STAGGER_SECONDS}; "
            f'"{text}" is not.'
        )
    return seconds


def _repeat(text: str) -> int:
    times = whole_number(text)
    if times is None or not 1 <= times <= MAX_REPEAT:
        raise CommandError(
            f'--repeat is how often each scenario runs, from 1 to {MAX_REPEAT}; "{text}" is not.'
        )
    return times


def _check_run_count(runs: int, usage: str) -> None:
    if runs > MAX_RUNS_PER_REQUEST:
        raise CommandError(
            f"That is {runs} runs; one request holds at most {MAX_RUNS_PER_REQUEST} "
            "(scenarios × --repeat). Split it up.",
            usage,
        )


def check_run_count(runs: int) -> None:
    """A suite run's size, checked like a batch's once the suite is known."""
    _check_run_count(runs, "suite")


def parse_batch_form(
    *, target: str, direction: str, stagger: str, repeat: str, prompts: str
) -> tuple[BatchCommand | None, dict[str, str]]:
    """The batch form's fields, checked like the command; problems keyed by field name
    (target, stagger, repeat, prompts)."""
    problems: dict[str, str] = {}
    read: dict[str, object] = {}
    lines = [" ".join(line.split()) for line in (prompts or "").splitlines()]
    checks: list[tuple[str, Callable[[], object]]] = [
        ("target", lambda: parse_target(target)),
        ("stagger", lambda: _stagger(stagger.strip() or str(DEFAULT_STAGGER_SECONDS))),
        ("repeat", lambda: _repeat(repeat.strip() or "1")),
    ]
    for name, check in checks:
        try:
            read[name] = check()
        except CommandError as error:
            problems[name] = error.problem
    scenarios = tuple(line for line in lines if line)
    too_long = [i for i, line in enumerate(scenarios, start=1) if len(line) > MAX_PROMPT_CHARS]
    if not scenarios:
        problems["prompts"] = "Write at least one scenario, one per line."
    elif too_long:
        problems["prompts"] = f"Scenario {too_long[0]} is over {MAX_PROMPT_CHARS:,} characters."
    elif isinstance(read.get("repeat"), int):
        runs = len(scenarios) * int(str(read["repeat"]))
        if runs > MAX_RUNS_PER_REQUEST:
            problems["prompts"] = (
                f"That is {runs} runs; one request holds at most {MAX_RUNS_PER_REQUEST}."
            )
    if problems:
        return None, problems
    target_read = read["target"]
    assert isinstance(target_read, Target)
    return (
        BatchCommand(
            target=target_read,
            prompts=scenarios,
            direction="inbound" if direction == "inbound" else "outbound",
            stagger=int(str(read["stagger"])),
            repeat=int(str(read["repeat"])),
        ),
        {},
    )


def _parse_alias(tokens: list[_Token]) -> Command:
    action = tokens[0].text.lower() if tokens else ""
    if action == "list" and len(tokens) == 1:
        return AliasList()
    if action in {"remove", "rm", "delete"} and len(tokens) == 2:
        return AliasRemove(name=_alias_name(tokens[1].text))
    if action == "set":
        if len(tokens) != 3:
            raise CommandError(
                "alias set needs a name and a target, like: alias set support agent:12.", "alias"
            )
        name = _alias_name(tokens[1].text)
        try:
            target = parse_target(tokens[2].text, allow_alias=False)
        except CommandError as error:
            raise CommandError(error.problem, "alias") from error
        return AliasSet(name=name, target=target)
    raise CommandError("I couldn't read that alias command.", "alias")


RESERVED_NAMES = frozenset({"agent", "number", *VERBS})


def _alias_name(text: str) -> str:
    name = text.lower()
    if name in RESERVED_NAMES:
        raise CommandError(
            f'"{text}" can\'t be an alias name: it is a word /testcall itself uses.', "alias"
        )
    if len(name) > 32:
        raise CommandError(
            f'"{text}" can\'t be an alias name: it is {len(name)} characters; use up to 32.',
            "alias",
        )
    if not _ALIAS_NAME.match(name):
        raise CommandError(
            f'"{text}" can\'t be an alias name: use letters, digits, ".", "-" or "_", '
            "starting with a letter or digit.",
            "alias",
        )
    return name


_AUDIT_KINDS = ("run", "batch", "compare")


def _parse_audit(tokens: list[_Token]) -> AuditCommand:
    if len(tokens) == 2 and tokens[0].text.lower() in _AUDIT_KINDS:
        tokens = tokens[1:]  # `audit run 7110`, `audit batch 3f9a0c12`, as cards say them
    if not tokens:
        return AuditCommand()
    if len(tokens) > 1:
        raise CommandError("audit takes at most one id: a run's or a batch's.", "audit")
    raw = tokens[0].text.strip()
    text = raw.lower().removeprefix("#")
    for word in _AUDIT_KINDS:
        text = text.removeprefix(f"{word}:")
    number = whole_number(text)
    if number is not None and number > MAX_ID and not _BATCH_ID.match(text):
        raise CommandError(
            f"There is no run {_shortened(text)}: ThunderPhone's ids go up to {MAX_ID}.", "audit"
        )
    if number is not None and number > 0:
        prefix = text if len(text) >= MIN_BATCH_ID_CHARS else None
        return AuditCommand(run_id=number if number <= MAX_ID else None, prefix=prefix)
    if _BATCH_ID.match(text):
        return AuditCommand(prefix=text)
    if re.fullmatch(r"[0-9a-f]+", text) and not text.isdigit():
        problem = (
            f'"{raw}" is too short for a batch id: give at least {MIN_BATCH_ID_CHARS} '
            "characters, as its card shows them."
        )
    else:
        problem = (
            f'I couldn\'t read "{raw}": give a run id, like 7110, or a batch id from its card, '
            "like 3f9a0c12."
        )
    raise CommandError(problem, "audit")


_AMOUNT = re.compile(r"^\$?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?$")
MAX_BUDGET_CENTS = 100_000_000  # $1,000,000


def _parse_budget(tokens: list[_Token]) -> Command:
    action = tokens[0].text.lower() if tokens else ""
    if not tokens or (len(tokens) == 1 and action == "show"):
        return BudgetShow()
    if action not in {"set", "clear"}:
        raise CommandError(
            f'I don\'t know "budget {tokens[0].text}": say budget, budget set or budget clear.',
            "budget",
        )
    rest = tokens[1:]
    period = rest[0].text.lower() if rest else ""
    if period not in {"day", "month"}:
        raise CommandError(
            f"budget {action} needs the period first: day or month, like "
            f"budget {action} day{' $20' if action == 'set' else ''}.",
            "budget",
        )
    read_period: Literal["day", "month"] = "day" if period == "day" else "month"
    rest = rest[1:]
    if action == "clear":
        if len(rest) > 1:
            raise CommandError(
                f'I couldn\'t read "{rest[1].text}": budget clear takes a period and, for a '
                "channel's cap, the channel.",
                "budget",
            )
        return BudgetClear(read_period, _budget_channel(rest[0].text) if rest else None)
    if not rest:
        raise CommandError(
            f"How much? Give the cap in dollars, like budget set {period} $20.", "budget"
        )
    cents = budget_amount(rest[0].text)
    channel: str | None = None
    over: Literal["wait", "refuse"] = "wait"
    remaining = iter(rest[1:])
    for token in remaining:
        word = token.text.lower()
        if word == "then":
            choice = next(remaining, None)
            word = choice.text.lower() if choice is not None else ""
            if word not in {"wait", "refuse"}:
                raise CommandError(
                    "then needs wait (an admin approves each launch over the cap) or refuse "
                    "(launches over the cap are refused).",
                    "budget",
                )
        if word in {"wait", "refuse"}:
            over = "wait" if word == "wait" else "refuse"
        elif channel is None and not token.quoted:
            channel = _budget_channel(token.text)
        else:
            raise CommandError(f'I couldn\'t read "{token.text}" here.', "budget")
    return BudgetSet(read_period, cents, channel, over)


def budget_amount(text: str) -> int:
    """`$20`, `20`, `12.50`, `$1,000` in cents; raises `CommandError` naming the problem."""
    raw = text.strip()
    match = _AMOUNT.match(raw)
    if raw.startswith("-"):
        raise CommandError(f'A cap can\'t be negative: "{raw}". Give dollars, like $20.', "budget")
    if match is None:
        if re.fullmatch(r"\$?\d+\.\d{3,}", raw):
            problem = f'"{raw}" has more than two decimals: give dollars and cents, like $12.50.'
        else:
            problem = f'I couldn\'t read "{raw}" as an amount: give dollars, like $20 or $12.50.'
        raise CommandError(problem, "budget")
    dollars, cents = match.group(1).replace(",", ""), (match.group(2) or "").ljust(2, "0")
    amount = int(dollars) * 100 + int(cents)
    if amount == 0:
        raise CommandError(
            "A cap of $0 would stop every test call; give a positive amount, like $20.", "budget"
        )
    if amount > MAX_BUDGET_CENTS:
        raise CommandError(
            f"{raw} is more than the largest cap I take ($1,000,000); to have no cap, "
            "use budget clear.",
            "budget",
        )
    return amount


def _budget_channel(text: str) -> str:
    return _channel_named(text.strip(), "budget")


_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
# A channel's id as typed: C, G or D, then capitals and digits, at least one a digit (so that a
# word like DAY is not taken for one).
_CHANNEL_ID = re.compile(r"^[CGD](?=[A-Z0-9]*[0-9])[A-Z0-9]{2,}$")
_USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]{2,})(?:\|([^>]*))?>$")
_GROUP_MENTION = re.compile(r"^<!subteam\^(S[A-Z0-9]{2,})(?:\|([^>]*))?>$")
_CHANNEL_MENTION = re.compile(r"^<#([CGD][A-Z0-9]{2,})(?:\|([^>]*))?>$")


def _parse_admin(tokens: list[_Token]) -> AdminCommand:
    """`admin [show]`, `admin start|bless|critical everyone|<people and groups>|reset
    [in #channel]`. People and groups are Slack mentions (`<@U123|maria>`,
    `<!subteam^S123|@qa-leads>`) or ids (U123, S123); a channel is `<#C123|name>`, an id, or
    `here`."""
    words = [token.text for token in tokens]
    if not words or (len(words) == 1 and words[0].lower() == "show"):
        return AdminShow()
    capability = words[0].lower()
    if capability not in CAPABILITIES:
        close = difflib.get_close_matches(capability, ("show", *CAPABILITIES), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise CommandError(
            f'I don\'t know the admin setting "{words[0]}".{hint} Try show, start, bless or '
            "critical.",
            "admin",
        )
    chosen = next(known for known in CAPABILITIES if known == capability)
    rest = words[1:]
    channel: str | None = None
    if len(rest) >= 2 and rest[-2].lower() == "in":
        channel = _admin_channel(rest[-1])
        rest = rest[:-2]
    if any(word.lower() == "in" for word in rest):
        raise CommandError("Put `in #channel` last, with one channel.", "admin")
    if not rest:
        raise CommandError(
            f"Who may {capability}? Say everyone, name people or user groups, or reset.",
            "admin",
        )
    if len(rest) == 1 and rest[0].lower() in {"reset", "default"}:
        return AdminSet(chosen, None, channel)
    rest = ["everyone" if _EVERYONE_MARKUP.match(word) else word for word in rest]
    if len(rest) == 1 and rest[0].lower() in {"everyone", "everybody", "all"}:
        return AdminSet(chosen, Who(everyone=True), channel)
    users: list[str] = []
    groups: list[str] = []
    labels: list[tuple[str, str]] = []
    for word in rest:
        kind, ident, label = _admin_person(word)
        found = users if kind == "user" else groups
        if ident not in found:
            found.append(ident)
            if label:
                labels.append((ident, label))
    who = Who(users=tuple(users), groups=tuple(groups), labels=tuple(labels))
    return AdminSet(chosen, who, channel)


def _admin_person(word: str) -> tuple[Literal["user", "group"], str, str]:
    """(kind, id, the name it was typed with) of a mention or an id."""
    if match := _USER_MENTION.match(word):
        return "user", match[1], (match[2] or "").lstrip("@")
    if match := _GROUP_MENTION.match(word):
        return "group", match[1], (match[2] or "").lstrip("@")
    if _USER_ID.match(word):
        return "user", word, ""
    if _GROUP_ID.match(word):
        return "group", word, ""
    if word.lower() in {"everyone", "everybody", "all", "reset", "default"}:
        raise CommandError(f'"{word}" stands alone: it can\'t be mixed with names.', "admin")
    if word.startswith("@"):
        raise CommandError(
            f"I can't tell who {word} is: pick them from Slack's list as you type @, or give "
            "their member id (U…, from their profile) or the user group's id (S…).",
            "admin",
        )
    raise CommandError(
        f'I couldn\'t read "{as_typed(word)}": name people or user groups with @, or say everyone.',
        "admin",
    )


def _admin_channel(word: str) -> str:
    return _channel_named(word, "admin")


def _channel_named(word: str, usage: str) -> str:
    """A channel named in a command: `here`, a mention Slack sent (`<#C123|name>`) or an id;
    raises `CommandError` naming the word otherwise."""
    if word.lower() in {"here", "this"}:
        return "here"
    if match := _CHANNEL_MENTION.match(word):
        return match[1]
    if _CHANNEL_ID.match(word):
        return word
    raise CommandError(
        f"I can't tell which channel {as_typed(word)} is: pick it from Slack's list as you type "
        "#, give its id (C…, from the channel's details), or say here for this channel.",
        usage,
    )
