"""`thunderbot ci` as a build runs it: against the ThunderPhone sandbox on loopback (started in
process, or with `--sandbox`), on a real SQLite file, with no Slack unless `--slack-channel`.
Outcomes are fixed by the sandbox's prompt directives, so every exit code is deterministic."""

from __future__ import annotations

import io
import json
import socket
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot import ci
from bot.cli import main
from bot.sandbox.slack import FakeSlack
from bot.sandbox.thunderphone import ThunderPhoneSandbox

BATCHES = "/v1/test-call-batches"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bot.db"
    monkeypatch.setenv("THUNDERBOT_DB", str(path))
    monkeypatch.setenv("THUNDERBOT_POLL_SECONDS", "0.02")
    return path


@pytest.fixture
async def sandbox(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ThunderPhoneSandbox]:
    """ThunderPhone on loopback; runs move a stage every 0.02 s, all launched at once."""
    box = ThunderPhoneSandbox(step_seconds=0.02, stagger_scale=0.0)
    monkeypatch.setenv("THUNDERPHONE_BASE_URL", await box.start())
    monkeypatch.setenv("THUNDERPHONE_API_KEY", box.api_key)
    yield box
    await box.close()


def suite_file(folder: Path, cases: list[dict[str, Any]], name: str = "refunds") -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(cases))
    return path


def case(name: str, prompt: str, expected: Any = None) -> dict[str, Any]:
    item: dict[str, Any] = {"name": name, "scenario_prompt": prompt}
    if expected is not None:
        item["expected_outcome"] = expected
    return item


async def gate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await ci.run(ci.parser().parse_args(list(argv)))
    out, err = capsys.readouterr()
    return code, out, err


def batch_posts(box: ThunderPhoneSandbox) -> list[Any]:
    return [r for r in box.requests if r.method == "POST" and r.path == BATCHES]


def rows(db_path: Path, table: str) -> list[dict[str, Any]]:
    if not db_path.exists():
        return []
    with sqlite3.connect(db_path) as connection:
        connection.row_factory = sqlite3.Row
        found = [dict(row) for row in connection.execute(f"select * from {table}")]
    connection.close()
    return found


def junit_cases(report: Path) -> list[ET.Element]:
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    [suite] = root.findall("testsuite")
    return suite.findall("testcase")


