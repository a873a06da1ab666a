"""A target is looked up with ThunderPhone before anyone is asked to consent to a charge."""

from __future__ import annotations

import pytest

from bot import ids
from bot.sandbox.stack import LocalStack
from storage import aliases
from storage.models import Alias
from tests.helpers import PROMPT, confirm, rows, shown


def creates(stack: LocalStack) -> list[str]:
    """Every paid request ThunderPhone received."""
    return [
        r.path
        for r in stack.sandbox.requests
        if r.method == "POST" and r.path in ("/v1/test-calls", "/v1/test-call-batches")
    ]


def lookups(stack: LocalStack, path: str) -> int:
    return len([r for r in stack.sandbox.requests if r.method == "GET" and r.path == path])


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        (f'run agent:99 "{PROMPT}"', "ThunderPhone has no agent 99 in this organisation"),
        (f'run number:12 "{PROMPT}"', "ThunderPhone has no phone number 12 in this organisation"),
        ('batch agent:99 "One." "Two."', "ThunderPhone has no agent 99"),
        ("smoke agent:99", "ThunderPhone has no agent 99"),
        ('compare "Ask about refunds." agent:12 agent:99', "ThunderPhone has no agent 99"),
        ("alias set support agent:99", "ThunderPhone has no agent 99"),
    ],
)
async def test_a_target_thunderphone_does_not_have_is_refused_before_consent(
    stack: LocalStack, text: str, refusal: str
) -> None:
    maria = stack.user()
    reply = await maria.slash(text)
    assert reply.ephemeral is not None, reply.body_text
    assert refusal in reply.ephemeral.text
    assert "Check the id in the ThunderPhone dashboard" in reply.ephemeral.text
    assert "Start" not in str(reply.ephemeral.blocks), "no confirmation is offered"
    for table in ("launches", "batches", "aliases", "compares"):
        assert rows(stack, table) == [], f"nothing stored in {table}"
    assert creates(stack) == []


async def test_an_alias_to_a_target_that_is_gone_is_refused(stack: LocalStack) -> None:
    # Saved while agent 77 existed; it has since been deleted in ThunderPhone.
    alias = Alias(team_id=stack.fake.team_id, name="old", target_type="agent", target_id=77)
    aliases.save_alias(stack.services.db, alias)
    reply = await stack.user().slash(f'run old "{PROMPT}"')
    assert reply.ephemeral is not None
    assert "ThunderPhone has no agent 77" in reply.ephemeral.text
    assert rows(stack, "launches") == []


async def test_a_target_that_could_not_be_checked_still_asks_the_person(
    stack: LocalStack,
) -> None:
    for _ in range(3):  # every attempt of the lookup fails
        stack.sandbox.fail_next("GET", "/v1/agents/13", 503, {"detail": "busy"})
    maria = stack.user()
    confirmation = await confirm(maria, f'run agent:13 "{PROMPT}"')
    assert "I couldn't check agent 13 with ThunderPhone (ThunderPhone said HTTP 503)" in shown(
        confirmation
    )
    await maria.click(confirmation, ids.START_RUN)
    await stack.fake.wait_for(lambda: creates(stack) or None)
    assert creates(stack) == ["/v1/test-calls"]


async def test_a_target_is_shown_with_its_name_and_tier(stack: LocalStack) -> None:
    maria = stack.user()
    confirmation = await confirm(maria, f'run agent:14 "{PROMPT}"')
    assert "*Target*  Sales agent (agent 14) · bolt" in shown(confirmation)
    assert confirmation.text.startswith("Start a test call on Sales agent (agent 14)?")
    await confirm(maria, "alias set support agent:13")
    by_alias = await confirm(maria, 'batch support "One." "Two."')
    assert "*Target*  Support XL (agent 13), alias support · storm-base" in shown(by_alias)
    number = await confirm(maria, f'run number:34 "{PROMPT}"')
    assert "*Target*  Main line (number 34)" in shown(number)


async def test_a_found_target_is_not_asked_for_again_at_once(stack: LocalStack) -> None:
    maria = stack.user()
    await confirm(maria, f'run agent:14 "{PROMPT}"')
    await confirm(maria, f'run agent:14 "{PROMPT}"')
    assert lookups(stack, "/v1/agents/14") == 1


async def test_the_batch_form_refuses_a_target_thunderphone_does_not_have(
    stack: LocalStack,
) -> None:
    maria = stack.user()
    reply = await maria.slash("batch agent:12")
    assert reply.status == 200
    form = next(v for v in stack.fake.views.values() if not v.closed)
    status, answer = await maria.submit_view(
        form.id,
        {
            ids.BATCH_TARGET: {"value": {"type": "plain_text_input", "value": "agent:98"}},
            ids.BATCH_PROMPTS: {"value": {"type": "plain_text_input", "value": "One.\nTwo."}},
        },
    )
    assert status == 200 and answer["response_action"] == "errors"
    assert "ThunderPhone has no agent 98" in answer["errors"][ids.BATCH_TARGET]
    assert rows(stack, "batches") == [] and creates(stack) == []
