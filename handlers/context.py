"""How listeners reach the app's services: a Bolt middleware puts them in the context."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.services import Services

SERVICES_KEY = "thunderbot_services"


def services_middleware(
    services: Services,
) -> Callable[..., Awaitable[Any]]:
    async def attach(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> Any:
        context[SERVICES_KEY] = services
        return await next()

    return attach


def services_of(context: AsyncBoltContext) -> Services:
    services = context[SERVICES_KEY]
    assert isinstance(services, Services)
    return services
