"""Looking a target up with ThunderPhone before anyone is asked to consent to a charge.

Reading an agent or a phone number is free, so a typo in an id is caught before the
confirmation, and the confirmation shows the name and tier of what will be called. A lookup
that cannot be made (ThunderPhone slow, down, or refusing the key) does not stop anyone: the
confirmation says the target could not be checked, and the person decides.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.thunderphone import ThunderPhoneError, ThunderPhoneNotFound

if TYPE_CHECKING:
    from bot.services import Services

# The answer to a slash command must reach Slack within 3 s; the lookup gets half of that.
LOOKUP_BUDGET_SECONDS = 1.5
# Agents are renamed rarely; a found target is not asked for again for this long.
FOUND_TTL_SECONDS = 300.0

TargetKey = tuple[str, int]


@dataclass(frozen=True)
class TargetInfo:
    """What ThunderPhone says a target is. `unchecked` says why it could not be asked."""

    target_type: str
    target_id: int
    name: str = ""
    tier: str = ""
    unchecked: str = ""


class UnknownTarget(Exception):
    """ThunderPhone has no such agent or phone number (it answered 404)."""

    def __init__(self, target_type: str, target_id: int) -> None:
        self.target_type = target_type
        self.target_id = target_id
        noun = "agent" if target_type == "agent" else "phone number"
        super().__init__(
            f"ThunderPhone has no {noun} {target_id} in this organisation, so nothing was "
            f"started. Check the id in the ThunderPhone dashboard, or see /testcall alias list."
        )


class TargetCache:
    """Found targets for a few minutes; a target that is not found is always asked again."""

    def __init__(self, ttl: float = FOUND_TTL_SECONDS) -> None:
        self._ttl = ttl
        self._found: dict[TargetKey, tuple[float, TargetInfo]] = {}

    def get(self, key: TargetKey) -> TargetInfo | None:
        entry = self._found.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._found.pop(key, None)
            return None
        return entry[1]

    def put(self, info: TargetInfo) -> None:
        key = (info.target_type, info.target_id)
        self._found[key] = (time.monotonic() + self._ttl, info)


async def _ask(services: Services, target_type: str, target_id: int) -> TargetInfo:
    client = services.thunderphone
    if target_type == "agent":
        agent = await client.get_agent(target_id)
        return TargetInfo(target_type, target_id, agent.name, agent.product)
    number = await client.get_phone_number(target_id)
    return TargetInfo(target_type, target_id, number.label or number.number)


async def look_up(services: Services, target_type: str, target_id: int) -> TargetInfo:
    """The target as ThunderPhone knows it. Raises UnknownTarget on a 404; any other failure
    gives a TargetInfo whose `unchecked` says why."""
    cached = services.targets.get((target_type, target_id))
    if cached is not None:
        return cached
    try:
        async with asyncio.timeout(LOOKUP_BUDGET_SECONDS):
            info = await _ask(services, target_type, target_id)
    except ThunderPhoneNotFound:
        raise UnknownTarget(target_type, target_id) from None
    except TimeoutError:
        return TargetInfo(target_type, target_id, unchecked="ThunderPhone did not answer in time")
    except ThunderPhoneError as error:
        status = f"HTTP {error.status}" if error.status is not None else error.detail
        return TargetInfo(target_type, target_id, unchecked=f"ThunderPhone said {status}")
    services.targets.put(info)
    return info


async def look_up_all(services: Services, keys: Iterable[TargetKey]) -> dict[TargetKey, TargetInfo]:
    """Every target at once (a compare names several). Raises UnknownTarget for the first
    one ThunderPhone does not have."""
    wanted = list(dict.fromkeys(keys))
    if len(wanted) <= 1:  # the usual case, answered within the slash command's ack
        return {key: await look_up(services, *key) for key in wanted}
    found = await asyncio.gather(*(look_up(services, kind, id_) for kind, id_ in wanted))
    return dict(zip(wanted, found, strict=True))
