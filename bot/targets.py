"""Aliases: short names a workspace gives its agents and numbers."""

from __future__ import annotations

from typing import Any

from bot import audit
from bot.blocks import replies
from bot.commands import USAGE, Target
from bot.services import Services
from storage import aliases
from storage.models import Alias


def set_alias(
    services: Services,
    *,
    team_id: str,
    name: str,
    target: Target,
    user_id: str,
    channel_id: str = "",
) -> dict[str, Any]:
    assert target.id is not None and target.kind != "alias"
    db = services.db
    with db.atomic():
        previous = aliases.find_alias(db, team_id, name)
        alias = aliases.save_alias(
            db,
            Alias(
                team_id=team_id,
                name=name,
                target_type=target.kind,
                target_id=target.id,
                created_by=user_id,
            ),
        )
        audit.alias_set(db, alias, previous, audit.Where(user_id, team_id, channel_id))
    return replies.alias_saved(alias, previous)


def list_aliases(services: Services, team_id: str) -> dict[str, Any]:
    return replies.alias_list(aliases.list_aliases(services.db, team_id))


def remove_alias(
    services: Services, team_id: str, name: str, *, user_id: str, channel_id: str = ""
) -> dict[str, Any]:
    db = services.db
    with db.atomic():
        alias = aliases.find_alias(db, team_id, name)
        if alias is not None and aliases.delete_alias(db, team_id, name):
            audit.alias_removed(db, alias, audit.Where(user_id, team_id, channel_id))
            return replies.decided(f"Removed the alias `{name}`.")
    return replies.refusal(f'There is no alias "{name}".', USAGE["alias"])
