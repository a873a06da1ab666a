"""Block Kit builders: accepted by slack_sdk's models, within Slack's limits, wired to handlers,
and pinned by snapshots of what people see."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from syrupy.assertion import SnapshotAssertion

from bot import ci_report, ids
from bot.batch_report import BatchReport, Row
from bot.blocks import batches, notes, replies, suite_replies
from bot.blocks import compare as compare_blocks
from bot.blocks.common import plural, target_plain, target_text, thread_link
from bot.blocks.home import home_view
from bot.blocks.modals import (
    TURNS_PER_PAGE,
    batch_modal,
    flag_modal,
    suite_import_modal,
    transcript_modal,
)
from bot.blocks.runs import launch_card, run_card, run_result, verdict_line
from bot.compare import CompareView, Latency, Proposal, TargetFigures, best_marks
from bot.expectations import Expected
from bot.verdicts import Counts, Progress, ResultKind, ResultVerdict
from storage.models import (
    Alias,
    BatchItem,
    BatchPart,
    BatchRecord,
    CompareRecord,
    FlagRecord,
    GradeRecord,
    Launch,
    RunRecord,
    SuiteSummary,
)
from tests.test_budget_caps import budget_examples

THRESHOLD = 0.8
TRANSCRIPT: list[dict[str, Any]] = [
    {"role": "assistant", "content": "Thanks for calling Acme Freight, how can I help?"},
    {"role": "user", "content": "What is your refund policy?"},
    {"role": "tool_call", "content": {"name": "lookup_order", "arguments": {"order": "12345"}}},
    {"role": "tool_response", "content": {"status": "shipped"}},
    {"role": "assistant", "content": "Your order shipped; refunds take 3 to 5 days."},
    {"role": "user", "content": "Thanks, bye."},
    {"role": "assistant", "content": "Refunds go back to the card in 3 to 5 days."},
]


CARD_LINK = "https://slack.com/archives/C0QA/p1763820120000100"


def make_run(**changes: Any) -> RunRecord:
    fields: dict[str, Any] = {
        "run_id": 7110,
        "team_id": "T1",
        "channel_id": "C0QA",
        "started_by": "U0MARIA",
        "target_type": "agent",
        "target_id": 12,
        "target_name": "Support agent",
        "scenario_prompt": "You are a polite caller asking about <refund> policy & order 12345.",
        "status": "completed",
        "call_id": 987654321,
        "duration_seconds": 54,
        "cost_cents": 16,
        "end_reason": "caller_hangup",
        "created_at": "2026-11-22T14:02:00+00:00",
        "started_at": "2026-11-22T14:02:05+00:00",
        "card_ts": "1763820120.000100",
    }
    fields.update(changes)
    return RunRecord(**fields)


GRADE = GradeRecord(
    call_id=987654321,
    score=0.92,
    call_outcome="success",
    outcome_reasoning="The caller got the refund policy.",
)
LOW_GRADE = GRADE.model_copy(update={"score": 0.64, "call_outcome": "failure"})
LAUNCH = Launch(
    id="abc123",
    team_id="T1",
    channel_id="C0QA",
    user_id="U0MARIA",
    target_type="agent",
    target_id=12,
    target_label="support",
    scenario_prompt="You are a polite caller asking about refund policy for order 12345.",
)
FLAG = FlagRecord(
    run_id=7110,
    call_id=987654321,
    user_id="U0MARIA",
    severity="warning",
    title="Agent paused too long",
    description="The agent waited six seconds before answering the refund question.",
    status="filed",
    created_at="2026-11-22T14:07:00+00:00",
)


BATCH = BatchRecord(
    id="b" * 32,
    team_id="T1",
    channel_id="C0QA",
    user_id="U0MARIA",
    target_type="agent",
    target_id=12,
    target_name="Support agent",
    stagger=2,
    suite="refunds",
    status="launched",
    decided_by="U0MARIA",
    decided_at="2026-11-22T14:02:00+00:00",
    created_at="2026-11-22T14:01:00+00:00",
)
ITEMS = [
    BatchItem(
        batch_id=BATCH.id,
        position=index,
        part=index // 20,
        case_name=f"case <{index}>",
        prompt=f"Ask about refunds & order {index}.",
        run_id=7200 + index if index < 22 else None,
    )
    for index in range(25)
]


def batch_report(**changes: Any) -> BatchReport:
    fields: dict[str, Any] = {
        "batch": BATCH,
        "rows": [Row(item, None, None, None, Expected()) for item in ITEMS],
        "parts": [
            BatchPart(batch_id=BATCH.id, part=0, status="launched"),
            BatchPart(
                batch_id=BATCH.id,
                part=1,
                status="refused",
                error="ThunderPhone says the balance is empty (HTTP 402). Top up, then run again.",
            ),
        ],
        "progress": Progress(
            total=20, done=12, passed=10, failed=2, cost_cents=192, avg_score=0.86
        ),
        "finished": False,
    }
    fields.update(changes)
    return BatchReport(**fields)


COMPARE = CompareRecord(
    id="d" * 32,
    team_id="T1",
    channel_id="C0QA",
    user_id="U0MARIA",
    suite="refunds",
    repeat=2,
    status="launched",
    decided_by="U0MARIA",
    decided_at="2026-11-22T14:02:00+00:00",
    created_at="2026-11-22T14:01:00+00:00",
)
COMPARE_TARGETS = [
    BATCH.model_copy(
        update={
            "id": f"{n - 10}" * 32,
            "target_id": n,
            "target_label": label,
            "target_name": name,
            "compare_id": COMPARE.id,
        }
    )
    for n, label, name in (
        (12, "agent:12", "Support agent"),
        (13, "support <v2>", "Support & XL"),
        (14, "agent:14", ""),
    )
]


def compare_target(index: int, **changes: Any) -> TargetFigures:
    batch = COMPARE_TARGETS[index]
    fields: dict[str, Any] = {
        "batch_id": batch.id,
        "target_type": "agent",
        "target_id": 12 + index,
        "label": ("agent 12", "support <v2>", "agent 14")[index],
        "name": ("Support agent", "Support & XL", "Sales agent")[index],
        "tier": ("spark", "storm-base", "bolt")[index],
        "planned": 10,
        "started": 10,
        "done": 10,
        "grading": 0,
        "failures": (1, 0, 2)[index],
        "spent_cents": (140, 190, 220)[index],
        "mean_score": (0.86, 0.84, 0.81)[index],
        "duration_p50": (48, 52, 62)[index],
        "duration_p95": (70, 91, 100)[index],
        "latency": Latency(
            (820, 640, 1100)[index], (1400, 1210, 2050)[index], 40, (0, 3, 0)[index]
        ),
        "mean_cost_cents": (14.0, 19.0, 22.0)[index],
    }
    fields.update(changes)
    return TargetFigures(**fields)


def compare_examples() -> dict[str, dict[str, Any]]:
    finished = [compare_target(i) for i in range(3)]
    running = [
        compare_target(0, done=4, tier=None),
        compare_target(
            1,
            done=0,
            started=0,
            tier=None,
            mean_score=None,
            duration_p50=None,
            duration_p95=None,
            latency=Latency(),
            mean_cost_cents=None,
            not_started=("ThunderPhone says the balance is empty (HTTP 402).",),
        ),
        compare_target(2, done=7, tier=None, grading=1),
    ]
    items = [item.model_copy(update={"attempt": 1 + item.position % 2}) for item in ITEMS[:10]]
    done = COMPARE.model_copy(update={"chart_at": "2026-11-22T14:20:00+00:00"})
    return {
        "compare_confirmation": compare_blocks.confirmation(
            Proposal(
                COMPARE.model_copy(update={"status": "proposed"}),
                [
                    (COMPARE_TARGETS[0], [16, 18]),
                    (COMPARE_TARGETS[1], []),
                    (COMPARE_TARGETS[2], [20]),
                ],
                items,
            )
        ),
        "compare_card_running": compare_blocks.compare_card(
            CompareView(COMPARE.model_copy(update={"status": "partial"}), running, 5, False)
        ),
        "compare_card_finished": compare_blocks.compare_card(
            CompareView(done, finished, 5, True, best_marks(finished))
        ),
    }


def message_examples() -> dict[str, dict[str, Any]]:
    finished = batch_report(
        finished=True,
        progress=Progress(total=20, done=20, passed=18, failed=2, cost_cents=320, avg_score=0.88),
        changes=[],
        counts=Counts(cases=20, passed=18, failed=2, regressed=1, fixed=1, unchanged=17),
        baseline=BATCH.model_copy(update={"id": "c" * 32}),
    )
    return {
        "batch_confirmation": batches.confirmation(BATCH, ITEMS, [16, 18]),
        "batch_card_running": batches.batch_card(batch_report()),
        "batch_card_finished": batches.batch_card(finished),
        "batch_card_blessed": batches.batch_card(
            batch_report(
                batch=BATCH.model_copy(
                    update={"blessed_by": "U0LI", "blessed_at": "2026-11-22T15:30:00+00:00"}
                ),
                finished=True,
                changes=[],
                counts=Counts(cases=20, passed=20, unchanged=20),
            )
        ),
        "suite_list": suite_replies.suite_list(
            [SuiteSummary(name="refunds", case_count=5, target_type="agent", target_id=12)]
        ),
        "suite_delete": suite_replies.confirm_delete("refunds", 5),
        "confirmation": replies.confirmation(LAUNCH, [16, 18, 14]),
        "confirmation_no_history": replies.confirmation(LAUNCH, []),
        "card_queued": run_card(make_run(status="queued"), None, THRESHOLD),
        "card_in_progress": run_card(make_run(status="in_progress"), None, THRESHOLD),
        "card_completed": run_card(make_run(), GRADE, THRESHOLD),
        "card_below_threshold": run_card(make_run(), LOW_GRADE, THRESHOLD),
        "card_failed": run_card(
            make_run(status="failed", call_id=None, error_message="SIP 480 <busy>"), None, THRESHOLD
        ),
        "result_graded": run_result(make_run(), GRADE, TRANSCRIPT, THRESHOLD),
        "result_waiting_for_grade": run_result(make_run(), None, TRANSCRIPT, THRESHOLD),
        "result_below_threshold": run_result(make_run(), LOW_GRADE, TRANSCRIPT, THRESHOLD),
        "result_flagged": run_result(make_run(), GRADE, TRANSCRIPT, THRESHOLD, FLAG),
        "result_failed": run_result(
            make_run(status="failed", call_id=None, error_message="The agent did not answer."),
            None,
            None,
            THRESHOLD,
        ),
        "card_starting": launch_card(
            LAUNCH.model_copy(
                update={"decided_by": "U0LI", "decided_at": "2026-11-22T14:02:00+00:00"}
            ),
            "⏳ Starting…",
        ),
        "refusal": replies.refusal('I couldn\'t read "agent:twelve".', "/testcall run <target>"),
        "note_in_a_direct_message": notes.direct_note(
            "C0QA", "I couldn't share the file here (not_in_channel). `thunderbot suite export`."
        ),
        "help": replies.help_message(),
        **compare_examples(),
        **budget_examples(),
    }


def view_examples() -> dict[str, dict[str, Any]]:
    long_transcript = [
        {"role": "user" if i % 2 else "assistant", "content": f"turn {i} " + "word " * 200}
        for i in range(95)
    ]
    return {
        "flag_modal": flag_modal(make_run(), turns=7),
        "transcript": transcript_modal(make_run(), TRANSCRIPT),
        "transcript_long_page_2": transcript_modal(make_run(), long_transcript, page=1),
        "home": home_view(
            [(make_run(), GRADE), (make_run(run_id=2, status="queued"), None)],
            THRESHOLD,
            {7110: CARD_LINK},
        ),
        "batch_form": batch_modal("C0QA", target="agent:12"),
        "suite_import": suite_import_modal("C0QA"),
    }


@pytest.mark.parametrize("name", sorted(message_examples()))
def test_messages_are_valid_block_kit_with_a_fallback(name: str) -> None:
    payload = message_examples()[name]
    assert payload["text"].strip(), "every message carries a plain-text fallback"
    blocks = Block.parse_all(payload["blocks"])
    assert [block.to_dict() for block in blocks] == payload["blocks"]


@pytest.mark.parametrize("name", sorted(view_examples()))
def test_views_are_valid_block_kit(name: str) -> None:
    view = view_examples()[name]
    assert View(**view).to_dict() == view


def test_user_and_transcript_text_is_escaped_everywhere() -> None:
    hostile = "<!channel> & <https://evil.example|click>"
    run = make_run(scenario_prompt=hostile, error_message=hostile, target_name=hostile)
    turns = [
        {"role": "user", "content": hostile},
        {"role": "tool_call", "content": {"name": hostile}},
    ]
    grade = GRADE.model_copy(update={"outcome_reasoning": hostile})
    flag = FLAG.model_copy(update={"title": hostile, "description": hostile})
    launch = LAUNCH.model_copy(update={"scenario_prompt": hostile, "target_label": hostile})
    rendered = [
        run_card(run, grade, THRESHOLD),
        run_result(run, grade, turns, THRESHOLD, flag),
        run_result(run.model_copy(update={"status": "failed"}), None, None, THRESHOLD),
        replies.confirmation(launch, []),
        transcript_modal(run, turns),
        home_view([(run, grade)], THRESHOLD),
        replies.refusal(hostile),
    ]
    for payload in rendered:
        text = str(payload["blocks"])
        assert "<!channel>" not in text and "<https://evil" not in text
        assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in text


def test_score_below_threshold_is_said_plainly() -> None:
    result = run_result(make_run(), LOW_GRADE, TRANSCRIPT, THRESHOLD)
    headline = result["blocks"][0]["text"]["text"]
    assert headline.startswith("❌ Failed · score 64% &lt; 80% · 0:54 · $0.16")
    assert result["text"].startswith("❌ Failed · score 64% &lt; 80%")
    # The grader's own outcome is its opinion, under the one verdict.
    assert result["blocks"][2]["text"]["text"].startswith("*Grader's opinion*  failure · ")


def test_a_failed_verdict_lists_its_reasons_escaped_and_bounded() -> None:
    verdict = ResultVerdict(
        ResultKind.FAILED, tuple(f'transcript lacks "<b>{"w" * 500}{n}"' for n in range(20))
    )
    line = verdict_line(make_run(), GRADE, verdict)
    assert line.startswith('❌ Failed · transcript lacks "&lt;b&gt;www')
    assert " · and 17 more · 92% · 0:54 · $0.16" in line
    assert "<b>" not in line and len(line) < 1000


def test_transcript_snippet_shows_first_and_last_turns_and_tool_calls_as_calls() -> None:
    result = run_result(make_run(), GRADE, TRANSCRIPT, THRESHOLD)
    snippet = result["blocks"][1]["text"]["text"]
    assert snippet.splitlines() == [
        "*Agent:*  Thanks for calling Acme Freight, how can I help?",
        "*Caller:*  What is your refund policy?",
        "    …  (3 more turns)",
        "*Caller:*  Thanks, bye.",
        "*Agent:*  Refunds go back to the card in 3 to 5 days.",
    ]
    modal = transcript_modal(make_run(), TRANSCRIPT)
    assert "*Tool:*  lookup_order(order=12345)" in modal["blocks"][1]["text"]["text"]


def test_a_flag_replaces_its_button_with_a_record() -> None:
    result = run_result(make_run(), GRADE, TRANSCRIPT, THRESHOLD, FLAG)
    action_ids = [e["action_id"] for e in result["blocks"][-1]["elements"]]
    assert ids.FLAG_RUN not in action_ids
    record = result["blocks"][-2]["elements"][0]["text"]
    assert record.startswith(
        "🚩 Flagged for review by <@U0MARIA> · warning · “Agent paused too long”"
    )
    assert record.endswith(
        "\nThe agent waited six seconds before answering the refund question."
    ), "the description the person typed is shown under the record"


def test_a_long_flag_description_is_escaped_and_kept_within_the_limit() -> None:
    long = FLAG.model_copy(update={"description": "Silence & " * 400})
    result = run_result(make_run(), GRADE, TRANSCRIPT, THRESHOLD, long)
    record = result["blocks"][-2]["elements"][0]["text"]
    assert len(record) <= 2000
    assert record.endswith("…") and "&amp;" in record
    assert not record.removesuffix("…").rstrip().endswith(("&", "&a", "&am", "&amp"))
    assert "& " not in record.split("\n", 1)[1], "every & is escaped"


def test_long_transcripts_are_paged_within_limits() -> None:
    view = view_examples()["transcript_long_page_2"]
    numbered = [b for b in view["blocks"] if b["type"] == "section"]
    assert numbered[0]["text"]["text"].startswith(f"` {TURNS_PER_PAGE + 1}`")
    assert "Page 2 of 3 · 95 turns" in str(view["blocks"])


def test_every_emitted_action_id_is_a_known_action() -> None:
    emitted = set()
    for payload in [*message_examples().values(), *view_examples().values()]:
        for block in payload["blocks"]:
            for element in block.get("elements", []):
                if "action_id" in element:
                    emitted.add(element["action_id"])
    assert emitted == set(ids.ACTIONS)


@pytest.mark.parametrize("name", sorted(message_examples()))
def test_message_snapshot(name: str, snapshot: SnapshotAssertion) -> None:
    assert message_examples()[name] == snapshot


@pytest.mark.parametrize("name", ["flag_modal", "transcript", "home", "batch_form", "suite_import"])
def test_view_snapshot(name: str, snapshot: SnapshotAssertion) -> None:
    assert view_examples()[name] == snapshot


def test_a_grading_that_ended_without_a_score_says_so() -> None:
    skipped = GradeRecord(call_id=987654321, status="skipped_recording_disabled")
    result = run_result(make_run(), skipped, TRANSCRIPT, THRESHOLD)
    assert result["blocks"][0]["text"]["text"].startswith(
        "➖ Not graded (skipped recording disabled) · 0:54 · $0.16"
    )
    assert "✅" not in result["text"] and "Grader" not in str(result["blocks"])
    pending = GradeRecord(call_id=987654321, status="pending")
    assert "waiting for the grade" in run_card(make_run(), pending, THRESHOLD)["text"]
    waiting = run_result(make_run(), pending, TRANSCRIPT, THRESHOLD)
    assert waiting["text"].startswith("⏳ Not graded yet · 0:54 · $0.16")


NAMED = "Support agent (agent 12)"


def test_a_target_is_named_one_way() -> None:
    assert target_plain("agent", 12, "Support agent") == NAMED
    assert target_plain("agent", 12) == "agent 12"
    assert target_plain("phone_number", 34, "Main line") == "Main line (number 34)"
    assert target_text("agent", 12, "Support <b> & co") == "Support &lt;b&gt; &amp; co (agent 12)"
    assert target_text("agent", 12, "Support agent", alias="support") == f"{NAMED}, alias support"
    assert target_text("agent", 12, alias="support") == "agent 12, alias support"
    # What the person typed adds nothing when it is the command syntax or the name itself.
    assert target_text("agent", 12, "Support agent", alias="agent:12") == NAMED
    assert target_text("agent", 12, "Support agent", alias="support AGENT") == NAMED


def test_the_target_reads_the_same_on_every_surface() -> None:
    card = run_card(make_run(), GRADE, THRESHOLD)
    assert card["blocks"][0]["text"]["text"].startswith(f"*🧪 Test call · {NAMED} · outbound")
    assert card["text"].startswith(f"Test call on {NAMED}:")
    assert "agent 12 (Support agent)" not in str(card)

    confirmation = replies.confirmation(LAUNCH, [16], name="Support agent", tier="spark")
    assert f"*Target*  {NAMED}, alias support · spark" in confirmation["blocks"][0]["text"]["text"]
    assert confirmation["text"].startswith(f"Start a test call on {NAMED}, alias support?")
    plain = replies.confirmation(LAUNCH.model_copy(update={"target_label": "agent:12"}), [])
    assert "*Target*  agent 12\n" in plain["blocks"][0]["text"]["text"]

    batch_confirmation = batches.confirmation(BATCH, ITEMS, [], tier="spark")
    assert f"*Target*  {NAMED} · spark" in batch_confirmation["blocks"][0]["text"]["text"]
    unnamed = BATCH.model_copy(update={"target_name": "", "target_label": "support"})
    named_now = batches.confirmation(unnamed, ITEMS, [], name="Support agent")
    assert f"*Target*  {NAMED}, alias support" in named_now["blocks"][0]["text"]["text"]

    # A batch card takes the name ThunderPhone gave its runs.
    rows = [
        Row(item, make_run(run_id=item.run_id) if item.run_id else None, None, None, Expected())
        for item in ITEMS
    ]
    card = batches.batch_card(batch_report(batch=unnamed, rows=rows))
    assert card["blocks"][0]["text"]["text"].startswith(f"*🧪 Suite refunds · {NAMED} ·")

    compare = compare_examples()["compare_card_finished"]
    table = next(b["text"]["text"] for b in compare["blocks"] if "```" in str(b.get("text")))
    assert table.splitlines()[2].startswith(f"{NAMED}  spark")
    long_name = compare_target(0, name="A support agent with a very long name indeed")
    assert compare_blocks._row_label(long_name).endswith("… (agent 12)")

    header = ci_report.header("refunds", target_plain("agent", 12, "Support agent"), 5, 1, None, "")
    assert header.startswith(f"refunds · {NAMED} · 5 cases · baseline: ")


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (
            1,
            {
                "plural": "1 run",
                "calls": "Start 1 test call?",
                "size": "1 case ·",
                "estimate": "the average of the last run",
                "started": "Started 1 run —",
                "aliases": "1 alias",
                "suites": "1 suite",
                "cases": "· 1 case",
                "ci": "refunds · agent 12 · 1 case ·",
                "ci_estimate": "estimate: 1 run ×",
                "compare": "1 scored run on 1 target",
            },
        ),
        (
            2,
            {
                "plural": "2 runs",
                "calls": "Start 2 test calls?",
                "size": "2 cases ·",
                "estimate": "the average of the last 2 runs",
                "started": "Started 2 runs —",
                "aliases": "2 aliases",
                "suites": "2 suites",
                "cases": "· 2 cases",
                "ci": "refunds · agent 12 · 2 cases ·",
                "ci_estimate": "estimate: 2 runs ×",
                "compare": "2 scored runs on 2 targets",
            },
        ),
    ],
)
def test_counts_read_right_for_one_and_for_two(count: int, expected: dict[str, str]) -> None:
    assert plural(count, "run") == expected["plural"]
    items = ITEMS[:count]
    confirmation = batches.confirmation(BATCH, items, [16] * count)
    text = str(confirmation["blocks"])
    assert expected["calls"].replace("Start", "Run suite refunds:") in text
    assert f"*Runs*  {expected['size']}" in text
    assert expected["estimate"] in text
    assert replies.started_runs("U0MARIA", count, count, None)["text"].startswith(
        expected["started"]
    )
    aliases = [
        Alias(team_id="T1", name=f"a{n}", target_type="agent", target_id=12) for n in range(count)
    ]
    assert replies.alias_list(aliases)["text"] == expected["aliases"]
    summaries = [
        SuiteSummary(name=f"s{n}", case_count=count, target_type="agent", target_id=12)
        for n in range(count)
    ]
    listed = suite_replies.suite_list(summaries)
    assert listed["text"] == expected["suites"]
    assert expected["cases"] in str(listed["blocks"])
    assert ci_report.header("refunds", "agent 12", count, 1, None, "").startswith(expected["ci"])
    assert ci_report.estimate_line(count, [16]).startswith(expected["ci_estimate"])
    targets = [compare_target(i, points=((40, 0.9),)) for i in range(count)]
    comment = compare_blocks.chart_comment(CompareView(COMPARE, targets, 1, True))
    assert expected["compare"] in comment


def test_app_home_rows_show_the_day_and_link_to_the_thread() -> None:
    earlier = make_run(run_id=2, created_at="2026-11-21T09:30:00+00:00")
    view = home_view([(make_run(), GRADE), (earlier, None)], THRESHOLD, {7110: CARD_LINK})
    first, second = (b["text"]["text"] for b in view["blocks"][-2:])
    stamp = 1795356120  # 2026-11-22 14:02 UTC
    assert f"<!date^{stamp}^{{date_short_pretty}} {{time}}|Nov 22 14:02 UTC>" in first
    assert f"<{CARD_LINK}|run 7110> · {NAMED} · <#C0QA>" in first
    assert "Nov 21 09:30 UTC" in second, "each row says its own day"
    assert "run 2 · " in second and "<https://" not in second, "no thread yet: no link"


def test_run_ids_link_to_their_thread() -> None:
    assert thread_link("C0QA", "1763820120.000100") == CARD_LINK
    assert thread_link("C0QA", "1763820125.000200", "1763820120.000100") == (
        "https://slack.com/archives/C0QA/p1763820125000200?thread_ts=1763820120.000100&cid=C0QA"
    )
    launch = LAUNCH.model_copy(
        update={"decided_by": "U0MARIA", "decided_at": "2026-11-22T14:02:00+00:00"}
    )
    started = replies.started(launch, 7110, "1763820120.000100")
    assert started["blocks"][0]["text"]["text"].startswith(
        f"Started <{CARD_LINK}|run 7110> — see the card below."
    )
    assert started["text"].startswith("Started run 7110 — see the card below."), "plain fallback"
    assert replies.started(launch, 7110)["text"] == replies.started(launch, 7110)["blocks"][0][
        "text"
    ]["text"].replace("*", ""), "no card yet: no link"
    again = replies.already_decided(
        launch.model_copy(update={"status": "launched", "run_id": 7110}), "1763820120.000100"
    )
    assert f"(<{CARD_LINK}|run 7110>)." in again["blocks"][0]["text"]["text"]
    batch = replies.started_runs("U0MARIA", 5, 5, None, channel="C0QA", card_ts="1763820120.000100")
    assert f"Started 5 runs — see <{CARD_LINK}|the card> below." in str(batch["blocks"])
    assert batch["text"].startswith("Started 5 runs — see the card below.")
