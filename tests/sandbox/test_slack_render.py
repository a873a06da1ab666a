"""How the fake Slack shows `<!date^…>` tokens: as Slack does, in the sandbox reader's UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.common import clock
from bot.sandbox.slack import FakeSlack
from bot.sandbox.slack_render import clean_mrkdwn, format_date, message_time, render_block

SUNDAY = 1795356129  # Sunday 2026-11-22 14:02:09 UTC
SAME_DAY = SUNDAY + 5 * 3600


def names(ident: str) -> str:
    return {"U0MARIA": "maria"}.get(ident, ident)


@pytest.mark.parametrize(
    ("template", "shown"),
    [
        ("{date_num}", "2026-11-22"),
        ("{date_slash}", "22/11/2026"),
        ("{date}", "November 22nd, 2026"),
        ("{date_short}", "Nov 22, 2026"),
        ("{date_long}", "Sunday, November 22nd, 2026"),
        ("{date_long_full}", "November 22, 2026"),
        ("{time}", "14:02"),
        ("{time_secs}", "14:02:09"),
        ("{ago}", "5 hours ago"),
        ("{date_short_pretty} at {time}", "Today at 14:02"),
        ("since {date_pretty}", "since today"),
        ("{date_long_pretty}", "Today"),
        ("{day_divider_pretty}", "Today"),
        ("{date_num} {time_secs}", "2026-11-22 14:02:09"),
    ],
)
def test_format_tokens(template: str, shown: str) -> None:
    assert format_date(SUNDAY, template, now=SAME_DAY) == shown


def test_pretty_dates_name_the_neighbouring_days_only() -> None:
    next_day, later = SUNDAY + 86400, SUNDAY + 3 * 86400
    assert format_date(SUNDAY, "{date_short_pretty}", now=next_day) == "Yesterday"
    assert format_date(SUNDAY, "{date_pretty}", now=SUNDAY - 86400) == "Tomorrow"
    assert format_date(SUNDAY, "{date_short_pretty}", now=later) == "Nov 22, 2026"
    assert format_date(SUNDAY, "{date_long_pretty}", now=later) == "Sunday, November 22nd, 2026"
    assert format_date(SUNDAY, "{day_divider_pretty}", now=later) == "Sunday, November 22nd"
    next_year = SUNDAY + 60 * 86400
    assert format_date(SUNDAY, "{day_divider_pretty}", now=next_year) == (
        "Sunday, November 22nd, 2026"
    )
    assert format_date(SUNDAY, "{ago}", now=later) == "3 days ago"
    assert format_date(SUNDAY, "{ago}", now=SUNDAY - 120) == "in 2 minutes"
    assert format_date(SUNDAY, "{ago}", now=SUNDAY + 10) == "a few seconds ago"


@pytest.mark.parametrize(
    ("day", "ordinal"),
    [
        *[(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th")],
        *[(13, "13th"), (21, "21st"), (22, "22nd"), (23, "23rd"), (31, "31st")],
    ],
)
def test_ordinal_days(day: int, ordinal: str) -> None:
    moment = datetime(2026, 12, day, 9, 0, tzinfo=UTC).timestamp()
    assert format_date(moment, "{date}", now=moment) == f"December {ordinal}, 2026"


def test_tokens_in_text_render_as_slack_shows_them() -> None:
    text = (
        "Started by <@U0MARIA> at <!date^1795356129^{time}|14:02 UTC> · "
        "<!date^1795356129^{date_short}^https://x.test/run/1|Nov 22> · "
        "<!date^1795356129^{bogus}|the fallback> · <!date^soon^{time}|not a time> · "
        "<!date^1795356129|no template>"
    )
    assert clean_mrkdwn(text, names, now=SAME_DAY) == (
        "Started by @maria at 14:02 · Nov 22, 2026 · the fallback · not a time · no template"
    )


def test_the_bots_clock_shows_the_utc_time_it_was_given() -> None:
    assert clean_mrkdwn(clock("2026-11-22T14:02:09.123+00:00"), names) == "14:02"
    assert clean_mrkdwn(clock("2026-11-22T15:02:09+01:00"), names) == "14:02"


def test_rich_text_date_elements() -> None:
    date: dict[str, Any] = {"type": "date", "timestamp": SUNDAY, "format": "{date_num} {time}"}
    block = {
        "type": "rich_text",
        "elements": [
            {"type": "rich_text_section", "elements": [{"type": "text", "text": "at "}, date]}
        ],
    }
    assert render_block(block, names, now=SAME_DAY) == ["at 2026-11-22 14:02"]
    date.update(format="{nope}", fallback="sometime")
    assert render_block(block, names, now=SAME_DAY) == ["at sometime"]


@given(st.integers(min_value=0, max_value=4_102_444_800), st.integers(0, 999_999))
def test_a_time_token_agrees_with_the_time_beside_its_message(seconds: int, micros: int) -> None:
    ts = f"{seconds}.{micros:06d}"
    assert format_date(seconds, "{time}") == message_time(ts)
    token = clock(datetime.fromtimestamp(float(ts), UTC))
    assert clean_mrkdwn(token, names) == message_time(ts)


async def test_a_posted_time_shows_beside_and_inside_its_message_alike() -> None:
    async with FakeSlack() as fake:
        client = AsyncWebClient(token=fake.token, base_url=fake.api_url, retry_handlers=[])
        fake.clock = lambda: 1795356129.5
        text = f"Started by <@U0MARIA> at {clock('2026-11-22T14:02:09.400Z')}"
        await client.chat_postMessage(channel="C0QA", text=text)
        assert fake.render_channel("C0QA").splitlines()[2:] == [
            "[14:02] thunderbot:",
            "Started by @maria at 14:02",
        ]
