"""Permissions: admins say, from Slack, who may start runs, bless baselines and file critical
reports; every command and click checks, and a refused person is told why while nothing is
launched or stored."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.models.blocks import Block

from bot import ids
from bot.blocks.admin import admin_saved, admin_show, refused
from bot.commands import AdminSet, AdminShow, CommandError, Who, parse_command
from bot.permission_rules import PermissionRules
from bot.sandbox.slack import Ephemeral, Message
from bot.sandbox.stack import LocalStack
from storage.db import open_db
from storage.permissions import PermissionRule, rule_among, save_rule
from tests.helpers import (
    PROMPT,
    confirm,
    launches_posted,
    rows,
    shown,
    slack_calls,
    wait_for_graded_result,
    wait_for_result,
)
from tests.test_batches import batch_posts, import_suite

BOSS = "U0BOSS"


def with_boss(stack: LocalStack) -> LocalStack:
    stack.fake.users[BOSS] = "boss"
    stack.fake.join("C0QA", BOSS)
    return stack


@pytest.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with LocalStack(step_seconds=None, poll_seconds=0.1, thunderbot_admins=BOSS) as running:
        yield with_boss(running)


@pytest.fixture
async def live_stack() -> AsyncIterator[LocalStack]:
    async with LocalStack(step_seconds=0.05, poll_seconds=0.1, thunderbot_admins=BOSS) as running:
        yield with_boss(running)


async def say(stack: LocalStack, text: str, user: str = "U0MARIA", channel: str = "C0QA") -> str:
    """Type `/testcall text`; what the bot answered, only to that person."""
    reply = await stack.user(user, channel_id=channel).slash(text)
    assert reply.status == 200 and reply.ephemeral is not None, reply.body_text
    return shown(reply.ephemeral)


async def admin(stack: LocalStack, text: str) -> str:
    return await say(stack, f"admin {text}", user=BOSS)


def ephemerals_of(stack: LocalStack, user_id: str) -> list[Ephemeral]:
    return [e for e in stack.fake.ephemerals if e.user == user_id and not e.deleted]


async def told_times(stack: LocalStack, user_id: str, needle: str, times: int) -> list[Ephemeral]:
    """Wait until `user_id` has been told `needle` `times` times, only to them."""

    def found() -> list[Ephemeral] | None:
        matching = [e for e in ephemerals_of(stack, user_id) if needle in shown(e)]
        return matching if len(matching) >= times else None

    return await stack.fake.wait_for(found)


async def told(stack: LocalStack, user_id: str, needle: str) -> Ephemeral:
    return await stack.fake.wait_for(
        lambda: next((e for e in ephemerals_of(stack, user_id) if needle in shown(e)), None)
    )


# ---------------------------------------------------------------------------------------------
# The grammar (pure)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("admin", AdminShow()),
        ("admin show", AdminShow()),
        ("admin start everyone", AdminSet("start", Who(everyone=True))),
        ("admin bless reset in here", AdminSet("bless", None, "here")),
        (
            "admin start <@U0LI|li> <@U0MARIA> <!subteam^S0LEADS|@qa-leads> in <#C0QA|voice-qa>",
            AdminSet(
                "start",
                Who(
                    users=("U0LI", "U0MARIA"),
                    groups=("S0LEADS",),
                    labels=(("U0LI", "li"), ("S0LEADS", "qa-leads")),
                ),
                "C0QA",
            ),
        ),
        (
            "admin critical U0LI S0LEADS <!subteam^S0QA> in C0QA",
            AdminSet("critical", Who(users=("U0LI",), groups=("S0LEADS", "S0QA")), "C0QA"),
        ),
    ],
)
def test_admin_commands_read_mentions_groups_channels_and_ids(text: str, parsed: object) -> None:
    assert parse_command(text) == parsed


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("admin stat everyone", 'I don\'t know the admin setting "stat". Did you mean start?'),
        ("admin start", "Who may start? Say everyone"),
        ("admin start @li", "I can't tell who @li is: pick them from Slack's list"),
        ("admin start everyone <@U0LI>", '"everyone" stands alone'),
        ("admin start everyone in #voice-qa", "I can't tell which channel #voice-qa is"),
        ("admin bless <@U0LI> in <#C0QA> <#C0QB>", "Put `in #channel` last"),
    ],
)
def test_admin_commands_that_cannot_be_read_are_named(text: str, problem: str) -> None:
    with pytest.raises(CommandError) as raised:
        parse_command(text)
    assert raised.value.problem.startswith(problem)
    assert raised.value.usage.startswith("/testcall admin show")


# ---------------------------------------------------------------------------------------------
# Admin commands in Slack


async def test_a_fresh_install_lets_everyone_start_bless_and_file_critical_reports(
    stack: LocalStack,
) -> None:
    shown_rules = await admin(stack, "show")
    for line in ("Start test calls", "Bless baselines", "File critical reports"):
        assert f"*{line}*: everyone (no rule set)" in shown_rules
    assert "*Admins* (they always may, and change these): <@U0BOSS>" in shown_rules
    assert "Start a test call?" in await say(stack, f'run agent:12 "{PROMPT}"')


async def test_only_admins_may_use_admin_commands(stack: LocalStack) -> None:
    for text in ("admin", "admin start <@U0MARIA>"):
        answer = await say(stack, text)
        assert "Only the bot's admins can see and change who may start test calls" in answer
        assert "An admin can change that with `/testcall admin`: <@U0BOSS>." in answer
    assert rows(stack, "permissions") == []
    assert rows(stack, "audit_events") == []


async def test_without_admins_the_refusal_says_where_they_are_set() -> None:
    async with LocalStack(step_seconds=None) as bare:
        reply = await bare.user().slash("admin show")
        assert reply.ephemeral is not None
        assert "No admins are set yet: `THUNDERBOT_ADMINS` on the bot's host" in shown(
            reply.ephemeral
        )


async def test_a_settings_change_is_saved_shown_and_audited(stack: LocalStack) -> None:
    answer = await admin(stack, "start <@U0LI|li> <!subteam^S0LEADS|@qa-leads>")
    assert (
        "Saved: only <@U0LI> and <!subteam^S0LEADS> may start test calls in this workspace"
        in answer
    )
    answer = await admin(stack, "start everyone in <#C0QA|voice-qa>")
    assert "Saved: everyone may start test calls in <#C0QA>." in answer
    shown_rules = await admin(stack, "")
    assert "*Start test calls*: only <@U0LI> and <!subteam^S0LEADS> (set by <@U0BOSS>" in (
        shown_rules
    )
    assert "in <#C0QA>: everyone (set by <@U0BOSS>" in shown_rules
    answer = await admin(stack, "start reset in here")
    assert "Removed the rule on who may start test calls in <#C0QA>: the workspace's rule" in (
        answer
    )

    stored = [(e["action"], e["subject_id"], e["detail"]) for e in rows(stack, "audit_events")]
    assert stored == [
        ("permission_set", "start", "only li (U0LI), qa-leads (S0LEADS)"),
        ("permission_set", "start:C0QA", "everyone"),
        ("permission_set", "start:C0QA", "back to the default · was everyone"),
    ]
    trail = await say(stack, "audit", user=BOSS)
    assert "⚙️ changed who may start test calls in <#C0QA> · back to the default" in trail
    assert "⚙️ changed who may start test calls · only li (U0LI), qa-leads (S0LEADS)" in trail


# ---------------------------------------------------------------------------------------------
# Starting


async def test_a_restricted_start_refuses_others_and_stores_nothing(stack: LocalStack) -> None:
    await admin(stack, "start <@U0LI>")
    answer = await say(stack, f'run agent:12 "{PROMPT}"')
    assert "Only <@U0LI> may start test calls in this workspace." in answer
    assert "An admin can change that with `/testcall admin`: <@U0BOSS>." in answer
    assert rows(stack, "launches") == []
    assert launches_posted(stack) == []

    assert "Start a test call?" in await say(stack, f'run agent:12 "{PROMPT}"', user="U0LI")
    assert "Start a test call?" in await say(stack, f'run agent:12 "{PROMPT}"', user=BOSS), (
        "admins always may"
    )


@pytest.mark.parametrize(
    "text",
    [
        'batch agent:12 "Ask about refunds." "Ask for hours."',
        "batch agent:12",  # would open the form
        "suite run refunds",
        "smoke agent:12",
        'compare "Ask about refunds." agent:12 agent:13',
    ],
)
async def test_every_command_that_would_spend_checks_first(stack: LocalStack, text: str) -> None:
    import_suite(
        stack,
        "refunds",
        [{"name": "a", "scenario_prompt": "Ask.", "expected_outcome": "success"}],
        target="agent:12",
    )
    await admin(stack, "start <@U0LI>")
    assert "Only <@U0LI> may start test calls" in await say(stack, text)
    assert rows(stack, "batches") == [] and rows(stack, "compares") == []
    assert stack.fake.open_stack("U0MARIA") == [], "no form opened"

    reply = await stack.user("U0LI").slash(text)
    if reply.ephemeral is None:  # the form opens, just after the answer
        await stack.fake.wait_for(lambda: stack.fake.open_stack("U0LI") or None)
    else:
        assert "Start " in shown(reply.ephemeral) and "may start" not in shown(reply.ephemeral)


async def test_a_channel_rule_wins_in_its_channel(stack: LocalStack) -> None:
    await admin(stack, "start <@U0LI>")
    await admin(stack, "start <@U0MARIA> in <#C0QA|voice-qa>")
    assert "Start a test call?" in await say(stack, f'run agent:12 "{PROMPT}"')
    answer = await say(stack, f'run agent:12 "{PROMPT}"', channel="C0ELSE")
    assert "Only <@U0LI> may start test calls in this workspace." in answer
    answer = await say(stack, f'run agent:12 "{PROMPT}"', user="U0LI")
    assert "Only <@U0MARIA> may start test calls in <#C0QA>." in answer


async def test_a_user_group_is_asked_of_slack_and_fails_closed(stack: LocalStack) -> None:
    stack.fake.add_usergroup("S0LEADS", "qa-leads", ["U0MARIA"])
    await admin(stack, "start <!subteam^S0LEADS|@qa-leads>")
    assert "Start a test call?" in await say(stack, f'run agent:12 "{PROMPT}"')
    answer = await say(stack, f'run agent:12 "{PROMPT}"', user="U0LI")
    assert "Only <!subteam^S0LEADS> may start test calls" in answer
    assert [c.args["usergroup"] for c in stack.fake.calls_to("usergroups.users.list")] == [
        "S0LEADS"
    ], "asked once, then remembered"

    stack.services.people.forget()
    stack.fake.fault("usergroups.users.list", error="missing_scope", status=200, retry_after=None)
    answer = await say(stack, f'run agent:12 "{PROMPT}"')
    assert (
        "I couldn't ask Slack who is in <!subteam^S0LEADS> (missing_scope), so for now I count "
        "nobody in it." in answer
    )
    assert len(rows(stack, "launches")) == 1, "only the first, allowed, proposal"


async def test_only_the_person_who_asked_can_press_start_or_cancel(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    for action in (ids.START_RUN, ids.CANCEL_RUN):
        assert await stack.user("U0LI").click(confirmation, action) == 200
    refusals = await told_times(
        stack, "U0LI", "Only <@U0MARIA>, who asked for this test call, can start or cancel it.", 2
    )
    assert all("type the command again" in shown(refusal) for refusal in refusals)
    assert "Start test call" in shown(confirmation), "the confirmation stays for its owner"
    assert launches_posted(stack) == []
    [launch] = rows(stack, "launches")
    assert (launch["status"], launch["decided_by"]) == ("proposed", None)
    assert rows(stack, "audit_events") == []

    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: launches_posted(stack) or None)
    assert rows(stack, "launches")[0]["decided_by"] == "U0MARIA"


async def test_a_batch_or_compare_confirmation_is_pressed_by_its_owner_only(
    stack: LocalStack,
) -> None:
    for text, start, what in (
        ('batch agent:12 "Ask about refunds." "Ask for hours."', ids.START_BATCH, "batch"),
        ('compare "Ask about refunds." agent:12 agent:13', ids.START_COMPARE, "compare"),
    ):
        confirmation = await confirm(stack.user(), text)
        assert await stack.user("U0LI").click(confirmation, start) == 200
        await told(stack, "U0LI", f"Only <@U0MARIA>, who asked for this {what}, can start")
    assert batch_posts(stack) == []
    assert {row["status"] for row in rows(stack, "batches")} == {"proposed"}


async def test_start_checks_the_permission_again_when_pressed(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria)
    await admin(stack, "start <@U0LI>")
    assert await maria.click(confirmation, ids.START_RUN) == 200
    await told(stack, "U0MARIA", "Only <@U0LI> may start test calls in this workspace.")
    assert launches_posted(stack) == []
    assert rows(stack, "launches")[0]["status"] == "proposed"

    await admin(stack, "start reset")
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: launches_posted(stack) or None)


async def test_run_again_checks_the_start_permission(live_stack: LocalStack) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    await admin(stack, "start <@U0MARIA>")

    assert await stack.user("U0LI").click(result, ids.RUN_AGAIN) == 200
    await told(stack, "U0LI", "Only <@U0MARIA> may start test calls")
    assert len(rows(stack, "launches")) == 1

    assert await maria.click(result, ids.RUN_AGAIN) == 200
    await told(stack, "U0MARIA", "Start a test call?")
    assert len(rows(stack, "launches")) == 2


# ---------------------------------------------------------------------------------------------
# Blessing and critical reports


async def test_bless_checks_the_bless_permission(live_stack: LocalStack) -> None:
    stack = live_stack
    import_suite(
        stack,
        "refunds",
        [{"name": "a", "scenario_prompt": "[score: 91] Ask.", "expected_outcome": "success"}],
        target="agent:12",
    )
    await stack.user().click(await confirm(stack.user(), "suite run refunds"), ids.START_BATCH)

    def finished() -> Message | None:
        found = [m for m in stack.fake.messages["C0QA"] if m.thread_ts is None]
        return found[0] if found and ids.BLESS_BATCH in shown(found[0]) else None

    card = await stack.fake.wait_for(finished, timeout=30)
    await admin(stack, "bless <@U0MARIA> in here")

    assert await stack.user("U0LI").click(card, ids.BLESS_BATCH) == 200
    await told(stack, "U0LI", "Only <@U0MARIA> may bless baselines in <#C0QA>.")
    assert rows(stack, "suite_baselines") == []

    assert await stack.user().click(card, ids.BLESS_BATCH) == 200
    await stack.fake.wait_for(lambda: rows(stack, "suite_baselines") or None)
    assert rows(stack, "suite_baselines")[0]["blessed_by"] == "U0MARIA"


def issue_posts(stack: LocalStack) -> list[object]:
    return [
        r.json
        for r in stack.sandbox.requests
        if r.method == "POST" and r.path.endswith("/issue-reports")
    ]


async def flag(stack: LocalStack, result: Message, severity: str) -> tuple[int, object]:
    assert await stack.user().click(result, ids.FLAG_RUN) == 200
    modal = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    return await stack.user().submit_view(
        modal.id,
        {
            ids.FLAG_TITLE: {
                ids.INPUT_VALUE: {"type": "plain_text_input", "value": "Agent paused"}
            },
            ids.FLAG_SEVERITY: {
                ids.INPUT_VALUE: {"type": "static_select", "selected_option": {"value": severity}}
            },
        },
    )


async def test_a_critical_flag_checks_the_critical_permission(live_stack: LocalStack) -> None:
    stack = live_stack
    maria = stack.user()
    await maria.click(await confirm(maria), ids.START_RUN)
    result = await wait_for_graded_result(stack)
    await admin(stack, "critical <@U0LI>")

    status, answer = await flag(stack, result, "critical")
    assert status == 200
    assert answer == {
        "response_action": "errors",
        "errors": {
            ids.FLAG_SEVERITY: "You may not file critical reports in this channel: choose "
            "warning or info, or ask one of the bot's admins."
        },
    }
    assert issue_posts(stack) == []
    assert rows(stack, "flags") == []

    [modal] = stack.fake.open_stack("U0MARIA")
    status, answer = await stack.user().submit_view(
        modal.id,
        {
            ids.FLAG_SEVERITY: {
                ids.INPUT_VALUE: {"type": "static_select", "selected_option": {"value": "warning"}}
            }
        },
    )
    assert status == 200 and not answer
    await wait_for_result(stack, "Flagged for review")
    [filed] = issue_posts(stack)
    assert isinstance(filed, dict) and filed["severity"] == "warning"


async def test_the_batch_form_checks_again_when_submitted(stack: LocalStack) -> None:
    maria = stack.user()
    assert (await maria.slash("batch agent:12")).ephemeral is None
    form = await stack.fake.wait_for(lambda: next(iter(stack.fake.open_stack("U0MARIA")), None))
    await admin(stack, "start <@U0LI>")

    def typed(value: str) -> dict[str, object]:
        return {ids.INPUT_VALUE: {"type": "plain_text_input", "value": value}}

    status, answer = await maria.submit_view(
        form.id,
        {
            ids.BATCH_TARGET: typed("agent:12"),
            ids.BATCH_PROMPTS: typed("Ask about refunds.\nAsk for hours."),
        },
    )
    assert status == 200
    assert answer == {
        "response_action": "errors",
        "errors": {ids.BATCH_TARGET: "You may not start test calls here; ask an admin."},
    }
    assert rows(stack, "batches") == []


async def test_a_user_group_slack_is_slow_to_name_counts_nobody_in_it(stack: LocalStack) -> None:
    stack.fake.add_usergroup("S0LEADS", "qa-leads", ["U0MARIA"])
    await admin(stack, "start <!subteam^S0LEADS>")
    stack.fake.fault("usergroups.users.list", error=None, hang=5)
    answer = await say(stack, f'run agent:12 "{PROMPT}"')
    assert "I couldn't ask Slack who is in <!subteam^S0LEADS> (timeout)" in answer
    assert rows(stack, "launches") == []


async def test_two_user_groups_slack_is_slow_to_name_still_get_a_refusal_within_the_ack(
    stack: LocalStack,
) -> None:
    """Slack awaits a slash command's answer for 3 s: the groups are asked about together, so
    the refusal comes in time rather than Slack's own timeout."""
    stack.fake.add_usergroup("S0A", "qa-leads", ["U0MARIA"])
    stack.fake.add_usergroup("S0B", "voice-leads", ["U0MARIA"])
    await admin(stack, "start <!subteam^S0A> <!subteam^S0B>")
    stack.fake.fault("usergroups.users.list", error=None, hang=5, times=None)
    # Asked one after the other, the groups took past Slack's 3 s and no answer came at all.
    answer = await say(stack, f'run agent:12 "{PROMPT}"')
    assert "I couldn't ask Slack who is in <!subteam^S0A> (timeout)" in answer
    assert "I couldn't ask Slack who is in <!subteam^S0B> (timeout)" in answer
    assert rows(stack, "launches") == []

    asked = slack_calls(stack, "usergroups.users.list")
    again = await say(stack, f'run agent:12 "{PROMPT}"')
    assert "I couldn't ask Slack who is in <!subteam^S0A> (timeout)" in again
    assert slack_calls(stack, "usergroups.users.list") == asked, "a timeout is remembered briefly"


