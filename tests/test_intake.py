"""The webhook intake: requests are taken in while the work in hand is small, then in turn."""

from __future__ import annotations

import asyncio

from bot.intake import Intake


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_requests_go_straight_in_while_there_is_room() -> None:
    intake = Intake(limit=3)
    for _ in range(3):
        await intake.enter()
    assert intake.in_hand() == 3


async def test_past_the_limit_requests_wait_and_go_in_in_arrival_order() -> None:
    elsewhere = [0]
    intake = Intake(lambda: elsewhere[0], limit=2, max_wait=60)
    await intake.enter()
    intake.stored(1)  # one delivery stored, not yet applied: two in hand
    order: list[str] = []

    async def request(name: str) -> None:
        await intake.enter()
        order.append(name)

    waiting = [asyncio.create_task(request(name)) for name in ("first", "second", "third")]
    await _settle()
    assert order == []

    intake.leave()  # the first request answered: room for one
    await _settle()
    assert order == ["first"]

    elsewhere[0] = 5  # meanwhile its card waits for Slack: no room, whatever else finishes
    intake.settled(1)
    await _settle()
    assert order == ["first"]

    elsewhere[0] = 0
    intake.progress()  # the card went out
    await _settle()
    assert order == ["first", "second"]
    assert intake.in_hand() == 2

    intake.leave()
    await asyncio.gather(*waiting)
    assert order == ["first", "second", "third"]


async def test_a_request_waits_at_most_max_wait_then_goes_in() -> None:
    intake = Intake(lambda: 100, limit=1, max_wait=0.05)
    await intake.enter()
    assert intake.in_hand() == 101


async def test_a_request_cancelled_while_waiting_leaves_nothing_counted() -> None:
    intake = Intake(limit=1, max_wait=60)
    await intake.enter()
    waiting = asyncio.create_task(intake.enter())
    await _settle()
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    intake.leave()
    assert intake.in_hand() == 0
    await intake.enter()  # nobody is queued ahead
    assert intake.in_hand() == 1


async def test_applied_deliveries_never_count_below_zero() -> None:
    """Deliveries stored before a restart are applied by the worker but were never counted."""
    intake = Intake(limit=2)
    intake.settled(40)
    intake.stored(1)
    assert intake.in_hand() == 1


async def test_details_wait_for_calm_and_hold_the_intake_only_when_many() -> None:
    deferred = [0]
    intake = Intake(deferred=lambda: deferred[0], limit=10, deferred_limit=3, max_wait=60)
    await intake.enter()
    calm = asyncio.create_task(intake.calm(max_wait=60))
    await _settle()
    assert not calm.done(), "a webhook is being taken in"
    intake.leave()
    await _settle()
    assert calm.done()

    deferred[0] = 3  # three finished calls' details deferred: the intake waits for them
    waiting = asyncio.create_task(intake.enter())
    await _settle()
    assert not waiting.done()
    # ... and so deferred work goes now, although a request is waiting.
    assert intake.busy()
    await asyncio.wait_for(intake.calm(max_wait=60), timeout=5)
    deferred[0] = 2
    intake.progress()
    await _settle()
    assert waiting.done()


async def test_calm_gives_up_waiting_after_max_wait() -> None:
    intake = Intake(lambda: 1)
    assert intake.busy()
    await intake.calm(max_wait=0.05)
    assert intake.busy()
