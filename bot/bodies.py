"""Reading a request's body as it arrives, bounded in size and in time.

Every byte is handed to the signature's HMACs as it comes, so a request whose signature is wrong
is refused whatever it sends, and a huge one costs no more memory than `MAX_BODY_BYTES`. A client
that sends its body too slowly, or stops half-way, is answered at the deadline instead of holding
its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

# Slack's and ThunderPhone's deliveries are a few kilobytes; aiohttp's own default cap.
MAX_BODY_BYTES = 1024 * 1024


class BodyTimeout(Exception):
    """The body did not arrive within the time allowed."""


class BodyBroken(Exception):
    """The client went away, or framed its body wrongly, before the body was complete."""


@dataclass(frozen=True)
class Body:
    """What was received: the bytes, unless there were more than the limit allows."""

    data: bytes | None  # None: over the limit
    size: int


async def read_body(
    request: web.Request,
    *,
    timeout: float,
    digests: Sequence[hmac.HMAC] = (),
    limit: int = MAX_BODY_BYTES,
) -> Body:
    """Read the whole body within `timeout` seconds, feeding every chunk to `digests`; past
    `limit` bytes the rest is only hashed, not kept. Raises BodyTimeout or BodyBroken."""
    kept = bytearray()
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal kept, size
        size += len(chunk)
        for digest in digests:
            digest.update(chunk)
        if size <= limit:
            kept += chunk
        elif kept:
            kept = bytearray()

    content = request.content
    try:
        if content.is_eof():  # all of it came with the headers: nothing to wait for
            take(content.read_nowait())
        else:
            async with asyncio.timeout(timeout):
                while chunk := await content.readany():
                    take(chunk)
    except TimeoutError as error:
        raise BodyTimeout(f"body not received within {timeout:g} s ({size} bytes)") from error
    except (ConnectionError, aiohttp.ClientError, HttpProcessingError) as error:
        raise BodyBroken(f"body broken off after {size} bytes: {type(error).__name__}") from error
    return Body(bytes(kept) if size <= limit else None, size)


async def too_slow(request: web.Request, error: BodyTimeout) -> web.StreamResponse:
    """408, then the connection is closed: what is still on its way is not waited for."""
    response = web.json_response({"ok": False, "error": str(error)}, status=408)
    response.force_close()
    with contextlib.suppress(ConnectionError):  # it may have gone meanwhile
        await response.prepare(request)
        await response.write_eof()
    if request.transport is not None:
        request.transport.close()  # sends what is written, then closes
    return response


# `\ud800` in JSON (or `%5Cud800` in a form holding JSON): half of a surrogate pair, which no
# UTF-8 text can hold, so SQLite and every JSON client would fail on it later.
_SURROGATE_ESCAPE = re.compile(r"(?:\\|%5C)u[dD][89a-fA-F]", re.IGNORECASE)


def may_spell_lone_surrogates(raw: str) -> bool:
    """Whether JSON in `raw` may decode to text holding a lone surrogate (cheap to ask)."""
    return _SURROGATE_ESCAPE.search(raw) is not None


def whole_characters(value: Any) -> Any:
    """`value` (decoded JSON) with each lone surrogate in its text replaced by U+FFFD, as
    undecodable bytes are."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {whole_characters(key): whole_characters(item) for key, item in value.items()}
    if isinstance(value, list):
        return [whole_characters(item) for item in value]
    return value
