"""The batch and suite grammar: every limit is checked before anything is billed, with a
message naming the problem and the allowed range."""

from __future__ import annotations

import pytest

from bot.commands import (
    USAGE,
    BatchCommand,
    CommandError,
    CompareCommand,
    SmokeCommand,
    SuiteDelete,
    SuiteExport,
    SuiteImport,
    SuiteList,
    SuiteRun,
    SuiteShow,
    SuiteSmoke,
    SuiteTrend,
    Target,
    parse_command,
)

AGENT_12 = Target(kind="agent", id=12)


def test_a_batch_with_every_option() -> None:
    command = parse_command(
        'batch agent:12 inbound --caller +14155550123 --stagger 5 --repeat 3 "One." "Two."'
    )
    assert command == BatchCommand(
        target=AGENT_12,
        prompts=("One.", "Two."),
        direction="inbound",
        caller="+14155550123",
        stagger=5,
        repeat=3,
    )
    assert isinstance(command, BatchCommand) and command.run_count == 6


def test_a_batch_without_prompts_asks_for_them() -> None:
    assert parse_command("batch support") == BatchCommand(target=Target("alias", alias="support"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            'batch agent:12 --stagger 61 "A."',
            "--stagger is the seconds between launches, from 0 to 60",
        ),
        ('batch agent:12 --stagger -1 "A."', "from 0 to 60"),
        ('batch agent:12 --repeat 0 "A."', "--repeat is how often each scenario runs, from 1 to 5"),
        ('batch agent:12 --repeat 6 "A."', "from 1 to 5"),
        ("batch agent:12 --repeat", "--repeat needs a value after it."),
        ('batch agent:12 "A." ""', "Scenario prompt 2 is empty."),
        ('batch agent:12 --sip "A."', "Batches are bot-to-bot"),
        ("batch agent:12 hello", 'I don\'t know the word "hello".'),
        ('batch agent:12 --repet 2 "A."', "Did you mean --repeat?"),
        ('batch "A."', "Which agent or number should I call?"),
        ('batch agent:x "A."', 'I couldn\'t read "agent:x"'),
        ('batch agent:12 --fast "A."', 'I don\'t know the option "--fast"'),
        (
            "batch agent:12 --repeat 5 " + " ".join(f'"Prompt {i}."' for i in range(21)),
            "That is 105 runs; one request holds at most 100",
        ),
    ],
)
def test_batch_limits_are_named(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert problem in raised.value.problem
    assert raised.value.usage == USAGE["batch"]


def test_a_hundred_runs_is_allowed() -> None:
    prompts = " ".join(f'"Prompt {i}."' for i in range(20))
    command = parse_command(f"batch agent:12 --repeat 5 {prompts}")
    assert isinstance(command, BatchCommand) and command.run_count == 100


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("suite list", SuiteList()),
        ("suite import", SuiteImport()),
        ("suite show Refunds", SuiteShow("refunds")),
        ("suite export refunds", SuiteExport("refunds")),
        ("suite delete refunds", SuiteDelete("refunds")),
        ("suite run refunds", SuiteRun("refunds")),
        (
            "suite run refunds agent:13 --repeat 3 --stagger 0",
            SuiteRun("refunds", Target("agent", id=13), 3, 0),
        ),
    ],
)
def test_suite_commands(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("suite run refunds --repeat 9", "from 1 to 5"),
        ("suite run refunds --stagger 99", "from 0 to 60"),
        ("suite run refunds agent:1 agent:2", 'I couldn\'t read "agent:2" here.'),
        ("suite show", "I couldn't read that suite command."),
        ('suite show "bad name!"', "can't be a suite name"),
        ("suite frobnicate", "I couldn't read that suite command."),
    ],
)
def test_suite_mistakes_are_named(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert problem in raised.value.problem
    assert raised.value.usage == USAGE["suite"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smoke agent:12", SmokeCommand(AGENT_12)),
        ("suite smoke happy agent:12", SuiteSmoke("happy", AGENT_12)),
        ("suite trend refunds", SuiteTrend("refunds")),
        ("suite trend refunds agent:12", SuiteTrend("refunds", AGENT_12)),
        (
            "compare refunds agent:12 agent:13 --repeat 2",
            CompareCommand((AGENT_12, Target("agent", id=13)), suite="refunds", repeat=2),
        ),
        (
            'compare "Ask about refunds." agent:12 number:4',
            CompareCommand((AGENT_12, Target("phone_number", id=4)), prompt="Ask about refunds."),
        ),
    ],
)
def test_smoke_trend_and_compare(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize(
    ("text", "problem", "usage"),
    [
        ("smoke", "smoke needs one target", "smoke"),
        ("compare refunds agent:12", "at least two targets", "compare"),
        ("compare refunds agent:12 agent:12", "Each target may be named once.", "compare"),
        (
            "compare refunds agent:1 agent:2 agent:3 agent:4 agent:5 agent:6",
            "at most 5 targets",
            "compare",
        ),
        ('compare "" agent:1 agent:2', "The scenario prompt is empty.", "compare"),
        ("suite smoke happy", "I couldn't read that suite command.", "suite"),
    ],
)
def test_smoke_and_compare_mistakes(text: str, problem: str, usage: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert problem in raised.value.problem
    assert raised.value.usage == USAGE[usage]
