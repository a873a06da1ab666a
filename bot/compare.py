"""Comparing targets: the same scenarios against each, one consent, one card."""

from __future__ import annotations

from typing import Any

from bot.commands import CommandError, CompareCommand
from bot.services import Services


def propose(
    services: Services, *, team_id: str, channel_id: str, user_id: str, command: CompareCommand
) -> dict[str, Any]:
    raise CommandError(
        "Comparing targets isn't available in this version yet. Run the suite on each target "
        "with /testcall suite run NAME <target>; each run's card shows its figures.",
        "compare",
    )
