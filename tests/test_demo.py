"""`thunderbot demo` keeps telling the whole story, and tells it truthfully."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import pytest

from bot.demo import FLAG_DESCRIPTION, FLAG_TITLE, run_demo

MINUTES_A_DAY = 24 * 60
_HEADER = re.compile(r"^(?:  │ )?\[(\d\d):(\d\d)\] [^:]+:")
# Clock times the bot writes inside a message: "at 14:05", "· 14:06", "of 14:05".
_INNER = re.compile(r"(?:\bat|·|\bof) (\d\d):(\d\d)\b")


@dataclass
class Played:
    shown: str
    started: float
    ended: float


@pytest.fixture(scope="module")
def played() -> Played:
    lines: list[str] = []
    started = time.time()
    asyncio.run(run_demo(say=lines.append))
    return Played("\n".join(lines), started, time.time())


def _minute(hours: str, minutes: str) -> int:
    return int(hours) * 60 + int(minutes)


def _utc_minute(seconds: float) -> int:
    moment = time.gmtime(seconds)
    return moment.tm_hour * 60 + moment.tm_min


def _apart(a: int, b: int) -> int:
    """Minutes between two times of day, across midnight too."""
    return min((a - b) % MINUTES_A_DAY, (b - a) % MINUTES_A_DAY)


def test_the_demo_plays_the_whole_conversation(played: Played) -> None:
    shown = played.shown
    for expected in [
        "*Start a test call?*",
        "[ Start test call ]  [ Cancel ]",
        "Started run 7110 — see the card below.",
        "🧪 Test call · Support agent (agent 12) · outbound · bot-to-bot",
        "✅ Passed · ",
        "🚩 Flagged for review by @maria · warning",
        "ThunderPhone received issue report 4321",
        "🧪 Batch · Support agent (agent 12) · 5 scenarios",
        "❌ 1 of 5 failed",
        "❌ Failed · the call failed: The agent did not answer",
        "the first run: no baseline yet",
        "Blessed as baseline by @li",
        "1 regressed · 1 fixed · 1 unchanged",
        "refund-policy*: passed → failed · 91% → 62%",
        "human-handoff*: failed → passed",
    ]:
        assert expected in shown, expected
    assert shown.index("Start a test call?") < shown.index("Flagged for review")


def test_messages_show_the_time_they_were_posted(played: Played) -> None:
    """Every message's time is the wall-clock time of the demo, in the order it was posted."""
    first, last = _utc_minute(played.started), _utc_minute(played.ended)
    span = (last - first) % MINUTES_A_DAY
    headers = [m for line in played.shown.splitlines() if (m := _HEADER.match(line))]
    assert len(headers) >= 10
    for header in headers:
        at = _minute(*header.groups())
        assert (at - first) % MINUTES_A_DAY <= span, (header.group(0), first, last)


def test_times_inside_a_message_agree_with_the_time_beside_it(played: Played) -> None:
    """`Started by @maria at 14:05` sits under `[14:05] thunderbot:`: the bot's clock and
    Slack's agree (a minute apart at most, when the minute turned in between)."""
    pairs: list[tuple[str, str]] = []
    header: re.Match[str] | None = None
    for line in played.shown.splitlines():
        if (found := _HEADER.match(line)) is not None:
            header = found
        elif line.startswith(("── ", "\n── ")) or not line.strip():
            header = None
        elif header is not None:
            for inner in _INNER.finditer(line):
                pairs.append((header.group(0), line))
                beside, within = _minute(*header.groups()), _minute(*inner.groups())
                assert _apart(beside, within) <= 1, (header.group(0), line)
    started = [line for _, line in pairs if "Started by @maria at" in line]
    flagged = [line for _, line in pairs if "Flagged for review" in line]
    assert len(started) >= 3 and flagged, pairs
    assert "UTC" not in "\n".join(line for _, line in pairs), "date tokens show as Slack shows them"


def test_the_issue_report_shows_the_description_the_person_typed(played: Played) -> None:
    shown = played.shown
    start = shown.index("ThunderPhone received issue report")
    report = shown[start : shown.index("\n── ", start)]
    assert f"  Description  {FLAG_DESCRIPTION}\n" in report + "\n", report
    assert f"  Title        {FLAG_TITLE}\n" in report, report
    assert "  Severity     warning\n" in report and "  Turn         5 (at " in report, report
    assert "  Link         https://sandbox.slack.com/archives/C0QA/p" in report, report
    assert f"“{FLAG_TITLE}”" in shown[: shown.index("ThunderPhone received issue report")]
