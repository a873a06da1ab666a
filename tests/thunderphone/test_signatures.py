"""Webhook signature checks against the published worked example."""

from __future__ import annotations

import pytest
from thunderphone.webhooks import compute_signature

from bot.thunderphone.signatures import (
    SignatureCheck,
    sign_v1,
    start_webhook_check,
    verify_webhook,
)

SECRET = "whsec_test_secret"
T = 1776709450
METHOD = "POST"
PATH = "/hooks/tp?source=prod"
BODY = b'{"data":{"call_id":42},"event_id":"evt","type":"call.graded"}'
V2_HEX = "b16bee784ebe63ce8302e2477f2b3958748c6bcae1e7fb5386da8ea92a09f4a5"
V1_HEX = "9c4a815587f8fe02fb17d008530e3314862e7ce2d824b588884431e93f1e218e"
V2_HEADER = f"t={T},v1={V2_HEX}"


def check(
    headers: dict[str, str],
    *,
    body: bytes = BODY,
    secrets: list[str] | None = None,
    require_v2: bool = False,
    now: float = T,
) -> SignatureCheck:
    """The official package's verdict (`verify_webhook`), which the check made as the body
    streams in (what the webhook route uses) must always agree with."""
    used = [SECRET] if secrets is None else secrets
    verdict = verify_webhook(
        headers, method=METHOD, path=PATH, body=body, secrets=used, require_v2=require_v2, now=now
    )
    started = start_webhook_check(
        headers, method=METHOD, path=PATH, secrets=used, require_v2=require_v2, now=now
    )
    if isinstance(started, SignatureCheck):  # refused on the headers alone
        assert (started.ok, started.reason) == (verdict.ok, verdict.reason)
    else:
        for digest in started.digests:
            digest.update(body)
        assert started.matches() == verdict.ok
    return verdict


def test_sign_v1_matches_worked_example() -> None:
    assert sign_v1(SECRET, BODY) == V1_HEX


def test_worked_example_v2_verifies() -> None:
    assert check({"X-ThunderPhone-Signature-V2": V2_HEADER}) == SignatureCheck(
        ok=True, scheme="v2", reason="valid V2 signature"
    )


def test_worked_example_v1_verifies() -> None:
    result = check({"X-ThunderPhone-Signature": V1_HEX})
    assert (result.ok, result.scheme) == (True, "v1")


def test_header_names_are_case_insensitive() -> None:
    assert check({"x-thunderphone-signature-v2": V2_HEADER}).ok
    assert check({"X-THUNDERPHONE-SIGNATURE": V1_HEX}).ok


@pytest.mark.parametrize("secrets", [["whsec_old", SECRET], [SECRET, "whsec_new"]])
def test_rotated_secret_list_accepts_either_secret(secrets: list[str]) -> None:
    assert check({"X-ThunderPhone-Signature-V2": V2_HEADER}, secrets=secrets).ok
    assert check({"X-ThunderPhone-Signature": V1_HEX}, secrets=secrets).ok


def test_rotation_with_both_old_and_new_signatures_in_one_header() -> None:
    new_hex = compute_signature("whsec_new", timestamp=T, method=METHOD, path=PATH, body=BODY)
    header = f"t={T},v1={V2_HEX},v1={new_hex}"
    assert check({"X-ThunderPhone-Signature-V2": header}, secrets=["whsec_new"]).ok
    assert check({"X-ThunderPhone-Signature-V2": header}, secrets=[SECRET]).ok


def test_window_edge_passes_and_one_second_later_fails() -> None:
    assert check({"X-ThunderPhone-Signature-V2": V2_HEADER}, now=T + 300).ok
    stale = check({"X-ThunderPhone-Signature-V2": V2_HEADER}, now=T + 301)
    assert stale == SignatureCheck(
        ok=False, scheme="v2", reason="timestamp outside the 300 s window"
    )
    early = check({"X-ThunderPhone-Signature-V2": V2_HEADER}, now=T - 301)
    assert early.reason == "timestamp outside the 300 s window"


def test_tampered_body_fails_both_schemes() -> None:
    tampered = BODY.replace(b"42", b"43")
    v2 = check({"X-ThunderPhone-Signature-V2": V2_HEADER}, body=tampered)
    v1 = check({"X-ThunderPhone-Signature": V1_HEX}, body=tampered)
    assert v2 == SignatureCheck(ok=False, scheme="v2", reason="signature does not match")
    assert v1 == SignatureCheck(ok=False, scheme="v1", reason="signature does not match")


def test_wrong_path_or_method_fails_v2() -> None:
    header = {"X-ThunderPhone-Signature-V2": V2_HEADER}
    other_path = verify_webhook(
        header, method=METHOD, path="/hooks/tp", body=BODY, secrets=[SECRET], now=T
    )
    other_method = verify_webhook(
        header, method="PUT", path=PATH, body=BODY, secrets=[SECRET], now=T
    )
    assert not other_path.ok
    assert not other_method.ok


def test_wrong_secret_fails() -> None:
    assert not check({"X-ThunderPhone-Signature-V2": V2_HEADER}, secrets=["whsec_other"]).ok
    assert not check({"X-ThunderPhone-Signature": V1_HEX}, secrets=["whsec_other"]).ok


def test_missing_header() -> None:
    assert check({"Content-Type": "application/json"}) == SignatureCheck(
        ok=False, scheme=None, reason="missing signature header"
    )


def test_v1_rejected_when_v2_required() -> None:
    assert check({"X-ThunderPhone-Signature": V1_HEX}, require_v2=True) == SignatureCheck(
        ok=False, scheme="v1", reason="V1 signatures are not accepted (V2 required)"
    )
    assert check({"X-ThunderPhone-Signature-V2": V2_HEADER}, require_v2=True).ok


def test_uppercase_hex_accepted() -> None:
    assert check({"X-ThunderPhone-Signature-V2": f"t={T},v1={V2_HEX.upper()}"}).ok
    assert check({"X-ThunderPhone-Signature": V1_HEX.upper()}).ok


def test_bad_v2_does_not_fall_back_to_valid_v1() -> None:
    wrong_v2 = f"t={T},v1={'0' * 64}"
    result = check({"X-ThunderPhone-Signature-V2": wrong_v2, "X-ThunderPhone-Signature": V1_HEX})
    assert result == SignatureCheck(ok=False, scheme="v2", reason="signature does not match")
    stale = check(
        {"X-ThunderPhone-Signature-V2": V2_HEADER, "X-ThunderPhone-Signature": V1_HEX},
        now=T + 3600,
    )
    assert (stale.ok, stale.scheme) == (False, "v2")


@pytest.mark.parametrize("header", ["", f"v1={V2_HEX}", f"t={T}", f"t=abc,v1={V2_HEX}"])
def test_malformed_v2_header(header: str) -> None:
    assert check({"X-ThunderPhone-Signature-V2": header}) == SignatureCheck(
        ok=False, scheme="v2", reason="malformed V2 signature header"
    )


def test_no_secret_configured_never_passes() -> None:
    result = check({"X-ThunderPhone-Signature": sign_v1("", BODY)}, secrets=[""])
    assert result == SignatureCheck(ok=False, scheme=None, reason="no webhook secret configured")
