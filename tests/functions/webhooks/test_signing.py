"""Standard Webhooks signatures: the spec's test vector, the reference verifier, and every way verification fails."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from functions.common import webhook_signing as signing

# The test vector of the Standard Webhooks reference libraries (e.g. libraries/python/tests/test_webhooks.py).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
BODY = b'{"type":"job.completed","timestamp":"2026-01-01T00:00:00.000Z","data":{"jobId":"01J"}}'


def test_signing_reproduces_the_specs_test_vector() -> None:
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = signing.webhook_headers([VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": "1614265330",
        "webhook-signature": VECTOR_SIGNATURE,
    }
    signing.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10)


def test_new_secrets_are_whsec_base64_of_32_random_bytes_and_never_repeat() -> None:
    secrets = {signing.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert signing.new_secret(lambda n: b"\x01" * n) == "whsec_" + base64.b64encode(b"\x01" * 32).decode()


def test_the_reference_implementation_verifies_our_signatures_with_either_secret_during_a_rotation() -> None:
    current, previous = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    headers = signing.webhook_headers([current, previous], "msg_01JOB_completed", now, BODY)
    assert headers["webhook-signature"].count("v1,") == 2
    for secret in (current, previous):
        assert Webhook(secret).verify(BODY, headers)["type"] == "job.completed"
        signing.verify(secret, headers, BODY, now=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def tampered(case: str, now: int) -> tuple[dict[str, str], bytes]:
    """Headers and body of a delivery spoiled in one way, built when the test runs (timestamps are relative)."""
    good = signing.webhook_headers([VECTOR_SECRET], "msg_01JOB_failed", now, BODY)
    spoiled = {
        "wrong secret": (signing.webhook_headers([signing.new_secret()], "msg_01JOB_failed", now, BODY), BODY),
        "altered body": (good, BODY.replace(b"completed", b"failed!!!")),
        "stale timestamp": (signing.webhook_headers([VECTOR_SECRET], "msg_01JOB_failed", now - 600, BODY), BODY),
        "future timestamp": (signing.webhook_headers([VECTOR_SECRET], "msg_01JOB_failed", now + 600, BODY), BODY),
        "another message's id": ({**good, "webhook-id": "msg_01JOB_completed"}, BODY),
        "unknown version": ({**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}, BODY),
    }
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        spoiled[f"missing {header}"] = ({k: v for k, v in good.items() if k != header}, BODY)
    return spoiled[case]


CASES = [
    "wrong secret",
    "altered body",
    "stale timestamp",
    "future timestamp",
    "another message's id",
    "unknown version",
    "missing webhook-id",
    "missing webhook-timestamp",
    "missing webhook-signature",
]


@pytest.mark.parametrize("case", CASES)
def test_verification_fails_for_every_tampering_in_both_implementations(case: str) -> None:
    now = int(time.time())
    headers, body = tampered(case, now)
    with pytest.raises(signing.SignatureError):
        signing.verify(VECTOR_SECRET, headers, body, now=now)
    with pytest.raises(WebhookVerificationError):
        Webhook(VECTOR_SECRET).verify(body, headers)
    # The untampered delivery verifies in both, so each failure above is the tampering's doing.
    good = signing.webhook_headers([VECTOR_SECRET], "msg_01JOB_failed", now, BODY)
    signing.verify(VECTOR_SECRET, good, BODY, now=now)
    Webhook(VECTOR_SECRET).verify(BODY, good)


def test_ids_that_would_blur_the_signed_content_and_malformed_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match=r"no '\.'"):
        signing.sign(VECTOR_SECRET, "msg.1", 1, b"{}")
    with pytest.raises(ValueError, match="whsec_"):
        signing.sign("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_1", 1, b"{}")
    with pytest.raises(ValueError, match="base64"):
        signing.sign("whsec_not base64!", "msg_1", 1, b"{}")
    with pytest.raises(ValueError, match="at least one secret"):
        signing.signature_header([], "msg_1", 1, b"{}")