async def test_one_user_group_naming_the_person_is_enough_while_another_is_slow(
    stack: LocalStack,
) -> None:
    stack.fake.add_usergroup("S0A", "qa-leads", ["U0MARIA"])
    stack.fake.add_usergroup("S0B", "voice-leads", ["U0LI"])
    await admin(stack, "start <!subteam^S0B> <!subteam^S0A>")
    stack.fake.fault("usergroups.users.list", error=None, hang=5, times=1)
    answer = await say(stack, f'run agent:12 "{PROMPT}"')
    assert "couldn't ask Slack" not in answer and "Only" not in answer, answer


def test_admin_answers_are_valid_block_kit_and_escape_what_was_typed() -> None:
    rule = PermissionRule(
        team_id="T1",
        capability="start",
        channel_id="C0QA",
        users=["U0LI", "<!channel>"],
        groups=["S0LEADS"],
        set_by="U0BOSS",
        set_at="2026-12-01T14:05:00.000+00:00",
    )
    for payload in (
        admin_show([rule], ["U0BOSS"]),
        admin_saved("start", "C0QA", rule, None),
        admin_saved("bless", "", None, rule),
        refused("Only <@U0LI> may start test calls in <#C0QA>."),
    ):
        assert [b.to_dict() for b in Block.parse_all(payload["blocks"])] == payload["blocks"]
        assert payload["text"] and "<!channel>" not in json.dumps(payload)
    shown_rules = json.dumps(admin_show([rule], ["U0BOSS"]))
    assert "in <#C0QA>: only <@U0LI>, &lt;!channel&gt; and <!subteam^S0LEADS>" in shown_rules


