"""The App Home tab."""

from __future__ import annotations

from bot.blocks.common import thread_link
from bot.blocks.home import home_view
from bot.interactive import publish_home as publish_view
from bot.privacy import visible_runs
from bot.publish import run_place
from bot.services import Services
from storage import runs as run_store

SHOWN = 10
# The recent runs looked through for those the viewer may see.
CANDIDATES = 100


async def publish_home(services: Services, *, team_id: str, user_id: str) -> None:
    """The viewer's App Home: the latest runs they started, or that ran in channels they are
    in (`bot.privacy`)."""
    candidates = run_store.recent_runs(services.db, team_id, limit=CANDIDATES)
    visible, unanswered = await visible_runs(services, candidates, user_id)
    recent = visible[:SHOWN]
    rows = [(run, run_store.get_grade(services.db, run.call_id)) for run in recent]
    places = {run.run_id: run_place(services.db, run) for run in recent}
    links = {run_id: thread_link(*place) for run_id, place in places.items() if place}
    view = home_view(rows, services.threshold, links, unanswered=unanswered)
    await publish_view(services, user_id, view)
