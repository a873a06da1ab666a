"""`thunderbot audit`, run in-process on a real SQLite file: every event since a day, as csv
with a header row or as a json array, oldest first."""

from __future__ import annotations

import csv
import getpass
import io
import json
from pathlib import Path

import pytest

from bot.cli import main
from storage import audit
from storage.db import open_db
from storage.models import AuditEvent

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "refunds.json"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bot.db"
    monkeypatch.setenv("THUNDERBOT_DB", str(path))
    return path


@pytest.fixture
def recorded(db_path: Path) -> list[AuditEvent]:
    """Three events over two days: a consent with its estimate, the run it started, and an
    alias changed, with a comma, quotes and a line break to show csv quoting."""
    db = open_db(str(db_path))
    base = {"team_id": "T0SANDBOX", "channel_id": "C0QA", "user_id": "U0MARIA"}
    events = [
        AuditEvent(
            **base,
            at="2026-11-30T23:59:59.000+00:00",
            action="consented",
            subject_kind="launch",
            subject_id="a" * 32,
            detail="agent 12",
            cost_cents=16,
        ),
        AuditEvent(
            **base,
            at="2026-12-01T00:00:02.000+00:00",
            action="launched",
            subject_kind="run",
            subject_id="7110",
            detail="agent 12",
        ),
        AuditEvent(
            **{**base, "user_id": "U0LI"},
            at="2026-12-02T09:30:00.000+00:00",
            action="alias_set",
            subject_kind="alias",
            subject_id="support",
            detail='agent 13, "the new one"\n(was agent 12)',
        ),
    ]
    stored = [audit.record(db, event) for event in events]
    db.close()
    return stored


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_csv_has_a_header_row_and_every_event_oldest_first(
    recorded: list[AuditEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "--format", "csv")
    assert (code, err) == (0, "")
    table = list(csv.reader(io.StringIO(out)))
    assert table[0] == [
        "id",
        "at",
        "team_id",
        "channel_id",
        "user_id",
        "action",
        "subject_kind",
        "subject_id",
        "detail",
        "cost_cents",
        "cost_estimated",
    ]
    assert [row[5] for row in table[1:]] == ["consented", "launched", "alias_set"]
    assert table[1] == [
        str(recorded[0].id),
        "2026-11-30T23:59:59.000+00:00",
        "T0SANDBOX",
        "C0QA",
        "U0MARIA",
        "consented",
        "launch",
        "a" * 32,
        "agent 12",
        "16",
        "True",
    ]
    assert (table[2][9], table[2][10]) == ("", "False"), "no cost known for a launch"
    assert table[3][8] == 'agent 13, "the new one"\n(was agent 12)'


def test_json_since_a_day_leaves_out_what_came_before(
    recorded: list[AuditEvent], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "--format", "json", "--since", "2026-12-01")
    assert (code, err) == (0, "")
    exported = json.loads(out)
    assert [event["action"] for event in exported] == ["launched", "alias_set"]
    assert exported[0] == {
        "id": recorded[1].id,
        "at": "2026-12-01T00:00:02.000+00:00",
        "team_id": "T0SANDBOX",
        "channel_id": "C0QA",
        "user_id": "U0MARIA",
        "action": "launched",
        "subject_kind": "run",
        "subject_id": "7110",
        "detail": "agent 12",
        "cost_cents": None,
        "cost_estimated": False,
    }
    code, out, _ = run(capsys, "audit", "--format", "json", "--since", "2026-12-03")
    assert (code, json.loads(out)) == (0, [])


def test_the_default_is_csv_and_output_can_go_to_a_file(
    recorded: list[AuditEvent], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "audit.csv"
    code, out, err = run(capsys, "audit", "-o", str(target))
    assert (code, err) == (0, "")
    assert out == f"Wrote 3 audit events to {target}.\n"
    assert target.read_text().startswith("id,at,team_id,")
    assert len(list(csv.reader(io.StringIO(target.read_text())))) == 4


@pytest.mark.parametrize("day", ["2026-13-01", "yesterday", "01/12/2026"])
def test_a_bad_date_is_refused_with_exit_2(
    recorded: list[AuditEvent], day: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "--since", day)
    assert (code, out) == (2, "")
    assert err == (
        f'thunderbot audit: --since "{day}" is not a date: give YYYY-MM-DD, like 2026-12-01.\n'
    )


def test_no_database_yet_exports_nothing_and_creates_none(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "audit", "--format", "json")
    assert (code, json.loads(out), err) == (0, [], "")
    assert not db_path.exists()


def test_a_suite_imported_from_the_command_line_is_a_recorded_settings_change(
    db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "suite", "import", str(EXAMPLE))[0] == 0
    assert run(capsys, "suite", "import", str(EXAMPLE))[0] == 0
    code, out, _ = run(capsys, "audit", "--format", "json")
    assert code == 0
    exported = json.loads(out)
    assert [(e["action"], e["subject_id"], e["detail"]) for e in exported] == [
        ("suite_imported", "refunds", "5 cases"),
        ("suite_imported", "refunds", "5 cases · replacing 5"),
    ]
    assert {e["user_id"] for e in exported} == {f"cli:{getpass.getuser()}"}
