"""manifest.yml and the code keep each other honest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bot.server import SLACK_ROUTE
from handlers.commands import COMMAND
from handlers.events import EVENTS

MANIFEST = Path(__file__).resolve().parent.parent / "manifest.yml"
# chat:write + chat:write.public: cards and results in the channel where /testcall was typed.
# channels:history + groups:history + channels:join: look for a post whose answer was lost
# before posting it again (bot.outbox). files:write: suite export shares the file;
# files:read: a suite file attached to the import form is downloaded. channels:read,
# groups:read, im:read, mpim:read: who is in a run's channel (conversations.members), so only
# they see it (bot.privacy). usergroups:read: who is in a user group given a permission.
SCOPES_THE_CODE_USES = {
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "usergroups:read",
    "files:write",
    "files:read",
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "channels:join",
}


def load() -> dict[str, Any]:
    manifest: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return manifest


def test_slash_commands_match_the_registered_command() -> None:
    commands = load()["features"]["slash_commands"]
    assert [command["command"] for command in commands] == [COMMAND]
    assert all(command["description"] and len(command["command"]) <= 32 for command in commands)


def test_one_request_url_serves_commands_interactivity_and_events() -> None:
    manifest = load()
    urls = {
        manifest["settings"]["interactivity"]["request_url"],
        manifest["settings"]["event_subscriptions"]["request_url"],
        *(command["url"] for command in manifest["features"]["slash_commands"]),
    }
    assert urls == {f"https://YOUR-HOST{SLACK_ROUTE}"}
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is False


def test_subscribed_events_are_exactly_the_handled_ones() -> None:
    assert set(load()["settings"]["event_subscriptions"]["bot_events"]) == set(EVENTS)


def test_app_home_and_bot_user_are_declared() -> None:
    features = load()["features"]
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["bot_user"]["display_name"]


def test_only_the_scopes_the_code_uses_are_requested() -> None:
    assert set(load()["oauth_config"]["scopes"]["bot"]) == SCOPES_THE_CODE_USES


def test_the_messages_tab_shows_notes_but_takes_no_messages() -> None:
    app_home = load()["features"]["app_home"]
    assert app_home["messages_tab_enabled"] is True
    assert app_home["messages_tab_read_only_enabled"] is True


def test_display_information_fits_slack_limits() -> None:
    info = load()["display_information"]
    assert 1 <= len(info["name"]) <= 35
    assert len(info["description"]) <= 140
    assert 175 <= len(info["long_description"]) <= 4000
