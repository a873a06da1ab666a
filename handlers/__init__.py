"""Slack and webhook entry points: each parses, authorizes, acks and hands over to `bot`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from handlers import actions, commands, events, views


def register_all(bolt: AsyncApp) -> None:
    commands.register(bolt)
    actions.register(bolt)
    views.register(bolt)
    events.register(bolt)
