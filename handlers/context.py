"""How listeners reach the app's services: the Slack route puts them in each request's context
(`bot.slack.handle_slack_events`) before Bolt dispatches it."""

from __future__ import annotations

from slack_bolt.context.async_context import AsyncBoltContext

from bot.services import SERVICES_KEY, Services


def services_of(context: AsyncBoltContext) -> Services:
    services = context[SERVICES_KEY]
    assert isinstance(services, Services)
    return services
