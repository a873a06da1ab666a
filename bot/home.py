"""The App Home tab."""

from __future__ import annotations

from bot.blocks.common import thread_link
from bot.blocks.home import home_view
from bot.interactive import publish_home as publish_view
from bot.privacy import visible_runs
from bot.publish import run_place
from bot.services import Services
from storage import runs as run_store
from storage.models import RunRecord

SHOWN = 10
# The workspace's newest runs are looked through a page at a time for those the viewer may
# see, a few pages at most; the viewer's own newest runs are always among them.
PAGE = 100
PAGES = 3


def _newest_first(run: RunRecord) -> tuple[str, int]:
    return run.created_at, run.run_id


async def publish_home(services: Services, *, team_id: str, user_id: str) -> None:
    """The viewer's App Home: the latest runs they started, or that ran in channels they are
    in (`bot.privacy`)."""
    db = services.db
    found = {run.run_id: run for run in run_store.runs_started_by(db, team_id, user_id)}
    unanswered: dict[str, str] = {}
    # How many of the workspace's runs were looked through, when there were more not looked at
    # and fewer than SHOWN were found.
    cut_short: int | None = None
    for page in range(PAGES):
        candidates = run_store.recent_runs(db, team_id, limit=PAGE, offset=page * PAGE)
        visible, problems = await visible_runs(services, candidates, user_id)
        for run in visible:
            found.setdefault(run.run_id, run)
        unanswered.update(problems)
        if len(found) >= SHOWN or len(candidates) < PAGE:
            break
    else:
        cut_short = PAGES * PAGE
    recent = sorted(found.values(), key=_newest_first, reverse=True)[:SHOWN]
    rows = [(run, run_store.get_grade(db, run.call_id)) for run in recent]
    places = {run.run_id: run_place(db, run) for run in recent}
    links = {run_id: thread_link(*place) for run_id, place in places.items() if place}
    view = home_view(
        rows, services.threshold, links, unanswered=unanswered, looked_through=cut_short
    )
    await publish_view(services, user_id, view)