def table(out: str) -> dict[str, list[str]]:
    """The summary table: each case's cells, by case name."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["case", "verdict"])
    found = {}
    for line in lines[start + 1 :]:
        if not line.strip() or line.endswith(tuple(f"exit {code}" for code in range(4))):
            break
        cells = line.split("  ")
        found[cells[0].strip()] = [cell.strip() for cell in cells[1:] if cell.strip()]
    return found


PASSING = [
    case("refund-policy", "[score: 91] [say: Refunds go back to the card within 30 days] Ask."),
    case("human-handoff", "[score: 88] Ask for a person.", "success"),
    case(
        "order-status",
        "[score: 93] [tool: lookup_order order_id=48213] Ask where order 48213 is.",
        {"tools_called": [{"name": "lookup_order", "arguments": {"order_id": 48213}}]},
    ),
]


async def test_every_case_passing_exits_0_records_the_run_and_writes_junit(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = suite_file(tmp_path, PASSING)
    report = tmp_path / "report.xml"
    code, out, err = await gate(
        capsys, "--suite", str(source), "--target", "agent:12", "--junit", str(report), "--yes"
    )
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == f'Imported suite "refunds" from {source} (3 cases).'
    assert lines[1].startswith("refunds · agent 12 · 3 cases · baseline: none yet")
    assert lines[2] == (
        "estimate: 3 runs, no estimate yet (no finished runs on this target), billed at 2×"
    )
    assert lines[-1].startswith("3 passed · 0 failed") and lines[-1].endswith("exit 0")
    assert {name: cells[:2] for name, cells in table(out).items()} == {
        "refund-policy": ["passed", "91%"],
        "human-handoff": ["passed", "88%"],
        "order-status": ["passed", "93%"],
    }

    [request] = batch_posts(sandbox)
    assert request.json["consent_to_charge"] is True
    assert request.json["scenario_prompts"] == [item["scenario_prompt"] for item in PASSING]
    # Recorded in the bot's database like any suite run: the next run can compare with it.
    [batch] = rows(db_path, "batches")
    assert (batch["suite"], batch["target_type"], batch["target_id"]) == ("refunds", "agent", 12)
    assert batch["status"] == "launched" and batch["finished_at"] is not None
    assert len(rows(db_path, "runs")) == 3 and len(rows(db_path, "grades")) == 3

    cases = junit_cases(report)
    assert [c.get("name") for c in cases] == ["refund-policy", "human-handoff", "order-status"]
    assert {c.get("classname") for c in cases} == {"refunds"}
    assert all(list(c) == [] for c in cases), "no failure or error"
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures")) == ("refunds", "3", "0")

    # A second run of the saved suite (by name) has an estimate and a baseline.
    code, out, _ = await gate(capsys, "--suite", "refunds", "--target", "agent:12", "--yes")
    assert code == 0
    assert "baseline: batch " in out.splitlines()[0] and "(previous run)" in out.splitlines()[0]
    assert out.splitlines()[0].startswith("refunds · Support agent (agent 12) · 3 cases")
    assert out.splitlines()[1].startswith("estimate: 3 runs × $")
    assert {cells[-1] for cells in table(out).values()} == {"unchanged"}


async def test_a_failing_case_exits_1_with_its_reasons_in_the_junit_file(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("THUNDERBOT_CONSENT_TO_CHARGE", "true")  # consent without --yes
    source = suite_file(
        tmp_path,
        [
            case("refund-policy", "[score: 62] Ask about refunds."),
            case("hours", "[score: 95] Ask for opening hours.", {"transcript_contains": "24/7"}),
            case("handoff", "[fail] Ask for a person."),
            case("greeting", "[score: 90] Say hello."),
            case("small-talk", "[flaky] [score: 90] Talk about the weather."),
        ],
    )
    report = tmp_path / "report.xml"
    code, out, _ = await gate(
        capsys,
        *("--suite", str(source), "--target", "agent:12", "--repeat", "2", "--stagger", "0"),
        *("--junit", str(report)),
    )
    assert code == 1
    assert table(out)["refund-policy"][:2] == ["failed", "62%"]
    assert table(out)["greeting"][0] == "passed"
    flaky_row = table(out)["small-talk"]
    assert (flaky_row[0], flaky_row[-1]) == ("flaky", "flaky (1 of 2 passed)")
    assert "refund-policy (1 of 2): score 62% < 80%" in out.splitlines()
    assert out.splitlines()[-1].startswith("1 passed · 3 failed · 1 flaky")
    assert out.splitlines()[-1].endswith("exit 1")

    cases = {c.get("name"): c for c in junit_cases(report)}
    assert len(cases) == 10, "one testcase per case and repeat"
    assert cases["small-talk (1 of 2)"].find("failure") is None
    flaky = cases["small-talk (2 of 2)"].find("failure")
    assert flaky is not None
    assert str(flaky.get("message")).endswith("; flaky (1 of 2 passed)")
    assert sorted(cases)[:2] == ["greeting (1 of 2)", "greeting (2 of 2)"]
    failure = cases["refund-policy (2 of 2)"].find("failure")
    assert failure is not None and failure.get("message") == "score 62% < 80%"
    hours = cases["hours (1 of 2)"].find("failure")
    assert hours is not None and hours.get("message") == 'transcript lacks "24/7"'
    handoff = cases["handoff (1 of 2)"].find("failure")
    assert handoff is not None
    assert "status failed, expected completed" in str(handoff.get("message"))
    assert "did not answer" in str(handoff.get("message"))
    assert cases["greeting (1 of 2)"].find("failure") is None


async def test_a_regression_against_the_baseline_exits_1_and_a_fix_exits_0(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    expected = {"min_score": 0.8}
    good = case("refund-policy", "[score: 91] Ask about refunds.", expected)
    steady = case("hours", "[score: 90] Ask for opening hours.")
    args = ("--suite", str(tmp_path / "refunds.json"), "--target", "agent:12", "--yes")

    suite_file(tmp_path, [good, steady])
    assert (await gate(capsys, *args))[0] == 0

    worse = case("refund-policy", "[score: 62] Ask about refunds.", expected)
    suite_file(tmp_path, [worse, steady])
    report = tmp_path / "report.xml"
    code, out, _ = await gate(capsys, *args, "--junit", str(report))
    assert code == 1
    against = table(out)["refund-policy"]
    assert against[0] == "failed"
    assert against[-1].startswith("regressed: 91% -> 62%, diverged at turn ")
    assert table(out)["hours"][-1] == "unchanged"
    assert "1 regressed" in out.splitlines()[-1]
    failure = {c.get("name"): c for c in junit_cases(report)}["refund-policy"].find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith("score 62% < 80%; regressed: 91% -> 62%")
    assert "baseline  Agent:" in (failure.text or "")

    # Without a baseline the case still fails; it just is not called a regression.
    code, out, _ = await gate(capsys, *args, "--baseline", "none")
    assert code == 1 and "baseline: none (--baseline none)" in out
    assert "regressed" not in out

    suite_file(tmp_path, [good, steady])
    code, out, _ = await gate(capsys, *args, "--baseline", "previous")
    assert code == 0
    assert table(out)["refund-policy"][-1] == "fixed: 62% -> 91%"
    assert "1 fixed" in out.splitlines()[-1]


async def test_without_consent_nothing_is_launched_and_it_exits_3(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = suite_file(tmp_path, PASSING)
    code, out, err = await gate(capsys, "--suite", str(source), "--target", "agent:12")
    assert code == 3
    assert "estimate: 3 runs" in out, "the estimate comes first"
    assert "Nothing was started" in err and "--yes" in err
    assert batch_posts(sandbox) == []
    assert [r for r in sandbox.requests if r.method == "POST"] == []
    assert rows(db_path, "batches") == [] and rows(db_path, "runs") == []


async def test_a_run_never_graded_before_the_timeout_exits_2(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = suite_file(
        tmp_path,
        [
            case("graded", "[score: 90] Ask about refunds."),
            case("never-graded", "[score: 90] [no-grade] Ask for opening hours."),
        ],
    )
    report = tmp_path / "report.xml"
    code, out, _ = await gate(
        capsys,
        *("--suite", str(source), "--target", "agent:12", "--yes"),
        *("--timeout", "1", "--junit", str(report)),
    )
    assert code == 2
    assert "timed out after 1 s: 1 run(s) not measured" in out
    assert table(out)["never-graded"][0] == "not measured"
    assert table(out)["never-graded"][-1] == "not graded before the timeout"
    assert table(out)["graded"][0] == "passed"
    assert out.splitlines()[-1].endswith("exit 2") and "1 not measured" in out.splitlines()[-1]
    cases = {c.get("name"): c for c in junit_cases(report)}
    error = cases["never-graded"].find("error")
    assert error is not None and error.get("message") == "not graded before the timeout"
    assert list(cases["graded"]) == []
    # An unfinished run is no baseline for the next one.
    [batch] = rows(db_path, "batches")
    assert batch["finished_at"] is None


async def test_a_failure_outweighs_what_was_not_measured(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = suite_file(
        tmp_path,
        [
            case("low", "[score: 40] Ask about refunds."),
            case("never-graded", "[no-grade] Ask for opening hours."),
        ],
    )
    code, out, _ = await gate(
        capsys, "--suite", str(source), "--target", "agent:12", "--yes", "--timeout", "1"
    )
    assert code == 1
    assert out.splitlines()[-1].startswith("0 passed · 1 failed · 1 not measured")


async def test_an_unreachable_thunderphone_exits_2_without_recording_anything(
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("THUNDERPHONE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_live_x")
    source = suite_file(tmp_path, PASSING)
    report = tmp_path / "report.xml"
    code, out, err = await gate(
        capsys,
        *("--suite", str(source), "--target", "agent:12", "--yes", "--junit", str(report)),
    )
    assert code == 2
    assert f"ThunderPhone is unreachable at http://127.0.0.1:{port}" in err
    assert "nothing was started" in err
    assert out.splitlines()[-1].startswith("0 passed · 0 failed · 3 not measured")
    assert out.splitlines()[-1].endswith("exit 2")
    cases = junit_cases(report)
    assert len(cases) == 3 and all(c.find("error") is not None for c in cases)
    assert rows(db_path, "batches") == []


async def test_a_refused_launch_exits_2_and_is_not_sent_again(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox.fail_next("POST", BATCHES, 402, {"detail": "Insufficient balance."})
    source = suite_file(tmp_path, PASSING)
    code, out, err = await gate(capsys, "--suite", str(source), "--target", "agent:12", "--yes")
    assert code == 2
    assert "ThunderPhone refused the runs" in err and "balance is empty" in err
    assert table(out)["refund-policy"][0] == "not started"
    assert len(batch_posts(sandbox)) == 1
    assert [part["status"] for part in rows(db_path, "batch_parts")] == ["refused"]


async def test_a_launch_whose_answer_was_lost_is_found_not_sent_again(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sandbox.fail_next("POST", BATCHES, 502, {"detail": "Bad gateway"}, after_handling=True)
    source = suite_file(tmp_path, PASSING)
    code, out, _ = await gate(capsys, "--suite", str(source), "--target", "agent:12", "--yes")
    assert code == 0, out
    assert "looking for the runs instead of sending them again" in out
    assert len(batch_posts(sandbox)) == 1
    assert [part["status"] for part in rows(db_path, "batch_parts")] == ["launched"]


async def test_the_slack_channel_gets_the_card_and_its_thread(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with FakeSlack() as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", fake.token)
        monkeypatch.setenv("SLACK_API_URL", fake.api_url)
        monkeypatch.setenv("THUNDERBOT_POST_INTERVAL", "0")
        source = suite_file(tmp_path, PASSING)
        argv = ("--suite", str(source), "--target", "agent:12", "--yes")

        code, _, err = await gate(capsys, *argv, "--slack-channel", "C0NOPE")
        assert code == 3 and "cannot post in C0NOPE" in err
        assert batch_posts(sandbox) == [], "where the card cannot go up, nothing starts"

        code, _, _ = await gate(capsys, *argv, "--slack-channel", "C0QA")
        assert code == 0
        [card] = [m for m in fake.messages["C0QA"] if m.thread_ts is None]
        assert "Suite refunds" in card.text and "3 cases passed" in json.dumps(card.blocks)
        thread = fake.thread("C0QA", card.ts)
        assert len(thread) == 4, "a reply per run and the summary"
        assert sum("First run of suite refunds" in m.text for m in thread) == 1
        assert len(batch_posts(sandbox)) == 1


def test_usage_and_configuration_errors_exit_3(
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = suite_file(tmp_path, PASSING)
    no_target = suite_file(tmp_path, PASSING, name="plain")
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "a"}]')
    base = ["ci", "--suite", str(source), "--target", "agent:12", "--yes"]

    def refused(argv: list[str], problem: str) -> None:
        assert main(argv) == 3, argv
        err = capsys.readouterr().err
        assert problem in err, (argv, err)

    # Argument errors: argparse's usage, exit 3.
    refused(["ci"], "the following arguments are required: --suite")
    refused([*base, "--repeat", "9"], "argument --repeat: how often each case runs, from 1 to 5")
    refused([*base, "--threshold", "80"], "argument --threshold: a fraction from 0 to 1")
    refused([*base, "--baseline", "best"], "argument --baseline: invalid choice")
    refused([*base, "--timeout", "0"], "argument --timeout: seconds to wait")
    refused([*base, "--slack-channel", "#general"], "a channel id like C0123ABCD")
    # Configuration.
    refused(base, "thunderbot ci needs THUNDERPHONE_API_KEY")
    monkeypatch.setenv("THUNDERPHONE_API_KEY", "sk_live_x")
    monkeypatch.setenv("THUNDERPHONE_BASE_URL", "http://127.0.0.1:9")  # never reached
    refused([*base, "--slack-channel", "C0QA"], "--slack-channel needs SLACK_BOT_TOKEN")
    refused([*base, "--junit", str(tmp_path / "nowhere" / "r.xml")], "its directory does not")
    refused(["ci", "--suite", "nosuch", "--yes"], 'There is no suite "nosuch"')
    refused(["ci", "--suite", "missing.json", "--yes"], "cannot read missing.json")
    refused(["ci", "--suite", str(bad), "--yes"], 'case 1 ("a"): scenario_prompt is missing')
    refused(["ci", "--suite", str(no_target), "--yes"], 'suite "plain" has no default target')
    refused([*base[:4], "support", "--yes"], "is not agent:<id> or number:<id>")
    monkeypatch.setenv("THUNDERBOT_SCORE_THRESHOLD", "high")
    refused(base, "THUNDERBOT_SCORE_THRESHOLD")
    assert rows(db_path, "batches") == []


def test_the_sandbox_flag_needs_no_account(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = suite_file(tmp_path, PASSING[:2])
    argv = ["ci", "--suite", str(source), "--target", "agent:12", "--sandbox"]
    assert main(argv) == 3, "consent is asked for even where nothing is billed"
    assert "--yes" in capsys.readouterr().err

    assert main([*argv, "--yes"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("2 passed · 0 failed")
    assert not db_path.exists(), "simulated runs are not recorded in the bot's database"


async def test_a_terminal_gets_a_live_table(
    sandbox: ThunderPhoneSandbox,
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    source = suite_file(tmp_path, PASSING)
    args = ci.parser().parse_args(["--suite", str(source), "--target", "agent:12", "--yes"])
    assert await ci.run(args, out=screen) == 0
    text = screen.getvalue()
    assert "\x1b[" in text, "the table is redrawn in place"
    assert "3/3 done · 3 passed · 0 failed" in text
    assert text.splitlines()[-1].endswith("exit 0")
