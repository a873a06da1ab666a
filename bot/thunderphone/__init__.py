"""ThunderPhone API: typed client, response models, errors and webhook signatures."""

from bot.thunderphone.client import ThunderPhoneClient
from bot.thunderphone.errors import (
    ThunderPhoneAuthError,
    ThunderPhoneBadResponse,
    ThunderPhoneError,
    ThunderPhoneInvalid,
    ThunderPhoneNotFound,
    ThunderPhonePaymentRequired,
    ThunderPhoneRejected,
    ThunderPhoneUnavailable,
)
from bot.thunderphone.models import (
    Batch,
    BatchRequest,
    Call,
    Grade,
    IssueReport,
    IssueReportRequest,
    Run,
    TestCallRequest,
    Transcript,
    TranscriptEntry,
    WebhookEvent,
    normalise_score,
    parse_call_graded,
    parse_test_call_completed,
)
from bot.thunderphone.signatures import SignatureCheck, sign_v1, verify_webhook

__all__ = [
    "Batch",
    "BatchRequest",
    "Call",
    "Grade",
    "IssueReport",
    "IssueReportRequest",
    "Run",
    "SignatureCheck",
    "TestCallRequest",
    "ThunderPhoneAuthError",
    "ThunderPhoneBadResponse",
    "ThunderPhoneClient",
    "ThunderPhoneError",
    "ThunderPhoneInvalid",
    "ThunderPhoneNotFound",
    "ThunderPhonePaymentRequired",
    "ThunderPhoneRejected",
    "ThunderPhoneUnavailable",
    "Transcript",
    "TranscriptEntry",
    "WebhookEvent",
    "normalise_score",
    "parse_call_graded",
    "parse_test_call_completed",
    "sign_v1",
    "verify_webhook",
]
