"""The fake Slack's people: who is in a channel, who is in a user group, over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.sandbox.slack import FakeSlack


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(users={"U0MARIA": "maria", "U0LI": "li", "U0SAM": "sam"})
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url, retry_handlers=[])


async def slack_error(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await call
    return str(info.value.response["error"])


async def test_everyone_is_in_the_channels_the_workspace_starts_with(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    answer = await client.conversations_members(channel="C0QA")
    assert sorted(answer["members"]) == ["U0LI", "U0MARIA", "U0SAM"]
    assert answer["response_metadata"]["next_cursor"] == ""
    fake.invite_bot("C0QA")
    assert "U0THUNDER" in (await client.conversations_members(channel="C0QA"))["members"]


async def test_joining_and_leaving_change_the_answer(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.leave("C0QA", "U0LI")
    assert "U0LI" not in (await client.conversations_members(channel="C0QA"))["members"]
    fake.join("C0QA", "U0LI")
    assert "U0LI" in (await client.conversations_members(channel="C0QA"))["members"]
    fake.add_channel("C0NEW", "new", members=["U0SAM"])
    assert (await client.conversations_members(channel="C0NEW"))["members"] == ["U0SAM"]


async def test_members_come_a_page_at_a_time(fake: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.conversations_members(channel="C0QA", limit=2)
    cursor = first["response_metadata"]["next_cursor"]
    assert len(first["members"]) == 2 and cursor
    second = await client.conversations_members(channel="C0QA", limit=2, cursor=cursor)
    assert len(second["members"]) == 1
    assert second["response_metadata"]["next_cursor"] == ""
    assert sorted(first["members"] + second["members"]) == ["U0LI", "U0MARIA", "U0SAM"]
    bad = client.conversations_members(channel="C0QA", cursor="not-a-cursor")
    assert await slack_error(bad) == "invalid_cursor"


async def test_private_channels_and_direct_messages(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.add_channel("G0PRIV", "secret", private=True, members=["U0MARIA"])
    assert await slack_error(client.conversations_members(channel="G0PRIV")) == (
        "channel_not_found"
    )
    fake.invite_bot("G0PRIV")
    answer = await client.conversations_members(channel="G0PRIV")
    assert answer["members"] == ["U0MARIA", "U0THUNDER"]

    await client.chat_postMessage(channel="U0LI", text="your call is done")
    assert (await client.conversations_members(channel="D0LI"))["members"] == ["U0LI", "U0THUNDER"]
    assert await slack_error(client.conversations_members(channel="U0LI")) == "channel_not_found"
    assert await slack_error(client.conversations_members(channel="C0NOPE")) == (
        "channel_not_found"
    )


async def test_usergroup_members(fake: FakeSlack, client: AsyncWebClient) -> None:
    fake.add_usergroup("S0LEADS", "qa-leads", ["U0LI", "U0SAM"])
    answer = await client.usergroups_users_list(usergroup="S0LEADS")
    assert answer["users"] == ["U0LI", "U0SAM"]
    fake.add_usergroup("S0LEADS", "qa-leads", ["U0SAM"])
    assert (await client.usergroups_users_list(usergroup="S0LEADS"))["users"] == ["U0SAM"]
    assert await slack_error(client.usergroups_users_list(usergroup="S0NOPE")) == (
        "no_such_subteam"
    )


async def test_a_missing_scope_is_a_fault_like_any_other(
    fake: FakeSlack, client: AsyncWebClient
) -> None:
    fake.fault("conversations.members", error="missing_scope", status=200, retry_after=None)
    assert await slack_error(client.conversations_members(channel="C0QA")) == "missing_scope"
    assert (await client.conversations_members(channel="C0QA"))["ok"] is True
