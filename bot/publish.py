"""What a run shows in Slack: one card in the channel and, once it is over, one result in the
card's thread. This decides the payloads; the outbox delivers them, exactly once."""

from __future__ import annotations

from bot.blocks.runs import run_card, run_result
from bot.services import Services
from storage import runs as run_store
from storage.models import MessageKey


def launch_card_key(launch_id: str) -> MessageKey:
    """The card of a launch not yet answered; it becomes its run's card (`run_card_key`)."""
    return ("launch", launch_id, "card")


def run_card_key(run_id: int) -> MessageKey:
    return ("run", str(run_id), "card")


def run_result_key(run_id: int) -> MessageKey:
    return ("run", str(run_id), "result")


async def refresh(services: Services, run_id: int) -> None:
    """Bring a run's messages up to date, taking turns with anything else touching the run."""
    async with services.run_lock(run_id):
        publish_run(services, run_id)


def publish_run(services: Services, run_id: int) -> None:
    """Show the card and, once the run is over, the result as they are now."""
    run = run_store.get_run(services.db, run_id)
    if run is None:
        return
    grade = run_store.get_grade(services.db, run.call_id)
    card = run_card_key(run.run_id)
    services.outbox.show(
        card,
        run.channel_id,
        run_card(run, grade, services.threshold),
        notify_user=run.started_by,
    )
    if run.is_terminal:
        transcript = run_store.get_transcript(services.db, run.call_id)
        flag = run_store.get_flag(services.db, run.run_id)
        services.outbox.show(
            run_result_key(run.run_id),
            run.channel_id,
            run_result(run, grade, transcript, services.threshold, flag),
            thread_of=card,
            notify_user=run.started_by,
        )