def test_a_channels_own_rule_wins_then_the_workspaces_then_none() -> None:
    workspace = PermissionRule(team_id="T1", capability="start", users=["U0LI"])
    channel = PermissionRule(team_id="T1", capability="start", channel_id="C0QA", everyone=True)
    bless = PermissionRule(team_id="T1", capability="bless", channel_id="C0QA", users=["U0SAM"])
    rules = [workspace, channel, bless]
    assert rule_among(rules, "start", "C0QA") == channel
    assert rule_among(list(reversed(rules)), "start", "C0QA") == channel
    assert rule_among(rules, "start", "C0ELSE") == workspace
    assert rule_among(rules, "bless", "C0ELSE") is None
    assert rule_among(rules, "critical", "C0QA") is None


def test_rules_are_read_once_until_forgotten_or_too_old(tmp_path: Path) -> None:
    db = open_db(str(tmp_path / "thunderbot.db"))
    kept = PermissionRules(db)
    unkept = PermissionRules(db, seconds=0)
    assert kept.rule_for("T1", "start", "C0QA") is None
    # As another process on the same database would change it.
    save_rule(db, PermissionRule(team_id="T1", capability="start", users=["U0LI"]))
    assert kept.rule_for("T1", "start", "C0QA") is None
    assert kept.rule_for("T2", "start", "C0QA") is None, "another workspace's rules are its own"
    assert unkept.rule_for("T1", "start", "C0QA") is not None
    kept.forget("T1")
    rule = kept.rule_for("T1", "start", "C0QA")
    assert rule is not None and rule.users == ["U0LI"]
