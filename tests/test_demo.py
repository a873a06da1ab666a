"""`thunderbot demo` keeps telling the whole story."""

from __future__ import annotations

from bot.demo import run_demo


async def test_the_demo_plays_the_whole_conversation() -> None:
    lines: list[str] = []
    await run_demo(say=lines.append)
    shown = "\n".join(lines)
    for expected in [
        "*Start a test call?*",
        "[ Start test call ]  [ Cancel ]",
        "Started run 7110 — see the card below.",
        "🧪 Test call · Support agent (agent 12) · outbound · bot-to-bot",
        "✅ Completed · score",
        "🚩 Flagged for review by @maria · warning",
        "ThunderPhone received issue report",
        "🧪 Batch · Support agent (agent 12) · 5 scenarios",
        "❌ 1 of 5 failed",
        "❌ Failed · The agent did not answer",
        "the first run: no baseline yet",
        "Blessed as baseline by @li",
        "1 regressed · 1 fixed · 1 unchanged",
        "refund-policy*: passed → failed · 91% → 62%",
        "human-handoff*: failed → passed",
    ]:
        assert expected in shown, expected
    assert shown.index("Start a test call?") < shown.index("Flagged for review")
