"""The demo's webhook receiver without a cloud: what it answers and records for valid, tampered, stale and early
deliveries, and how the demo reports a webhook that verified, one that did not, and one that never came."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator

import pytest

from functions.common.webhook_signing import new_secret, webhook_headers
from local.cli.client import ApiClient
from local.cli.commands import report_webhook
from local.cli.receiver import DEFAULT_PATH, WebhookReceiver
from local.cloud import free_port

JOB_ID = "01J0000000000000000000000A"
MSG_ID = f"msg_{JOB_ID}_completed"
BODY = json.dumps(
    {"type": "job.completed", "timestamp": "2025-01-01T00:00:00Z", "data": {"jobId": JOB_ID, "status": "COMPLETED"}}
).encode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        running.secret = new_secret()
        yield running


def post(receiver: WebhookReceiver, headers: dict[str, str], body: bytes = BODY, path: str = DEFAULT_PATH) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=5)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def signed(secret: str, body: bytes = BODY, timestamp: int | None = None) -> dict[str, str]:
    return webhook_headers([secret], MSG_ID, int(time.time()) if timestamp is None else timestamp, body)


def test_a_valid_delivery_is_answered_204_and_verified_by_both_verifiers(receiver: WebhookReceiver) -> None:
    assert receiver.secret is not None
    assert post(receiver, signed(receiver.secret)) == 204

    [delivery] = receiver.deliveries
    assert (delivery.valid, delivery.verified, delivery.reference_verified, delivery.status) == (True, True, True, 204)
    assert delivery.body == BODY
    assert delivery.webhook_id == MSG_ID
    assert (delivery.event_type, delivery.data["jobId"]) == ("job.completed", JOB_ID)
    assert delivery.concerns(JOB_ID)
    assert not delivery.concerns("01J0000000000000000000000B")


def test_a_tampered_signature_is_refused_by_both_verifiers(receiver: WebhookReceiver) -> None:
    assert receiver.secret is not None
    headers = signed(receiver.secret)
    signature = headers["webhook-signature"]
    flipped = "A" if signature[10] != "A" else "B"
    headers["webhook-signature"] = signature[:10] + flipped + signature[11:]

    assert post(receiver, headers) == 401

    [delivery] = receiver.deliveries
    assert (delivery.valid, delivery.verified, delivery.reference_verified, delivery.status) == (
        False,
        False,
        False,
        401,
    )
    assert delivery.error is not None
    assert "no signature matches" in delivery.error
    assert "verifiers disagree" not in delivery.error


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda secret: (signed(secret), BODY.replace(b"COMPLETED", b"FAILED")), id="body"),
        pytest.param(lambda secret: (signed(new_secret()), BODY), id="other-secret"),
        pytest.param(lambda secret: (signed(secret, timestamp=int(time.time()) - 600), BODY), id="stale"),
        pytest.param(lambda secret: ({**signed(secret), "webhook-signature": "garbage"}, BODY), id="malformed"),
        pytest.param(lambda secret: ({k: v for k, v in signed(secret).items() if k != "webhook-id"}, BODY), id="no-id"),
    ],
)
def test_anything_but_a_valid_signature_is_refused(receiver: WebhookReceiver, tamper: object) -> None:
    assert receiver.secret is not None and callable(tamper)
    headers, body = tamper(receiver.secret)

    assert post(receiver, headers, body) == 401

    [delivery] = receiver.deliveries
    assert not delivery.valid
    assert (delivery.verified, delivery.reference_verified) == (False, False)


def test_before_registration_a_delivery_is_answered_503_and_other_paths_404() -> None:
    with WebhookReceiver() as unregistered:
        assert post(unregistered, signed(new_secret())) == 503
        assert post(unregistered, signed(new_secret()), path="/elsewhere") == 404
        [delivery] = unregistered.deliveries
        assert not delivery.valid
        assert delivery.status == 503


def test_the_receiver_binds_loopback_and_stops(receiver: WebhookReceiver) -> None:
    assert receiver.url == f"http://127.0.0.1:{receiver.port}{DEFAULT_PATH}"
    receiver.stop()
    with pytest.raises(ConnectionRefusedError):
        post(receiver, {})


def test_waiting_for_a_delivery_is_bounded(receiver: WebhookReceiver) -> None:
    started = time.monotonic()
    assert receiver.wait_for(lambda d: True, 0.3) is None
    assert 0.25 <= time.monotonic() - started < 5


def _unreachable_client() -> ApiClient:
    return ApiClient(f"http://127.0.0.1:{free_port()}/", "token")


def test_the_demo_reports_a_verified_webhook(receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    assert receiver.secret is not None
    assert post(receiver, signed(receiver.secret)) == 204

    assert report_webhook(receiver, _unreachable_client(), {"jobId": JOB_ID, "status": "COMPLETED"}, 1) == 0

    out = capsys.readouterr().out
    assert f"webhook-id         {MSG_ID}" in out
    assert "type               job.completed" in out
    assert "data.status        COMPLETED" in out
    assert "signature verified (functions.common.webhook_signing.verify; cross-checked with standardwebhooks" in out
    assert signed(receiver.secret)["webhook-signature"] not in out  # shown truncated


def test_the_demo_fails_on_a_webhook_that_does_not_verify(
    receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert post(receiver, signed(new_secret())) == 401

    assert report_webhook(receiver, _unreachable_client(), {"jobId": JOB_ID, "status": "COMPLETED"}, 1) == 1

    captured = capsys.readouterr()
    assert "signature NOT verified" in captured.out
    assert "demo failed: the webhook's signature did not verify" in captured.err


def test_the_demo_fails_on_a_webhook_that_contradicts_the_job(
    receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    assert receiver.secret is not None
    assert post(receiver, signed(receiver.secret)) == 204

    assert report_webhook(receiver, _unreachable_client(), {"jobId": JOB_ID, "status": "FAILED"}, 1) == 1
    assert "the webhook reports COMPLETED, the job is FAILED" in capsys.readouterr().err


def test_the_demo_fails_when_no_webhook_arrives(receiver: WebhookReceiver, capsys: pytest.CaptureFixture[str]) -> None:
    receiver.endpoint_id = "ep_unknown"
    started = time.monotonic()

    assert report_webhook(receiver, _unreachable_client(), {"jobId": JOB_ID, "status": "COMPLETED"}, 0.3) == 1

    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert f"demo failed: no webhook for job {JOB_ID} reached {receiver.url} in 0.3 s" in err
    assert "the delivery log could not be read" in err
