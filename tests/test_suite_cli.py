"""`thunderbot suite import | export | list`, run in-process on a real SQLite file, as a person
or a script would run them: no Slack or ThunderPhone variables, no workspace argument."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "refunds.json"


@pytest.fixture
def db_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data" / "bot.db"
    path.parent.mkdir()
    monkeypatch.setenv("THUNDERBOT_DB", str(path))
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data, indent=2))
    return path


def stored(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every suite row, to show a refused import changed nothing."""
    with sqlite3.connect(db_path) as connection:
        tables = {
            table: connection.execute(f"select * from {table} order by 1, 2").fetchall()
            for table in ("suites", "suite_cases")
        }
    connection.close()
    return tables


def case(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "scenario_prompt": f"Scenario {name}.", **fields}


def test_import_on_a_fresh_database_then_export_gives_back_the_file(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not db_path.exists()
    code, out, err = run(capsys, "suite", "import", str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out == f'Imported suite "refunds" from {EXAMPLE}: 5 cases.\n'
    assert db_path.exists()

    code, out, err = run(capsys, "suite", "export", "refunds")
    assert (code, err) == (0, "")
    assert json.loads(out) == json.loads(EXAMPLE.read_text())
    assert out.endswith("]\n")


def test_the_object_form_round_trips_with_its_target_and_settings(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = {
        "name": "billing",
        "target": "agent:12",
        "settings": {"stagger_seconds": 5, "repeat": 2},
        "cases": [
            case("late-fee", expected_outcome={"min_score": 0.9, "transcript_contains": ["fee"]}),
            case("dispute", expected_outcome="failure"),
            case("plain"),
        ],
    }
    source = write(tmp_path / "whatever.json", body)
    code, out, _ = run(capsys, "suite", "import", str(source))
    assert code == 0
    assert out == (
        f'Imported suite "billing" from {source}: 3 cases, default target agent:12, '
        "settings stagger_seconds 5, repeat 2.\n"
    )
    exported = tmp_path / "out" / "billing.json"
    exported.parent.mkdir()
    code, out, err = run(capsys, "suite", "export", "BILLING", "-o", str(exported))
    assert (code, err) == (0, "")
    assert out == f'Exported suite "billing" (3 cases) to {exported}.\n'
    assert json.loads(exported.read_text()) == body

    # And the export imports back to the same suite.
    code, out, _ = run(capsys, "suite", "import", str(exported))
    assert code == 0 and out.startswith('Replaced suite "billing"')
    run(capsys, "suite", "export", "billing", "-o", str(exported))
    assert json.loads(exported.read_text()) == body


def test_the_name_and_target_options(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "cases.json", [case("a")])
    code, out, _ = run(
        capsys, "suite", "import", str(source), "--name", "Smoke", "--target", "number:5"
    )
    assert code == 0
    assert out == f'Imported suite "smoke" from {source}: 1 case, default target number:5.\n'
    _, out, _ = run(capsys, "suite", "export", "smoke")
    assert json.loads(out) == {"name": "smoke", "target": "number:5", "cases": [case("a")]}


def test_importing_again_replaces_the_cases(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "refunds.json"
    write(source, [case("a"), case("b"), case("c")])
    assert run(capsys, "suite", "import", str(source), "--target", "agent:12")[0] == 0
    write(source, [case("c", expected_outcome="success"), case("new")])
    code, out, err = run(capsys, "suite", "import", str(source))
    assert (code, err) == (0, "")
    assert out == (
        f'Replaced suite "refunds" from {source}: 2 cases (was 3).\n'
        "It no longer has a default target (was agent:12; keep one with --target).\n"
    )
    _, out, _ = run(capsys, "suite", "export", "refunds")
    assert json.loads(out) == [case("c", expected_outcome="success"), case("new")]
    assert len(stored(db_path)["suite_cases"]) == 2


def test_the_list_is_a_table_of_the_suites(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "suite", "list")
    assert (code, out, err) == (
        0,
        "No suites yet. Import one with: thunderbot suite import FILE\n",
        "",
    )
    assert not db_path.exists(), "reading suites does not create a database"

    run(capsys, "suite", "import", str(EXAMPLE), "--target", "agent:12")
    run(capsys, "suite", "import", str(write(tmp_path / "smoke.json", [case("a")])))
    code, out, err = run(capsys, "suite", "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["name", "cases", "default", "target", "updated"]
    assert lines[1].split()[:3] == ["refunds", "5", "agent:12"]
    assert lines[2].split()[:3] == ["smoke", "1", "-"]
    for line in lines[1:]:
        day, clock, zone = line.split()[3:]
        assert len(day) == 10 and len(clock) == 5 and zone == "UTC"
    # Columns line up under their headings.
    assert lines[1].index("agent:12") == lines[0].index("default target")


def test_an_unknown_suite_is_an_error(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "suite", "export", "nope")
    assert (code, out) == (1, "")
    assert err == 'There is no suite "nope". See: thunderbot suite list\n'
    run(capsys, "suite", "import", str(EXAMPLE))
    code, out, err = run(capsys, "suite", "export", "nope")
    assert (code, out) == (1, "") and 'There is no suite "nope"' in err


MALFORMED: list[tuple[str, Any, list[str], str]] = [
    (
        "bad JSON",
        '[\n  {"name": "a",\n   "scenario_prompt": "x",,}\n]',
        [],
        "line 3, column 27: Expecting property name enclosed in double quotes",
    ),
    (
        "not an array or object",
        '"refunds"',
        [],
        'the file must hold a JSON array of cases, or an object with "cases"; it holds a string',
    ),
    (
        "bad case",
        [case("a"), case("b"), case("refund-policy", expected_outcome={"min_score": 300})],
        [],
        'case 3 ("refund-policy"): expected_outcome.min_score must be a number from 0 to 1 or 100',
    ),
    (
        "duplicate names",
        [case("a"), case("refund-policy"), case("b"), case("c"), case("refund-policy")],
        [],
        'case 5: the name "refund-policy" is used twice (cases 2 and 5)',
    ),
    (
        "empty prompt",
        [case("a"), {"name": "quiet", "scenario_prompt": "   "}],
        [],
        'case 2 ("quiet"): scenario_prompt is empty',
    ),
    (
        "missing name",
        [case("a"), {"scenario_prompt": "x"}],
        [],
        "case 2: name is missing",
    ),
    (
        "unknown expectation key",
        [case("a", expected_outcome={"must_say": "hello"})],
        [],
        'case 1 ("a"): expected_outcome.must_say is not a known check',
    ),
    (
        "bad settings",
        {"settings": {"repeat": 9}, "cases": [case("a")]},
        [],
        "settings.repeat must be a whole number from 1 to 5",
    ),
    (
        "unknown setting",
        {"settings": {"retries": 1}, "cases": [case("a")]},
        [],
        "settings.retries is not a setting",
    ),
    (
        "too many cases",
        [case(f"case-{i}") for i in range(101)],
        [],
        "the suite has 101 cases; a suite holds at most 100",
    ),
    (
        "bad --target",
        [case("a")],
        ["--target", "agent:twelve"],
        '--target: I couldn\'t read "agent:twelve": an agent id is a number, like agent:12.',
    ),
    (
        "bad --name",
        [case("a")],
        ["--name", "my suite"],
        '--name: "my suite" can\'t be a suite name',
    ),
    ("empty file", "", [], "the file is empty"),
]


@pytest.mark.parametrize(
    ("content", "options", "problem"),
    [item[1:] for item in MALFORMED],
    ids=[item[0] for item in MALFORMED],
)
def test_a_file_it_cannot_use_is_refused_and_nothing_is_stored(
    db_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: Any,
    options: list[str],
    problem: str,
) -> None:
    # First on a fresh database: nothing is created.
    source = write(tmp_path / "refunds.json", content)
    code, out, err = run(capsys, "suite", "import", str(source), *options)
    assert (code, out) == (1, "")
    assert err.startswith(f"cannot import {source}: {problem}")
    assert err.endswith("\nNothing was imported.\n") and err.count("\n") == 2
    assert not db_path.exists()

    # Then over a saved suite of the same name: it stays exactly as it was.
    good = write(tmp_path / "good.json", [case("keep-me", expected_outcome="success")])
    assert run(capsys, "suite", "import", str(good), "--name", "refunds")[0] == 0
    before = stored(db_path)
    code, out, err = run(capsys, "suite", "import", str(source), *options)
    assert (code, out) == (1, "")
    assert problem in err and err.endswith("Nothing was imported.\n")
    assert stored(db_path) == before


def test_a_file_that_cannot_be_read_is_an_error(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.json"
    code, out, err = run(capsys, "suite", "import", str(missing))
    assert (code, out) == (1, "")
    assert err == f"cannot import {missing}: No such file or directory\n"
    latin = tmp_path / "latin.json"
    latin.write_bytes('[{"name": "café", "scenario_prompt": "x"}]'.encode("latin-1"))
    code, _, err = run(capsys, "suite", "import", str(latin))
    assert code == 1 and err == f"cannot import {latin}: it is not UTF-8 text (byte 15)\n"
    assert not db_path.exists()


def test_a_file_from_standard_input_needs_a_name(
    db_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([case("a")])))
    code, _, err = run(capsys, "suite", "import", "-")
    assert code == 1 and "the suite needs a name: give one with --name" in err
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([case("a")])))
    code, out, _ = run(capsys, "suite", "import", "-", "--name", "piped")
    assert code == 0 and out == 'Imported suite "piped" from -: 1 case.\n'


def test_usage_errors_exit_2(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["suite"], ["suite", "import"], ["suite", "export"], ["suite", "rename", "x"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "usage: thunderbot suite" in capsys.readouterr().err


def test_the_database_defaults_to_thunderbot_db_and_reads_dot_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The shared fixture runs each test in tmp_path with no THUNDERBOT_* variables set.
    assert run(capsys, "suite", "import", str(EXAMPLE))[0] == 0
    assert (tmp_path / "thunderbot.db").exists()
    (tmp_path / ".env").write_text("THUNDERBOT_DB=from-env.db\n")
    assert run(capsys, "suite", "import", str(EXAMPLE), "--name", "other")[0] == 0
    assert (tmp_path / "from-env.db").exists()
    _, out, _ = run(capsys, "suite", "list")
    assert [line.split()[0] for line in out.splitlines()] == ["name", "other"]
