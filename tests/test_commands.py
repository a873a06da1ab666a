"""The /testcall grammar: what people type, and the problem named when it can't be read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.commands import (
    USAGE,
    AdminSet,
    AliasList,
    AliasRemove,
    AliasSet,
    AuditCommand,
    BudgetShow,
    CommandError,
    HelpCommand,
    RunCommand,
    Target,
    Who,
    parse_command,
)


def test_run_with_every_option() -> None:
    command = parse_command(
        'run agent:12 inbound --sip --caller +14155550123 "You are a polite caller."'
    )
    assert command == RunCommand(
        target=Target(kind="agent", id=12),
        prompt="You are a polite caller.",
        direction="inbound",
        mode="sip",
        caller="+14155550123",
    )


def test_run_defaults_to_outbound_bot_to_bot() -> None:
    command = parse_command('run number:34 "Ask for opening hours."')
    assert command == RunCommand(
        target=Target(kind="phone_number", id=34), prompt="Ask for opening hours."
    )


def test_slack_escapes_and_typographic_quotes_are_undone() -> None:
    command = parse_command("run support “Ask about R&amp;D &lt;refunds&gt;, don't hang up.”")
    assert isinstance(command, RunCommand)
    assert command.target == Target(kind="alias", alias="support")
    assert command.prompt == "Ask about R&D <refunds>, don't hang up."


def test_links_slack_formatted_read_as_typed() -> None:
    # The manifest has Slack escape mentions and links (should_escape), so addresses arrive
    # wrapped; the prompt holds them as the person typed them.
    command = parse_command(
        'run agent:12 "See <https://example.com/faq> or <https://example.com/a|example.com/a>,'
        ' call <tel:+14155550123|+14155550123>."'
    )
    assert isinstance(command, RunCommand)
    assert command.prompt == ("See https://example.com/faq or example.com/a, call +14155550123.")


def test_mentions_slack_escaped_in_a_prompt_read_as_typed() -> None:
    # Picked as one types, people, channels, groups and @here arrive as Slack's markup; the
    # test bot that reads the prompt gets them as they were shown.
    command = parse_command(
        'run agent:12 "Ask for <@U0LI|li> (<@U0SAM>) about <#C0QA|voice-qa>, cc '
        '<!subteam^S0QA|@qa-leads> and <!here>, by <!date^1796146481^{date}|Dec 1>."'
    )
    assert isinstance(command, RunCommand)
    assert command.prompt == (
        "Ask for @li (@U0SAM) about #voice-qa, cc @qa-leads and @here, by Dec 1."
    )


def test_admin_and_budget_read_slack_markup_and_name_it_as_typed() -> None:
    everyone = parse_command("admin start <!everyone> in <#C0QA|voice-qa>")
    assert isinstance(everyone, AdminSet)
    assert (everyone.who, everyone.channel) == (Who(everyone=True), "C0QA")
    assert parse_command("budget show") == BudgetShow()
    with pytest.raises(CommandError) as raised:
        parse_command("admin start <@U0LI|li> in <@U0SAM|sam>")
    assert "I can't tell which channel @sam is" in raised.value.problem


def test_options_after_a_quoted_prompt_still_count() -> None:
    command = parse_command('run agent:12 "Ask about refunds." inbound')
    assert isinstance(command, RunCommand)
    assert command.direction == "inbound"


def test_an_unquoted_word_is_refused_so_a_typo_never_reaches_the_prompt() -> None:
    with pytest.raises(CommandError) as raised:
        parse_command("run agent:12 Ask about inbound shipping")
    assert raised.value.problem == (
        'I don\'t know the word "Ask". Put the scenario prompt in double quotes.'
    )


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ('run agent:12 inboud "Hi."', 'I don\'t know the word "inboud". Did you mean inbound?'),
        ('run agent:12 outbond "Hi."', "Did you mean outbound?"),
        ('run agent:12 --sp "Hi."', 'I don\'t know the option "--sp". Did you mean --sip?'),
        ('run agent:12 "Hi." --calller +14155550123', "Did you mean --caller?"),
    ],
)
def test_a_word_close_to_an_option_gets_a_suggestion(text: str, suggestion: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert suggestion in raised.value.problem


def test_a_run_takes_one_quoted_prompt() -> None:
    with pytest.raises(CommandError) as raised:
        parse_command('run agent:12 "One." "Two."')
    assert "a run takes one. For several, use /testcall batch." in raised.value.problem


def test_caller_number_is_normalised_to_e164() -> None:
    command = parse_command('run agent:12 --caller "+1 (415) 555-0123" "Hi."')
    assert isinstance(command, RunCommand)
    assert command.caller == "+14155550123"


@pytest.mark.parametrize("text", ["", "help", "  HELP  ", "--help"])
def test_help(text: str) -> None:
    assert parse_command(text) == HelpCommand()


def test_alias_commands() -> None:
    assert parse_command("alias set Support agent:12") == AliasSet(
        name="support", target=Target(kind="agent", id=12)
    )
    assert parse_command("alias list") == AliasList()
    assert parse_command("alias remove support") == AliasRemove(name="support")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "deploy now",
            'Unknown command: "deploy". Try run, batch, suite, smoke, compare, alias, audit, '
            "budget, admin or help.",
        ),
        ("run", "Which agent or number should I call? Name a target, like agent:12."),
        ('run "Ask about refunds."', "Which agent or number should I call?"),
        (
            'run agent:twelve "Hi"',
            'I couldn\'t read "agent:twelve": an agent id is a number, like agent:12.',
        ),
        (
            'run number:x "Hi"',
            'I couldn\'t read "number:x": a phone number id is a number, like number:12.',
        ),
        (
            'run robot:3 "Hi"',
            'I couldn\'t read "robot:3": a target is agent:<id>, number:<id> or an alias',
        ),
        ('run 12 "Hi"', 'I couldn\'t read "12": say which kind, like agent:12.'),
        ('run agent:12 --caller 555-0123 "Hi"', '"555-0123" is not a phone number in E.164 format'),
        ("run agent:12 --caller", "--caller needs a phone number after it"),
        (
            'run agent:12 "Ask about refunds',
            "The scenario prompt has an opening quote but no closing one",
        ),
        ("run agent:12", "A test call needs a scenario prompt in quotes"),
        ('run agent:12 ""', "A test call needs a scenario prompt in quotes"),
        ('run agent:12 --fast "Hi"', 'I don\'t know the option "--fast".'),
        ("alias set support", "alias set needs a name and a target"),
        ("alias set run agent:12", '"run" can\'t be an alias name: it is a word /testcall'),
        (
            "alias set " + "x" * 40 + " agent:12",
            f'"{"x" * 40}" can\'t be an alias name: it is 40 characters; use up to 32.',
        ),
        ("alias set -x agent:12", '"-x" can\'t be an alias name: use letters, digits'),
        ("alias set support support2", 'I couldn\'t read "support2"'),
    ],
)
def test_bad_input_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert raised.value.problem.startswith(problem)
    assert raised.value.usage.startswith("/testcall")


def test_an_overlong_prompt_is_refused_with_its_length() -> None:
    with pytest.raises(CommandError, match="4,001 characters; keep it under 4,000"):
        parse_command(f'run agent:12 "{"x" * 4001}"')


@given(st.text(alphabet=st.characters(blacklist_characters='"“”„«»\x00'), min_size=1, max_size=200))
def test_any_quoted_prompt_survives_parsing(prompt: str) -> None:
    cleaned = " ".join(prompt.replace("&", "and").replace("<", "").replace(">", "").split())
    if not cleaned:
        return
    command = parse_command(f'run agent:7 "{cleaned}"')
    assert isinstance(command, RunCommand)
    assert command.prompt == cleaned


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("audit", AuditCommand()),
        ("audit 7110", AuditCommand(run_id=7110)),
        ("audit run 7110", AuditCommand(run_id=7110)),
        ("audit #7110", AuditCommand(run_id=7110)),
        ("audit 3F9A0C12", AuditCommand(prefix="3f9a0c12")),
        ("audit batch 3f9a0c12d4", AuditCommand(prefix="3f9a0c12d4")),
        ("audit compare:3f9a0c12", AuditCommand(prefix="3f9a0c12")),
        # Eight digits may be a run's id or the start of a batch's: both are looked for.
        ("audit 12345678", AuditCommand(run_id=12345678, prefix="12345678")),
    ],
)
def test_audit_takes_a_run_id_a_batch_id_or_nothing(text: str, command: AuditCommand) -> None:
    assert parse_command(text) == command


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("audit 3f9a", '"3f9a" is too short for a batch id: give at least 8 characters'),
        ("audit yesterday", 'I couldn\'t read "yesterday": give a run id, like 7110, or a batch'),
        ("audit 7110 7111", "audit takes at most one id"),
        ("audit 0", 'I couldn\'t read "0": give a run id'),
        ("audti 7110", 'Unknown command: "audti". Did you mean audit?'),
        ("aduit", 'Unknown command: "aduit". Did you mean audit?'),
    ],
)
def test_a_bad_audit_command_names_the_problem(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert raised.value.problem.startswith(problem)
    expected = USAGE["help"] if text.startswith(("audti", "aduit")) else USAGE["audit"]
    assert raised.value.usage == expected


def test_audit_is_no_alias_name() -> None:
    with pytest.raises(CommandError, match="it is a word /testcall itself uses"):
        parse_command("alias set audit agent:12")
