"""Shared fixtures: a clean environment, and the whole product running on loopback."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import stamina

from bot.sandbox.stack import LocalStack


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No variable or `.env` of the machine running the tests leaks into them; retries of
    ThunderPhone reads do not sleep."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "THUNDERPHONE_", "THUNDERBOT_")) or name in {"HOST", "PORT"}:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    stamina.set_testing(True, attempts=3)
    yield
    stamina.set_testing(False)


@pytest.fixture
async def stack() -> AsyncIterator[LocalStack]:
    """Runs move only when a test advances them, so every step can be observed."""
    async with LocalStack(step_seconds=None, poll_seconds=0.1) as running:
        yield running


@pytest.fixture
async def live_stack() -> AsyncIterator[LocalStack]:
    """Runs move on their own, quickly, as they would in production."""
    async with LocalStack(step_seconds=0.05, poll_seconds=0.1) as running:
        yield running
