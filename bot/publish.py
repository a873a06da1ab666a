"""What a run shows in Slack: one card in the channel and, once it is over, one result in the
card's thread. This decides the payloads; the outbox delivers them, exactly once."""

from __future__ import annotations

from datetime import timedelta

from sqlite_utils import Database

from bot.batch_report import BatchReport, build_report
from bot.blocks.batches import batch_card, run_heading, suite_summary
from bot.blocks.runs import run_card, run_result, verdict_of
from bot.expectations import Expected
from bot.services import Services
from storage import batches as batch_store
from storage import messages
from storage import runs as run_store
from storage.db import now_iso
from storage.models import GradeRecord, MessageKey, RunRecord

# Where a message is in Slack: (channel, ts, the ts of its thread's first message or None).
Place = tuple[str, str, str | None]


def launch_card_key(launch_id: str) -> MessageKey:
    """The card of a launch not yet answered; it becomes its run's card (`run_card_key`)."""
    return ("launch", launch_id, "card")


def run_card_key(run_id: int) -> MessageKey:
    return ("run", str(run_id), "card")


def run_result_key(run_id: int) -> MessageKey:
    return ("run", str(run_id), "result")


def batch_card_key(batch_id: str) -> MessageKey:
    return ("batch", batch_id, "card")


def batch_summary_key(batch_id: str) -> MessageKey:
    return ("batch", batch_id, "summary")


def run_place(db: Database, run: RunRecord) -> Place | None:
    """Where a run is in Slack, once Slack shows it: its card (the result is in the card's
    thread); for a run of a batch or a compare, its reply in their card's thread, else that
    card. None while Slack shows none of them."""
    if run.batch_id is None:
        return _place(db, run_card_key(run.run_id))
    reply = messages.get_message(db, run_result_key(run.run_id))
    parent = messages.get_message_by_id(db, reply.parent_id) if reply and reply.parent_id else None
    if reply is not None and reply.ts and parent is not None and parent.ts:
        return reply.channel, reply.ts, parent.ts
    batch = batch_store.get_batch(db, run.batch_id)
    if batch is not None and batch.compare_id is not None:
        from bot.compare import compare_card_key  # imports this module

        return _place(db, compare_card_key(batch.compare_id))
    return _place(db, batch_card_key(run.batch_id))


def _place(db: Database, key: MessageKey) -> Place | None:
    row = messages.get_message(db, key)
    return (row.channel, row.ts, None) if row is not None and row.ts else None


async def refresh(services: Services, run_id: int) -> None:
    """Bring a run's messages up to date, taking turns with anything else touching the run."""
    async with services.run_lock(run_id):
        publish_run(services, run_id)


def result_due(
    services: Services,
    run: RunRecord,
    grade: GradeRecord | None,
    expected: Expected | None = None,
) -> bool:
    """A result notifies people once its verdict is known: the run is over and, when the
    verdict needs a grade, the grade arrived or the grace period for it ran out (then it says
    "not graded yet" and is edited when the grade comes). Once posted, it is kept up to date."""
    if not run.is_terminal:
        return False
    if services.outbox.channel_of(run_result_key(run.run_id)) is not None:
        return True  # already shown (or on its way): keep it up to date
    if verdict_of(run, grade, services.threshold, expected=expected).known:
        return True
    # Counted from when the bot learned the run was over (its own clock, not ThunderPhone's).
    grace = timedelta(seconds=services.settings.thunderbot_grade_grace)
    return not run.updated_at or run.updated_at <= now_iso(grace)


def publish_run(services: Services, run_id: int) -> None:
    """Show the card and, once the run is over, the result as they are now."""
    run = run_store.get_run(services.db, run_id)
    if run is not None:
        show_run(services, run)


def show_run(services: Services, run: RunRecord) -> None:
    """`publish_run` for the run as just read or merged."""
    services.mark_shown(run.run_id)
    if run.batch_id is not None:
        _publish_batch_run(services, run)
        return
    grade = run_store.get_grade(services.db, run.call_id)
    card = run_card_key(run.run_id)
    services.outbox.show(
        card,
        run.channel_id,
        run_card(run, grade, services.threshold),
        notify_user=run.started_by,
    )
    if result_due(services, run, grade):
        transcript = run_store.get_transcript(services.db, run.call_id)
        flag = run_store.get_flag(services.db, run.run_id)
        services.outbox.show(
            run_result_key(run.run_id),
            run.channel_id,
            run_result(run, grade, transcript, services.threshold, flag),
            thread_of=card,
            notify_user=run.started_by,
        )


def _publish_batch_run(services: Services, run: RunRecord) -> None:
    """A run of a batch has no card of its own: once over, its reply goes under the batch's
    card, and the card counts it."""
    assert run.batch_id is not None
    report = build_report(services.db, run.batch_id, services.threshold)
    if report is None or not report.batch.channel_id:
        return  # a batch run outside Slack (`thunderbot ci`) has nowhere to be shown
    row = next((row for row in report.rows if row.item.run_id == run.run_id), None)
    expected = row.expected if row else None
    grade = run_store.get_grade(services.db, run.call_id)
    if result_due(services, run, grade, expected):
        heading = run_heading(row, report.batch.repeat) if row else None
        thread = batch_card_key(run.batch_id)
        if report.batch.compare_id is not None:  # one target of a compare: under its card
            from bot import compare  # imports this module

            heading = compare.reply_heading(report.batch, heading, run.target_name)
            thread = compare.compare_card_key(report.batch.compare_id)
        services.outbox.show(
            run_result_key(run.run_id),
            run.channel_id,
            run_result(
                run,
                grade,
                run_store.get_transcript(services.db, run.call_id),
                services.threshold,
                run_store.get_flag(services.db, run.run_id),
                heading=heading,
                expected=expected,
            ),
            thread_of=thread,
            notify_user=run.started_by,
        )
    _show_batch(services, report)


def publish_batch(services: Services, batch_id: str) -> None:
    """Show a batch's card as it is now and, once a suite run is over, its summary."""
    report = build_report(services.db, batch_id, services.threshold)
    if report is not None:
        _show_batch(services, report)


def _show_batch(services: Services, report: BatchReport) -> None:
    batch = report.batch
    if not batch.channel_id:
        return  # started outside Slack (`thunderbot ci`): nowhere to show it
    if batch.compare_id is not None:  # a compare's target has no card of its own
        from bot.compare import publish_compare  # imports this module

        publish_compare(services, batch.compare_id)
        return
    card = batch_card_key(batch.id)
    services.outbox.show(
        card, batch.channel_id, batch_card(report), notify_user=batch.decided_by or batch.user_id
    )
    if not report.finished:
        return
    # A batch none of whose runs started is over, but has nothing to compare or keep.
    if not report.started:
        return
    if batch_store.mark_finished(services.db, batch.id) and report.changes is not None:
        batch_store.record_verdicts(
            services.db, batch.id, {change.case: change.verdict for change in report.changes}
        )
    if report.changes is not None:
        services.outbox.show(
            batch_summary_key(batch.id),
            batch.channel_id,
            suite_summary(report),
            thread_of=card,
            notify_user=batch.decided_by or batch.user_id,
        )
