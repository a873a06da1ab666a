"""`/testcall admin`: the bot's admins (`THUNDERBOT_ADMINS`) say who may start test calls,
bless baselines and file critical reports, in the whole workspace or in one channel. Every
change is recorded in the audit trail, in the same transaction."""

from __future__ import annotations

from typing import Any

from bot import audit
from bot.blocks.admin import admin_saved, admin_show, refused
from bot.commands import AdminCommand, AdminSet
from bot.permissions import admins_note, is_admin
from bot.services import Services
from storage import permissions as store
from storage.permissions import WORKSPACE, PermissionRule


def answer(
    services: Services, command: AdminCommand, *, team_id: str, channel_id: str, user_id: str
) -> dict[str, Any]:
    """The ephemeral answer to an admin command; only admins get past the first line."""
    if not is_admin(services, user_id):
        return refused(
            "Only the bot's admins can see and change who may start test calls, bless "
            "baselines and file critical reports. " + admins_note(services)
        )
    if not isinstance(command, AdminSet):
        return admin_show(store.list_rules(services.db, team_id), sorted(services.settings.admins))
    where = audit.Where(user_id, team_id, channel_id)
    scope = WORKSPACE if command.channel is None else command.channel
    if scope == "here":
        scope = channel_id
    db = services.db
    with db.atomic():
        before = store.get_rule(db, team_id, command.capability, scope)
        now: PermissionRule | None = None
        if command.who is None:
            if before is not None:
                store.delete_rule(db, team_id, command.capability, scope)
        else:
            now = store.save_rule(
                db,
                PermissionRule(
                    team_id=team_id,
                    capability=command.capability,
                    channel_id=scope,
                    everyone=command.who.everyone,
                    users=list(command.who.users),
                    groups=list(command.who.groups),
                    labels=dict(command.who.labels),
                    set_by=user_id,
                ),
            )
        if now is not None or before is not None:
            audit.permission_set(db, command.capability, scope, now, before, where)
    services.rules.forget(team_id)
    fallback = store.get_rule(db, team_id, command.capability) if scope != WORKSPACE else None
    return admin_saved(command.capability, scope, now, before, falls_back_to=fallback)
