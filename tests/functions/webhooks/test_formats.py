"""Pure parts of the webhooks: endpoint records, event types and ids, payloads, task messages."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from functions.contracts.events import DetailType
from functions.contracts.webhooks import (
    ALL_EVENT_TYPES,
    DeliveryError,
    EndpointStatus,
    client_error,
    event_type_for,
    is_endpoint_id,
    is_subscribed,
    new_endpoint,
    new_endpoint_id,
    rotated,
    signing_secrets,
    webhook_id,
)
from functions.webhooks.service import DeliveryTask, is_task, payload_body


def endpoint(**changes: object) -> dict[str, object]:
    record = new_endpoint(
        endpoint_id="ep_01JD5Z3K8Q4WJ2V7N6M9P0R1ST",
        owner_id="alice",
        url="https://hooks.example.com/",
        events=["job.completed", "job.failed"],
        secret="whsec_AAAA",
        now_ms=1_000,
    )
    return {**record, **changes}


def test_endpoint_ids_are_prefixed_ulids() -> None:
    ids = {new_endpoint_id() for _ in range(20)}
    assert len(ids) == 20 and all(is_endpoint_id(i) for i in ids)
    assert not is_endpoint_id("ep_01jd5z3k8q4wj2v7n6m9p0r1st") and not is_endpoint_id("01JD5Z3K8Q4WJ2V7N6M9P0R1ST")


def test_an_endpoint_gets_what_it_subscribed_to_while_active() -> None:
    assert is_subscribed(endpoint(), "job.completed")
    assert not is_subscribed(endpoint(), "job.expired")
    assert not is_subscribed(endpoint(status=str(EndpointStatus.DISABLED)), "job.completed")


def test_rotation_keeps_the_replaced_secret_signing_until_the_overlap_ends() -> None:
    after = rotated(endpoint(), new_secret="whsec_BBBB", now_ms=10_000, overlap_seconds=60)
    assert (after["secret"], after["previousSecret"], after["previousSecretExpiresAt"]) == (
        "whsec_BBBB",
        "whsec_AAAA",
        70_000,
    )
    assert signing_secrets(after, 69_999) == ["whsec_BBBB", "whsec_AAAA"]
    assert signing_secrets(after, 70_000) == ["whsec_BBBB"]
    assert signing_secrets(rotated(endpoint(), new_secret="whsec_B", now_ms=0, overlap_seconds=0), 0) == ["whsec_B"]


def test_each_job_outcome_has_a_webhook_type_and_a_stable_id_without_dots() -> None:
    assert {event_type_for(d) for d in DetailType} - {None} == set(ALL_EVENT_TYPES)
    assert event_type_for("Job Rejected") == "job.rejected" and event_type_for("Rendition Completed") is None
    assert webhook_id("01JOB", "job.expired") == "msg_01JOB_expired"
    assert all("." not in webhook_id("01JOB", event) for event in ALL_EVENT_TYPES)


def test_the_body_is_compact_json_of_type_timestamp_and_data() -> None:
    body = payload_body("job.failed", "2026-01-01T00:00:00.000Z", {"jobId": "J", "error": {"code": "X"}})
    assert (
        body
        == b'{"type":"job.failed","timestamp":"2026-01-01T00:00:00.000Z","data":{"jobId":"J","error":{"code":"X"}}}'
    )


def test_task_messages_round_trip_in_camel_case_and_refuse_anything_else() -> None:
    task = DeliveryTask(
        webhook_id="msg_J_completed",
        endpoint_id="ep_1",
        owner_id="alice",
        job_id="J",
        event_type="job.completed",
        occurred_at="2026-01-01T00:00:00.000Z",
        attempt=1,
        not_before=5,
    )
    message = json.loads(task.to_json())
    assert message == {
        "kind": "webhook-delivery",
        "webhookId": "msg_J_completed",
        "endpointId": "ep_1",
        "ownerId": "alice",
        "jobId": "J",
        "eventType": "job.completed",
        "occurredAt": "2026-01-01T00:00:00.000Z",
        "attempt": 1,
        "notBefore": 5,
    }
    assert is_task(message) and not is_task({"detail-type": "Job Completed"}) and not is_task([message])
    assert DeliveryTask.model_validate(message) == task
    assert task.next_attempt(99).attempt == 2 and task.next_attempt(99).not_before == 99
    for broken in ({**message, "extra": 1}, {**message, "attempt": 0}, {**message, "webhookId": "msg.1"}):
        with pytest.raises(ValidationError):
            DeliveryTask.model_validate(broken)


@pytest.mark.parametrize(
    ("logged", "shown"),
    [
        # the codes themselves, as the transport logs them now
        (None, None),
        ("connect_failed", "connect_failed"),
        ("timeout", "timeout"),
        ("tls_error", "tls_error"),
        ("refused_address", "refused_address"),
        ("http_500", "http_500"),
        ("http_302", "http_302"),
        # free text logged before the codes: never shown as written (OS errors, addresses, ports)
        ("connection failed: [Errno 111] Connection refused", "connect_failed"),
        ("connection failed: timed out", "connect_failed"),
        ("RemoteDisconnected: Remote end closed connection without response", "connect_failed"),
        ("BadStatusLine: SSH-2.0-OpenSSH_9.6", "connect_failed"),
        ("no address to connect to", "connect_failed"),
        ("refused: the URL's host does not resolve", "connect_failed"),
        ("refused: the URL's host resolves to a private address", "refused_address"),
        ("timed out after 15 s", "timeout"),
        ("TLS: CERTIFICATE_VERIFY_FAILED", "tls_error"),
        ("HTTP 500", "http_500"),
        ("HTTP 302: redirect not followed", "http_302"),
        ("HTTP 410: endpoint gone, disabled", "http_410"),
        ("http_5000", "connect_failed"),
        ("", "connect_failed"),
    ],
)
def test_a_client_sees_only_coarse_delivery_errors(logged: str | None, shown: str | None) -> None:
    assert client_error(logged) == shown
    assert shown is None or shown in {str(e) for e in DeliveryError} or shown.startswith("http_")
