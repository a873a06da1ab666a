"""Suite files and saved suites: what a file may say, every way it can be refused, and that an
export gives back what was imported (a real SQLite file)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlite_utils import Database

from bot.commands import Target
from bot.expectations import ToolCall
from bot.suites import (
    SuiteError,
    SuiteFile,
    SuiteSettings,
    dump_suite,
    parse_suite,
    suite_from_record,
    suite_record,
)
from storage import suites as store
from storage.db import open_db
from storage.models import SuiteCaseRecord, SuiteRecord

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "refunds.json"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_db(str(tmp_path / "thunderbot.db"))


def case(name: str = "refund-policy", **fields: Any) -> dict[str, Any]:
    return {"name": name, "scenario_prompt": "Ask about refunds.", **fields}


def parse(data: Any, *, name: str | None = None, target: str | None = None) -> SuiteFile:
    text = data if isinstance(data, str) else json.dumps(data)
    return parse_suite(text, name=name, filename="refunds.json", target=target)


def refused(data: Any, **options: Any) -> str:
    with pytest.raises(SuiteError) as error:
        parse(data, **options)
    return error.value.message


def exported_cases(text: str) -> list[dict[str, Any]]:
    data = json.loads(text)
    cases: list[dict[str, Any]] = data if isinstance(data, list) else data["cases"]
    return cases


# ---------------------------------------------------------------------------------------------
# Reading a file


def test_the_documented_example_reads_as_five_cases() -> None:
    suite = parse_suite(EXAMPLE.read_text(), name=None, filename=str(EXAMPLE))
    assert suite.name == "refunds"
    assert [c.name for c in suite.cases] == [
        "refund-policy",
        "order-status",
        "delayed-shipment",
        "human-handoff",
        "off-topic",
    ]
    assert all(c.expected.checkable for c in suite.cases)
    by_name = {c.name: c for c in suite.cases}
    assert by_name["off-topic"].expected.call_outcome == "success"
    assert by_name["refund-policy"].expected.transcript_contains == ("30 days", "card")
    assert by_name["order-status"].expected.tools_called == (
        ToolCall("lookup_order", (("order_id", "48213"),)),
    )
    assert by_name["delayed-shipment"].expected.min_score == 0.75


def test_the_guide_format_is_an_array_named_by_the_file_stem() -> None:
    suite = parse_suite(
        json.dumps([case(expected_outcome="success")]),
        name=None,
        filename="/tmp/suites/Refunds.json",
    )
    assert suite.name == "refunds"
    assert suite.target is None and suite.settings == SuiteSettings()
    (only,) = suite.cases
    assert (only.name, only.scenario_prompt) == ("refund-policy", "Ask about refunds.")
    assert only.expected.call_outcome == "success"
    assert only.expected_raw == "success"


def test_the_name_comes_from_the_option_then_the_object_then_the_stem() -> None:
    body = {"name": "From-File", "cases": [case()]}
    assert parse(body).name == "from-file"
    assert parse(body, name="Chosen").name == "chosen"
    assert parse([case()], name="chosen").name == "chosen"
    with pytest.raises(SuiteError, match="needs a name: give one with --name"):
        parse_suite(json.dumps([case()]), name=None, filename=None)


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"name": "my suite"}, '--name: "my suite" can\'t be a suite name: use up to 64'),
        ({"name": "-x"}, '--name: "-x" can\'t be a suite name'),
        ({"name": "a" * 65}, "can't be a suite name"),
    ],
)
def test_a_suite_name_it_cannot_use_is_refused(options: dict[str, str], problem: str) -> None:
    assert problem in refused([case()], **options)


def test_a_file_stem_that_is_no_suite_name_says_to_use_name() -> None:
    with pytest.raises(SuiteError) as error:
        parse_suite(json.dumps([case()]), name=None, filename="my refunds.json")
    assert error.value.message.startswith("the file name (give another with --name): ")


def test_the_object_form_carries_a_default_target_and_settings() -> None:
    suite = parse(
        {
            "name": "refunds",
            "target": "agent:12",
            "settings": {
                "stagger_seconds": 5,
                "repeat": 2,
                "direction": "inbound",
                "caller_number": "+1 (415) 555-0123",
            },
            "cases": [case()],
        }
    )
    assert suite.target == Target(kind="agent", id=12)
    assert suite.settings == SuiteSettings(
        stagger_seconds=5, repeat=2, direction="inbound", caller_number="+14155550123"
    )


def test_the_target_option_wins_over_the_file() -> None:
    suite = parse({"target": "agent:12", "cases": [case()]}, target="number:5")
    assert suite.target == Target(kind="phone_number", id=5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[\n  {"name": "a",\n   "scenario_prompt" "x"}\n]', "line 3, column 22: Expecting ':'"),
        # Python's own wording of this one changes between versions; the place is what matters.
        ('[{"name": "a", "scenario_prompt": "x"},]', "line 1, column "),
        ("", "the file is empty"),
        ("\n  \n", "the file is empty"),
        ('[{"name": "a", "scenario_prompt": "x"}] trailing', "line 1, column 41: Extra data"),
    ],
)
def test_malformed_json_is_refused_with_its_line_and_column(text: str, problem: str) -> None:
    assert problem in refused(text)


@pytest.mark.parametrize(
    ("data", "kind"),
    [('"refunds"', "a string"), (12, "a number"), (None, "null"), (True, "true or false")],
)
def test_a_file_that_is_neither_an_array_nor_an_object_is_refused(data: Any, kind: str) -> None:
    assert refused(data) == (
        f'the file must hold a JSON array of cases, or an object with "cases"; it holds {kind}'
    )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"name": "refunds"}, 'the suite object has no "cases"'),
        ({"cases": {"a": 1}}, "cases must be a list of cases; it is an object"),
        ({"cases": [case()], "tests": []}, '"tests" is not a suite field'),
        ({"cases": [case()], "target": 12}, 'target must be a string like "agent:12"'),
        ({"cases": [case()], "settings": [1]}, "settings must be an object"),
        ([], "the suite has no cases"),
    ],
)
def test_an_object_it_cannot_read_is_refused(data: Any, problem: str) -> None:
    assert problem in refused(data)


def test_a_bad_case_names_its_number_its_name_and_the_field() -> None:
    data = [case("a"), case("b"), case("refund-policy", expected_outcome={"min_score": 300})]
    assert refused(data) == (
        'case 3 ("refund-policy"): expected_outcome.min_score must be a number from 0 to 1 or 100'
    )


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        ("just a prompt", "case 2: must be an object with name, scenario_prompt"),
        ({"scenario_prompt": "x"}, "case 2: name is missing"),
        ({"name": "  ", "scenario_prompt": "x"}, "case 2: name must be a non-empty string"),
        ({"name": 7, "scenario_prompt": "x"}, "case 2: name must be a non-empty string"),
        ({"name": "n" * 101, "scenario_prompt": "x"}, "name is 101 characters; keep it to 100"),
        ({"name": "two\nlines", "scenario_prompt": "x"}, "name must be one line of text"),
        ({"name": "x"}, 'case 2 ("x"): scenario_prompt is missing'),
        ({"name": "x", "scenario_prompt": " \n "}, 'case 2 ("x"): scenario_prompt is empty'),
        ({"name": "x", "scenario_prompt": ["a"]}, "scenario_prompt must be a string"),
        (
            {"name": "x", "scenario_prompt": "p" * 4001},
            'case 2 ("x"): scenario_prompt is 4,001 characters; keep it to 4,000',
        ),
        (
            {"name": "x", "scenario_prompt": "p", "expected": "success"},
            'case 2 ("x"): "expected" is not a case field (use name, scenario_prompt, '
            "expected_outcome)",
        ),
        (
            {"name": "x", "scenario_prompt": "p", "expected_outcome": {"score": 0.8}},
            'case 2 ("x"): expected_outcome.score is not a known check',
        ),
        (
            {"name": "x", "scenario_prompt": "p", "expected_outcome": 3},
            'case 2 ("x"): expected_outcome must be a string or an object',
        ),
        (
            {
                "name": "x",
                "scenario_prompt": "p",
                "expected_outcome": {"tools_called": [{"name": "t", "arguments": [1]}]},
            },
            'case 2 ("x"): expected_outcome.tools_called[0].arguments must be an object',
        ),
    ],
)
def test_every_case_problem_is_refused_by_place_and_field(item: Any, problem: str) -> None:
    assert problem in refused([case("first"), item])


def test_a_prompt_of_exactly_the_limit_is_accepted() -> None:
    (only,) = parse([{"name": "x", "scenario_prompt": "p" * 4000}]).cases
    assert len(only.scenario_prompt) == 4000


def test_duplicate_case_names_are_refused_whatever_their_case() -> None:
    data = [case("a"), case("refund-policy"), case("b"), case("c"), case("Refund-Policy ")]
    assert refused(data) == 'case 5: the name "Refund-Policy" is used twice (cases 2 and 5)'


def test_at_most_a_hundred_cases() -> None:
    assert len(parse([case(f"c{i}") for i in range(100)]).cases) == 100
    assert refused([case(f"c{i}") for i in range(101)]) == (
        "the suite has 101 cases; a suite holds at most 100"
    )


def test_repeats_may_not_take_a_suite_run_past_a_hundred_calls() -> None:
    body = {"settings": {"repeat": 3}, "cases": [case(f"c{i}") for i in range(34)]}
    assert refused(body) == (
        "settings.repeat: 3 runs of each of 34 cases is 102 runs; a suite run is at most 100"
    )
    body["cases"] = body["cases"][:33]
    assert parse(body).settings.repeat == 3


@pytest.mark.parametrize(
    ("settings_", "problem"),
    [
        ({"stagger_seconds": 61}, "settings.stagger_seconds must be a whole number from 0 to 60"),
        ({"stagger_seconds": -1}, "settings.stagger_seconds must be a whole number from 0 to 60"),
        ({"stagger_seconds": 2.5}, "settings.stagger_seconds must be a whole number"),
        ({"repeat": 0}, "settings.repeat must be a whole number from 1 to 5"),
        ({"repeat": 6}, "settings.repeat must be a whole number from 1 to 5"),
        ({"repeat": True}, "settings.repeat must be a whole number from 1 to 5"),
        ({"direction": "sideways"}, 'settings.direction must be "outbound" or "inbound"'),
        ({"caller_number": "555-0123"}, 'settings.caller_number: "555-0123" is not a phone'),
        ({"caller_number": 14155550123}, "settings.caller_number must be a string"),
        ({"mode": "sip"}, "settings.mode is not a setting (use stagger_seconds, repeat"),
    ],
)
def test_settings_it_cannot_use_are_refused(settings_: dict[str, Any], problem: str) -> None:
    assert problem in refused({"settings": settings_, "cases": [case()]})


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("agent:twelve", '--target: I couldn\'t read "agent:twelve": an agent id is a number'),
        ("12", '--target: I couldn\'t read "12": say which kind, like agent:12.'),
        ("robot:1", '--target: I couldn\'t read "robot:1"'),
        ("support", '--target: "support" is not agent:<id> or number:<id>'),
    ],
)
def test_a_target_option_it_cannot_read_is_refused(target: str, problem: str) -> None:
    assert problem in refused([case()], target=target)


def test_a_target_in_the_file_it_cannot_read_is_refused() -> None:
    assert refused({"target": "agent:0", "cases": [case()]}).startswith(
        'target: I couldn\'t read "agent:0"'
    )


def test_json_a_suite_cannot_hold_is_refused() -> None:
    assert refused('[{"name": "a", "name": "b", "scenario_prompt": "x"}]') == (
        'the key "name" appears twice in one object'
    )
    assert "NaN is not a JSON number" in refused(
        '[{"name": "a", "scenario_prompt": "x", "expected_outcome": {"min_score": NaN}}]'
    )
    assert "1e999 is too large a number" in refused(
        '[{"name": "a", "scenario_prompt": "x", "expected_outcome": {"min_score": 1e999}}]'
    )


# ---------------------------------------------------------------------------------------------
# Writing a file


def test_a_suite_without_target_or_settings_exports_as_the_guide_array() -> None:
    text = dump_suite(parse([case("café", expected_outcome="success"), case("b")]))
    assert text.endswith("]\n") and "café" in text and '\n  {\n    "name"' in text
    assert json.loads(text) == [case("café", expected_outcome="success"), case("b")]


def test_a_suite_with_a_target_or_settings_exports_as_the_object_form() -> None:
    body = {
        "name": "refunds",
        "target": "number:5",
        "settings": {"repeat": 2},
        "cases": [case(expected_outcome={"status": "completed"})],
    }
    assert json.loads(dump_suite(parse(body))) == body
    assert json.loads(dump_suite(parse([case()], target="agent:3"))) == {
        "name": "refunds",
        "target": "agent:3",
        "cases": [case()],
    }


def test_an_absent_expectation_stays_absent_and_null_stays_null() -> None:
    cases = exported_cases(dump_suite(parse([case("a"), case("b", expected_outcome=None)])))
    assert cases == [case("a"), case("b", expected_outcome=None)]


def test_expectations_export_exactly_as_written() -> None:
    expected = {
        "tools_called": ["lookup_order", {"name": "issue_refund", "arguments": {"id": 12}}],
        "min_score": 80,
        "transcript_contains": "refund",
        "status": "Completed",
    }
    cases = exported_cases(dump_suite(parse([case(expected_outcome=expected)])))
    assert cases[0]["expected_outcome"] == expected
    assert list(cases[0]["expected_outcome"]) == list(expected), "keys keep their order"


# ---------------------------------------------------------------------------------------------
# Stored suites


def saved(db: Database, data: Any, **options: Any) -> SuiteRecord:
    record, _ = store.save_suite(db, suite_record(parse(data, **options), created_by="U1"))
    return record


def test_a_saved_suite_comes_back_with_its_cases_in_order(db: Database) -> None:
    text = EXAMPLE.read_text()
    suite = parse_suite(text, name=None, filename=str(EXAMPLE), target="agent:12")
    stored, previous = store.save_suite(db, suite_record(suite, created_by="U1"))
    assert previous is None
    again = store.get_suite(db, "REFUNDS")
    assert again == stored
    assert again is not None and again.created_by == "U1" and again.created_at
    assert [c.position for c in again.cases] == [1, 2, 3, 4, 5]
    loaded = suite_from_record(again)
    assert loaded.target == Target(kind="agent", id=12)
    assert loaded.cases == suite.cases
    assert exported_cases(dump_suite(loaded)) == json.loads(text)


def test_saving_again_replaces_the_cases_and_keeps_when_it_was_made(db: Database) -> None:
    first = saved(db, [case("a"), case("b"), case("c")], target="agent:12")
    stored, previous = store.save_suite(
        db, suite_record(parse([case("c"), case("z")]), created_by="U2")
    )
    assert previous == first
    assert [c.name for c in stored.cases] == ["c", "z"]
    assert (stored.target_type, stored.target_id) == (None, None)
    assert (stored.created_by, stored.created_at) == ("U1", first.created_at)
    assert stored.updated_at >= first.updated_at
    rows = db.execute("select suite, position, name from suite_cases order by position")
    assert rows.fetchall() == [("refunds", 1, "c"), ("refunds", 2, "z")]


def test_a_save_that_fails_leaves_the_suite_as_it_was(db: Database) -> None:
    before = saved(db, [case("a"), case("b")])
    # Past the parser's rules, the table itself refuses a repeated name.
    clash = SuiteRecord(
        name="refunds",
        cases=[
            SuiteCaseRecord(position=1, name="x", scenario_prompt="p"),
            SuiteCaseRecord(position=2, name="X", scenario_prompt="p"),
        ],
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.save_suite(db, clash)
    assert store.get_suite(db, "refunds") == before


def test_the_list_counts_cases_and_shows_the_default_target(db: Database) -> None:
    saved(db, [case("a"), case("b")], name="refunds", target="number:5")
    saved(db, [case("a")], name="billing")
    summaries = store.list_suites(db)
    assert [(s.name, s.case_count, s.target_type, s.target_id) for s in summaries] == [
        ("billing", 1, None, None),
        ("refunds", 2, "phone_number", 5),
    ]
    assert all(s.updated_at for s in summaries)


def test_deleting_a_suite_removes_its_cases(db: Database) -> None:
    saved(db, [case("a"), case("b")])
    assert store.delete_suite(db, "Refunds") is True
    assert store.get_suite(db, "refunds") is None
    assert db.execute("select count(*) from suite_cases").fetchone()[0] == 0
    assert store.delete_suite(db, "refunds") is False


# ---------------------------------------------------------------------------------------------
# Export of an import: a property

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s != "")
_JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**6), 10**6), st.text(max_size=10)
)
_EXPECTED = st.one_of(
    st.none(),
    st.sampled_from(["success", "FAILURE", "partial", "unknown", "a note for people", ""]),
    st.fixed_dictionaries(
        {},
        optional={
            "status": st.sampled_from(["completed", "failed", "Completed"]),
            "call_outcome": _TEXT,
            "min_score": st.one_of(
                st.floats(0, 1, allow_nan=False), st.integers(0, 100), st.just(1.0)
            ),
            "min_duration_seconds": st.integers(0, 60),
            "max_duration_seconds": st.integers(60, 600),
            "transcript_contains": st.one_of(_TEXT, st.lists(_TEXT, max_size=3)),
            "transcript_excludes": st.lists(_TEXT, max_size=3),
            "tools_called": st.lists(
                st.one_of(
                    _TEXT,
                    st.fixed_dictionaries(
                        {"name": _TEXT},
                        optional={"arguments": st.dictionaries(st.text(max_size=8), _JSON_SCALAR)},
                    ),
                ),
                max_size=3,
            ),
            "tools_not_called": st.lists(_TEXT, max_size=2),
        },
    ),
)
_CASE = st.fixed_dictionaries(
    {"name": _TEXT, "scenario_prompt": st.text(min_size=1, max_size=60).filter(str.strip)},
    optional={"expected_outcome": _EXPECTED},
)
_CASES = st.lists(_CASE, min_size=1, max_size=8, unique_by=lambda c: c["name"].casefold())


@settings(max_examples=60, deadline=None)
@given(
    cases=_CASES,
    target=st.one_of(st.none(), st.sampled_from(["agent:12", "number:5"])),
    stagger=st.one_of(st.none(), st.integers(0, 60)),
)
def test_an_export_of_an_import_gives_back_the_same_cases(
    cases: list[dict[str, Any]], target: str | None, stagger: int | None
) -> None:
    body: Any = cases
    if target is not None or stagger is not None:
        body = {"name": "prop", "cases": cases}
        if target is not None:
            body["target"] = target
        if stagger is not None:
            body["settings"] = {"stagger_seconds": stagger}
    suite = parse_suite(json.dumps(body), name=None, filename="prop.json")
    db = open_db(":memory:")
    try:
        store.save_suite(db, suite_record(suite, created_by="U1"))
        record = store.get_suite(db, "prop")
    finally:
        db.close()
    assert record is not None
    text = dump_suite(suite_from_record(record))
    assert json.loads(text) == body
    again = parse_suite(text, name=None, filename="prop.json")
    assert again == suite
