"""Any text at all: the command grammar answers with a command or a clear refusal, and every
builder that shows a person's or a transcript's words gives Block Kit that Slack accepts, within
its limits, with those words escaped and no section left empty."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from thunderphone.webhooks import compute_signature

from bot.audit import Trail
from bot.batch_report import Row
from bot.blocks import batches, notes, replies, suite_replies
from bot.blocks import compare as compare_blocks
from bot.blocks.audit import audit_trail
from bot.blocks.home import home_view
from bot.blocks.modals import TURNS_PER_PAGE, flag_modal, transcript_modal
from bot.blocks.notices import shortened
from bot.blocks.runs import launch_card, run_card, run_result
from bot.blocks.suites import regression_summary
from bot.commands import USAGE, Command, CommandError, parse_batch_form, parse_command
from bot.compare import CompareView, Proposal, best_marks
from bot.expectations import Expected
from bot.routing import decode, unreadable
from bot.suites import Suite, SuiteCase, SuiteSettings
from bot.thunderphone import PendingCheck, sign_v1, start_webhook_check, verify_webhook
from bot.verdicts import Counts, Divergence, Shift, Verdict
from storage.models import BatchItem, BatchPart, FlagRecord, GradeRecord
from tests.test_audit import event as audit_event
from tests.test_blocks import (
    BATCH,
    COMPARE,
    COMPARE_TARGETS,
    LAUNCH,
    THRESHOLD,
    batch_report,
    compare_target,
    make_run,
)
from tests.test_suite_blocks import LABEL as SUITE_LABEL
from tests.test_suite_blocks import change as suite_change

FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Pieces people and transcripts really type, and the ones that would do harm unescaped.
ATOMS = st.sampled_from(
    [
        "<", ">", "&", "&amp;", "&lt;", "<!channel>", "<!here>", "<@U0EVIL>", "<#C0EVIL>",
        "<https://evil.example|innocent>", "*", "_", "~", "`", '"', "“", "”", "\n", " ", "\t",
        ":", "|", "é", "😀", "\u200b", "\x00", "a", "agent:12", "--repeat", "2",
    ]
)  # fmt: skip
HOSTILE = st.one_of(
    st.text(max_size=40),
    st.lists(ATOMS, max_size=40).map("".join),
    st.tuples(st.lists(ATOMS, min_size=1, max_size=4).map("".join), st.integers(1, 2000)).map(
        lambda pair: pair[0] * pair[1]
    ),
)

# The only `<…>` the bot writes itself: its mentions of the fixtures' people, dates and links
# to Slack messages (and `>` opening a quoted line). Anything else in mrkdwn came from outside
# and should have been escaped.
OWN_MARKUP = re.compile(
    r"(?m)^>|<@U0(?:MARIA|LI)>|<#C0QA>|<!date\^\d+\^[^|<>]*\|[^<>]*>|<https://slack\.com/archives/[^|<>]*\|[^<>]*>"
)
LOOSE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def _walk(value: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        found.append(value)
        for item in value.values():
            found += _walk(item)
    elif isinstance(value, list):
        for item in value:
            found += _walk(item)
    return found


def check_mrkdwn(text: str, where: str) -> None:
    assert text.strip(), f"empty text in {where}"
    rest = OWN_MARKUP.sub("", text)
    assert "<" not in rest and ">" not in rest, f"unescaped markup in {where}: {text[:300]!r}"
    assert not LOOSE_AMPERSAND.search(rest), f"unescaped & in {where}: {text[:300]!r}"


def check_blocks(blocks: list[dict[str, Any]], *, most: int) -> None:
    assert 0 < len(blocks) <= most
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block.get("type")
        parsed.to_dict()  # runs slack_sdk's validators
    for node in _walk(blocks):
        kind = node.get("type")
        if kind == "section" and "text" in node:
            assert len(node["text"]["text"]) <= 3000
        if kind == "context":
            assert 0 < len(node["elements"]) <= 10
            assert all(len(element.get("text", "")) <= 2000 for element in node["elements"])
        if kind == "mrkdwn":
            check_mrkdwn(node["text"], f"a {kind} text")
        if kind == "plain_text":
            assert node["text"].strip()
        if "action_id" in node:
            assert len(node["action_id"]) <= 255
        if "block_id" in node:
            assert len(node["block_id"]) <= 255
        if kind == "button" and "value" in node:
            assert len(node["value"]) <= 2000


def check_message(payload: dict[str, Any]) -> None:
    check_blocks(payload["blocks"], most=50)
    assert 0 < len(payload["text"]) <= 3000
    check_mrkdwn(payload["text"], "the fallback text")


def check_view(view: dict[str, Any]) -> None:
    check_blocks(view["blocks"], most=100)
    View(**view).to_dict()  # title <= 24, callback_id and private_metadata limits
    assert len(view["title"]["text"]) <= 24
    assert len(view.get("private_metadata", "")) <= 3000


# ------------------------------------------------------------------ the command grammar

WORDS = st.sampled_from(
    [
        "run", "batch", "suite", "smoke", "compare", "alias", "audit", "help", "list", "show",
        "import", "export", "delete", "trend", "set", "remove", "agent:12", "number:3",
        "agent:99999999999999999999", "agent:²", "agent:-1", "agent:", "agent:0", "outbound",
        "inbound", "--sip", "--caller", "+14155550123", "--stagger", "--repeat", "0", "5", "61",
        "²", "١٢", "9" * 30, '"', "“", '"a prompt"', '""', "&lt;", "<tel:+1415|+1415>", "payload",
        "support", "refunds", "#", "run:7", "deadbeef",
    ]
)  # fmt: skip
COMMAND_TEXT = st.one_of(
    HOSTILE,
    st.lists(st.one_of(WORDS, HOSTILE), max_size=12).map(" ".join),
)


@FEW
@given(COMMAND_TEXT)
def test_any_command_text_gives_a_command_or_a_clear_refusal(text: str) -> None:
    try:
        parsed = parse_command(text)
    except CommandError as error:
        assert error.problem.strip()
        assert error.usage in USAGE.values()
        check_message(replies.refusal(error.problem, error.usage))  # and it can be shown
        return
    assert isinstance(parsed, Command)


# ------------------------------------------------------------------ the builders

TURN = st.fixed_dictionaries(
    {
        "role": st.one_of(st.sampled_from(["assistant", "user", "tool_call", "agent"]), HOSTILE),
        "content": st.one_of(
            HOSTILE,
            st.none(),
            st.fixed_dictionaries(
                {"name": HOSTILE, "arguments": st.dictionaries(HOSTILE, HOSTILE, max_size=3)}
            ),
        ),
    }
)
TRANSCRIPTS = st.lists(TURN, max_size=8)


@FEW
@given(prompt=HOSTILE, name=HOSTILE, tier=HOSTILE, alias=HOSTILE, unchecked=HOSTILE)
def test_a_confirmation_shows_any_prompt_and_name(
    prompt: str, name: str, tier: str, alias: str, unchecked: str
) -> None:
    launch = LAUNCH.model_copy(update={"scenario_prompt": prompt, "target_label": alias})
    check_message(replies.confirmation(launch, [16], name=name, tier=tier, unchecked=unchecked))
    check_message(launch_card(launch, "⏳ Starting…"))


@FEW
@given(
    prompt=HOSTILE,
    name=HOSTILE,
    error=HOSTILE,
    reasoning=HOSTILE,
    outcome=HOSTILE,
    transcript=TRANSCRIPTS,
    title=HOSTILE,
    description=HOSTILE,
)
def test_a_card_and_a_result_show_any_run(
    prompt: str,
    name: str,
    error: str,
    reasoning: str,
    outcome: str,
    transcript: list[dict[str, Any]],
    title: str,
    description: str,
) -> None:
    run = make_run(scenario_prompt=prompt, target_name=name)
    failed = make_run(scenario_prompt=prompt, status="failed", call_id=None, error_message=error)
    grade = GradeRecord(
        call_id=987654321, score=0.5, call_outcome=outcome, outcome_reasoning=reasoning
    )
    flag = FlagRecord(
        run_id=7110,
        call_id=987654321,
        user_id="U0MARIA",
        severity="warning",
        title=title,
        description=description,
        status="filed",
        created_at="2026-11-22T14:07:00+00:00",
    )
    for card in (run_card(run, grade, THRESHOLD), run_card(failed, None, THRESHOLD)):
        check_message(card)
    check_message(run_result(run, grade, transcript, THRESHOLD, flag, heading=None))
    check_message(run_result(failed, None, None, THRESHOLD))


@FEW
@given(prompt=HOSTILE, transcript=st.lists(TURN, max_size=3), copies=st.integers(0, 120))
def test_the_flag_and_transcript_modals_open_for_any_run(
    prompt: str, transcript: list[dict[str, Any]], copies: int
) -> None:
    run = make_run(scenario_prompt=prompt)
    check_view(flag_modal(run, turns=len(transcript)))
    entries = transcript * copies
    pages = max(1, -(-len(entries) // TURNS_PER_PAGE))
    for page in {0, pages - 1}:
        check_view(transcript_modal(run, entries, page))


@FEW
@given(name=HOSTILE, cases=st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=25))
def test_a_batch_confirmation_shows_any_cases(name: str, cases: list[tuple[str, str]]) -> None:
    batch = BATCH.model_copy(update={"target_name": name})
    items = [
        BatchItem(
            batch_id=batch.id,
            position=index,
            part=index // 20,
            case_name=case_name,
            prompt=prompt,
        )
        for index, (case_name, prompt) in enumerate(cases)
    ]
    check_message(batches.confirmation(batch, items, [16]))


@FEW
@given(problem=HOSTILE, error=HOSTILE)
def test_refusals_and_notes_show_any_reason(problem: str, error: str) -> None:
    check_message(replies.refusal(problem, USAGE["run"]))
    check_message(
        replies.decided_earlier("test call", status="failed", by="U0MARIA", at=None, error=error)
    )
    check_message(notes.direct_note("C0QA", replies.refusal(problem)["blocks"][0]["text"]["text"]))


@FEW
@given(
    case_name=st.one_of(st.none(), HOSTILE),
    prompt=HOSTILE,
    contains=HOSTILE,
    note=HOSTILE,
    error=HOSTILE,
    transcript=TRANSCRIPTS,
)
def test_a_batch_card_and_its_replies_show_any_case(
    case_name: str | None,
    prompt: str,
    contains: str,
    note: str,
    error: str,
    transcript: list[dict[str, Any]],
) -> None:
    item = BatchItem(
        batch_id=BATCH.id, position=0, part=0, case_name=case_name, prompt=prompt, run_id=7200
    )
    expected = Expected(transcript_contains=(contains,), transcript_excludes=(note,), note=note)
    run = make_run(run_id=7200, scenario_prompt=prompt)
    grade = GradeRecord(call_id=987654321, score=0.9, call_outcome="success")
    row = Row(item, run, grade, None, expected)
    report = batch_report(
        rows=[row],
        parts=[BatchPart(batch_id=BATCH.id, part=0, status="refused", error=error)],
    )
    check_message(batches.batch_card(report))
    heading = batches.run_heading(row, 2)
    check_message(run_result(run, grade, transcript, THRESHOLD, heading=heading, expected=expected))


@FEW
@given(
    cases=st.lists(st.tuples(HOSTILE, HOSTILE, HOSTILE), min_size=1, max_size=12),
    caller=HOSTILE,
)
def test_a_suite_is_shown_whatever_its_cases_say(
    cases: list[tuple[str, str, str]], caller: str
) -> None:
    suite = Suite(
        name="refunds",
        cases=tuple(
            SuiteCase(
                name=name,
                scenario_prompt=prompt,
                expected=Expected(),
                expected_outcome=json.dumps(outcome),
            )
            for name, prompt, outcome in cases
        ),
        settings=SuiteSettings(caller_number=caller),
    )
    check_message(suite_replies.suite_details(suite))


@FEW
@given(details=st.lists(HOSTILE, min_size=1, max_size=30))
def test_an_audit_trail_shows_any_detail(details: list[str]) -> None:
    actions = ["consented", "flagged", "alias_set", "cancelled"]
    events = [
        audit_event(actions[index % len(actions)], id=index, detail=detail)
        for index, detail in enumerate(details)
    ]
    check_message(audit_trail(Trail("run 7110", events, more=True)))


# ------------------------------------------------------------------ routes in buttons and modals

ROUTE_TEXT = st.one_of(
    HOSTILE,
    st.lists(
        st.tuples(
            st.sampled_from(["run", "page", "launch", "batch", "suite", "channel", "x"]),
            st.one_of(st.integers(-(2**80), 2**80).map(str), HOSTILE),
        ).map("=".join),
        max_size=6,
    ).map(";".join),
)


@FEW
@given(ROUTE_TEXT)
def test_any_route_is_read_without_error_and_only_within_range(text: str) -> None:
    route = decode(text)
    for value in (route.run_id, route.page):
        assert value is None or 0 <= value <= 2**63 - 1
    named = unreadable(text)
    assert named is None or re.fullmatch(r"[a-z]+ [0-9]+(…)?", named)


@FEW
@given(
    cases=st.lists(st.tuples(HOSTILE, HOSTILE, HOSTILE), min_size=1, max_size=30),
    roles=st.tuples(HOSTILE, HOSTILE),
)
def test_a_regression_summary_shows_any_case_and_diverging_turn(
    cases: list[tuple[str, str, str]], roles: tuple[str, str]
) -> None:
    changes = [
        suite_change(
            name,
            verdict=Verdict.REGRESSED,
            passed_runs=0,
            score=Shift(0.91, 0.62, True),
            divergence=Divergence(
                turn=index + 1,
                baseline_role=roles[0],
                baseline=before,
                current_role=roles[1],
                current=now,
            ),
        )
        for index, (name, before, now) in enumerate(cases)
    ]
    counts = Counts(cases=len(changes), failed=len(changes), regressed=len(changes))
    check_message(regression_summary(SUITE_LABEL, changes, counts))


@FEW
@given(prompts=st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=12))
def test_app_home_shows_any_recent_run(prompts: list[tuple[str, str]]) -> None:
    runs = [
        (make_run(run_id=index + 1, scenario_prompt=prompt, target_name=name), None)
        for index, (prompt, name) in enumerate(prompts)
    ]
    view = home_view(runs, THRESHOLD, {1: "https://slack.com/archives/C0QA/p1763820120000100"})
    check_blocks(view["blocks"], most=100)
    View(**view).to_dict()


@FEW
@given(
    prompt=HOSTILE,
    labels=st.tuples(HOSTILE, HOSTILE),
    names=st.tuples(HOSTILE, HOSTILE),
    tier=HOSTILE,
    reason=HOSTILE,
    cases=st.lists(st.tuples(HOSTILE, HOSTILE), min_size=1, max_size=6),
)
def test_a_compare_shows_any_prompt_label_and_name(
    prompt: str,
    labels: tuple[str, str],
    names: tuple[str, str],
    tier: str,
    reason: str,
    cases: list[tuple[str, str]],
) -> None:
    record = COMPARE.model_copy(update={"suite": None, "prompt": prompt, "chart_error": reason})
    batches_of = [
        COMPARE_TARGETS[index].model_copy(
            update={"target_label": labels[index], "target_name": names[index]}
        )
        for index in range(2)
    ]
    items = [
        BatchItem(batch_id=BATCH.id, position=index, part=0, case_name=name, prompt=text)
        for index, (name, text) in enumerate(cases)
    ]
    proposal = Proposal(record, [(batch, [16]) for batch in batches_of], items)
    check_message(compare_blocks.confirmation(proposal))
    figures = [
        compare_target(
            index, label=labels[index], name=names[index], tier=tier, not_started=(reason,)
        )
        for index in range(2)
    ]
    for finished in (False, True):
        view = CompareView(record, figures, len(cases), finished, best_marks(figures))
        check_message(compare_blocks.compare_card(view))


@FEW
@given(target=HOSTILE, direction=HOSTILE, stagger=HOSTILE, repeat=HOSTILE, prompts=HOSTILE)
def test_the_batch_form_reads_any_input(
    target: str, direction: str, stagger: str, repeat: str, prompts: str
) -> None:
    command, problems = parse_batch_form(
        target=target, direction=direction, stagger=stagger, repeat=repeat, prompts=prompts
    )
    assert (command is None) == bool(problems)
    assert all(problem.strip() for problem in problems.values())
    assert set(problems) <= {"target", "stagger", "repeat", "prompts"}


@FEW
@given(text=HOSTILE, code=HOSTILE)
def test_a_message_slack_refused_is_shortened_validly(text: str, code: str) -> None:
    payload = replies.refusal(text, USAGE["run"])
    check_message(shortened(payload, code))


# ------------------------------------------------------------------ webhook signatures, streamed


@FEW
@given(
    body=st.binary(max_size=3000),
    sent=st.one_of(st.none(), st.binary(max_size=50)),
    scheme=st.sampled_from(["v2", "v1"]),
    path=st.sampled_from(["/webhooks/thunderphone", "/webhooks/thunderphone?x=1&y=%20"]),
)
def test_a_streamed_webhook_check_agrees_with_the_official_one(
    body: bytes, sent: bytes | None, scheme: str, path: str
) -> None:
    """The body's signature as hashed while it arrives says what verify_webhook says of it
    whole (the bot relies on the streamed one only for bodies too large to keep)."""
    now = 1_800_000_000
    signed = body if sent is None else sent  # what the sender signed; `body` is what arrives
    if scheme == "v2":
        signature = compute_signature(
            "whsec_a", timestamp=now, method="POST", path=path, body=signed
        )
        headers = {"X-ThunderPhone-Signature-V2": f"t={now},v1={signature}"}
    else:
        headers = {"X-ThunderPhone-Signature": sign_v1("whsec_a", signed)}
    secrets = ["whsec_old", "whsec_a"]
    pending = start_webhook_check(headers, method="POST", path=path, secrets=secrets, now=now)
    assert isinstance(pending, PendingCheck)
    for start in range(0, len(body), 700):
        for digest in pending.digests:
            digest.update(body[start : start + 700])
    whole = verify_webhook(headers, method="POST", path=path, body=body, secrets=secrets, now=now)
    assert pending.matches() == whole.ok == (signed == body)
