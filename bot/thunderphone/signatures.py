"""Verify the signatures ThunderPhone puts on webhook deliveries.

Two schemes are in use:

- V2, `X-ThunderPhone-Signature-V2: t=<unix seconds>,v1=<hex>`, an HMAC-SHA256 over
  `"<t>\\n<METHOD>\\n<path?query>\\n" + raw body` with a 300 s window. Checked with the
  official `thunderphone.webhooks.verify_signature`.
- V1, `X-ThunderPhone-Signature: <hex>`, an HMAC-SHA256 of the raw body alone.

V2 wins when present, and a failed V2 check never falls back to V1: otherwise an attacker who
replays an old body with its V1 header could defeat the timestamp. Always pass the raw bytes
as received, never a re-serialisation.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from thunderphone.webhooks import verify_signature

__all__ = [
    "SIGNATURE_V1_HEADER",
    "SIGNATURE_V2_HEADER",
    "PendingCheck",
    "SignatureCheck",
    "sign_v1",
    "start_webhook_check",
    "verify_webhook",
]

SIGNATURE_V1_HEADER = "X-ThunderPhone-Signature"
SIGNATURE_V2_HEADER = "X-ThunderPhone-Signature-V2"
MAX_TIMESTAMP_DIGITS = 15


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome of a signature check; `reason` is safe to log."""

    ok: bool
    scheme: Literal["v2", "v1"] | None
    reason: str


def sign_v1(secret: str, body: bytes) -> str:
    """The V1 signature: hex HMAC-SHA256 of the raw body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def _v2_timestamp(header: str) -> int | None:
    """The single `t=` value of a V2 header, read the same way the official verifier does."""
    found: int | None = None
    for item in header.split(","):
        key, separator, value = item.strip().partition("=")
        if not separator or key.strip() != "t":
            continue
        value = value.strip()
        if found is not None or not value.isascii() or not value.isdigit():
            return None
        if len(value) > MAX_TIMESTAMP_DIGITS:
            return None
        found = int(value)
    return found


def _check_v2(
    header: str,
    *,
    method: str,
    path: str,
    body: bytes,
    secrets: list[str],
    now: float,
    tolerance: int,
) -> SignatureCheck:
    if verify_signature(
        header, secret=secrets, method=method, path=path, body=body, tolerance=tolerance, now=now
    ):
        return SignatureCheck(ok=True, scheme="v2", reason="valid V2 signature")
    # The official verifier only says no; work out why, for the log.
    timestamp = _v2_timestamp(header)
    if timestamp is None or "v1=" not in header.replace(" ", ""):
        reason = "malformed V2 signature header"
    elif abs(now - timestamp) > tolerance:
        reason = f"timestamp outside the {tolerance} s window"
    else:
        reason = "signature does not match"
    return SignatureCheck(ok=False, scheme="v2", reason=reason)


def _check_v1(header: str, *, body: bytes, secrets: list[str]) -> SignatureCheck:
    received = header.strip().lower().encode("utf-8", "surrogatepass")
    matched = False
    for secret in secrets:
        # Compare against every secret so timing does not reveal which one matched.
        matched |= hmac.compare_digest(sign_v1(secret, body).encode("ascii"), received)
    if matched:
        return SignatureCheck(ok=True, scheme="v1", reason="valid V1 signature")
    return SignatureCheck(ok=False, scheme="v1", reason="signature does not match")


def verify_webhook(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    body: bytes,
    secrets: Sequence[str],
    require_v2: bool = False,
    now: float | None = None,
    tolerance: int = 300,
) -> SignatureCheck:
    """Check a delivery's signature against any of `secrets` (several while rotating).

    `path` is the request path plus `?query` exactly as received; `headers` are matched
    case-insensitively. V1 is refused when `require_v2` is set.
    """
    usable = [secret for secret in secrets if secret]
    if not usable:
        return SignatureCheck(ok=False, scheme=None, reason="no webhook secret configured")
    lowered = {name.lower(): value for name, value in headers.items()}
    v2 = lowered.get(SIGNATURE_V2_HEADER.lower())
    if v2 is not None:
        return _check_v2(
            v2,
            method=method,
            path=path,
            body=body,
            secrets=usable,
            now=time.time() if now is None else now,
            tolerance=tolerance,
        )
    v1 = lowered.get(SIGNATURE_V1_HEADER.lower())
    if v1 is not None:
        if require_v2:
            return SignatureCheck(
                ok=False, scheme="v1", reason="V1 signatures are not accepted (V2 required)"
            )
        return _check_v1(v1, body=body, secrets=usable)
    return SignatureCheck(ok=False, scheme=None, reason="missing signature header")


@dataclass(frozen=True)
class PendingCheck:
    """A delivery whose signature headers could be right: the body goes to `digests` as it
    arrives, and `matches` decides, whether the body was kept or was too large to keep (then it
    is refused as too large if it is ThunderPhone's, as unsigned if not). It agrees with
    `verify_webhook`, which checks a whole body with the official package
    (tests/thunderphone/test_signatures.py holds every case to both)."""

    scheme: Literal["v2", "v1"]
    received: tuple[bytes, ...]
    digests: tuple[hmac.HMAC, ...]

    def matches(self) -> bool:
        matched = False
        for digest in self.digests:
            expected = digest.hexdigest().encode("ascii")
            for signature in self.received:
                matched |= hmac.compare_digest(expected, signature)
        return matched


def start_webhook_check(
    headers: Mapping[str, str],
    *,
    method: str,
    path: str,
    secrets: Sequence[str],
    require_v2: bool = False,
    now: float | None = None,
    tolerance: int = 300,
) -> SignatureCheck | PendingCheck:
    """What the signature headers alone say, before any of the body is read: a failed
    SignatureCheck when they already show the delivery is not ThunderPhone's (missing,
    malformed, outside the window, V1 where V2 is required), else a PendingCheck."""
    usable = [secret for secret in secrets if secret]
    if not usable:
        return SignatureCheck(ok=False, scheme=None, reason="no webhook secret configured")
    lowered = {name.lower(): value for name, value in headers.items()}
    v2 = lowered.get(SIGNATURE_V2_HEADER.lower())
    if v2 is not None:
        timestamp = _v2_timestamp(v2)
        signatures = [
            value.strip().lower()
            for key, _, value in (item.strip().partition("=") for item in v2.split(","))
            if key.strip() == "v1" and value.strip()
        ]
        if timestamp is None or not signatures:
            return SignatureCheck(ok=False, scheme="v2", reason="malformed V2 signature header")
        current = time.time() if now is None else now
        if abs(current - timestamp) > tolerance:
            return SignatureCheck(
                ok=False, scheme="v2", reason=f"timestamp outside the {tolerance} s window"
            )
        base = f"{timestamp}\n{method.upper()}\n{path}\n".encode()
        return PendingCheck(
            scheme="v2",
            received=tuple(value.encode("utf-8", "surrogatepass") for value in signatures),
            digests=tuple(hmac.new(s.encode("utf-8"), base, hashlib.sha256) for s in usable),
        )
    v1 = lowered.get(SIGNATURE_V1_HEADER.lower())
    if v1 is not None:
        if require_v2:
            return SignatureCheck(
                ok=False, scheme="v1", reason="V1 signatures are not accepted (V2 required)"
            )
        return PendingCheck(
            scheme="v1",
            received=(v1.strip().lower().encode("utf-8", "surrogatepass"),),
            digests=tuple(hmac.new(s.encode("utf-8"), b"", hashlib.sha256) for s in usable),
        )
    return SignatureCheck(ok=False, scheme=None, reason="missing signature header")
