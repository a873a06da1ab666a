"""Changing the saved suites: an import or a delete, from Slack or a command line, each stored
with its record in the audit trail, in one transaction."""

from __future__ import annotations

from sqlite_utils import Database

from bot import audit
from storage import suites as suite_store
from storage.models import SuiteRecord


def import_suite(
    db: Database, suite: SuiteRecord, where: audit.Where
) -> tuple[SuiteRecord, SuiteRecord | None]:
    """Store `suite`, replacing any of its name; returns it as stored and the one replaced."""
    with db.atomic():
        stored, previous = suite_store.save_suite(db, suite)
        audit.suite_imported(db, stored, previous, where)
    return stored, previous


def delete_suite(db: Database, name: str, where: audit.Where) -> bool:
    """Delete the suite called `name`; False if there is none."""
    with db.atomic():
        record = suite_store.get_suite(db, name)
        if record is None or not suite_store.delete_suite(db, name):
            return False
        audit.suite_deleted(db, record.name, len(record.cases), where)
    return True
