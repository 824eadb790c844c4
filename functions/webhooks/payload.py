"""What a webhook says: its event type, its stable id, and its body `{"type", "timestamp", "data": <the job>}`."""

from __future__ import annotations

import json
from typing import Any

from functions.common.events import DetailType

EVENT_TYPES: dict[DetailType, str] = {
    DetailType.JOB_COMPLETED: "job.completed",
    DetailType.JOB_FAILED: "job.failed",
    DetailType.JOB_REJECTED: "job.rejected",
    DetailType.JOB_EXPIRED: "job.expired",
}
"""The bus events that become webhooks, and the webhook event type each becomes."""
ALL_EVENT_TYPES: tuple[str, ...] = tuple(EVENT_TYPES.values())


def event_type_for(detail_type: str) -> str | None:
    """The webhook event type of a bus event, or None when it is not one webhooks announce."""
    return next((event for detail, event in EVENT_TYPES.items() if detail == detail_type), None)


def webhook_id(job_id: str, event_type: str) -> str:
    """`webhook-id`: one per job outcome, the same on every retry and for every endpoint (the idempotency key).

    A job reaches one final state once, so a re-announced outcome or a duplicate bus event gets the same id.
    """
    return f"msg_{job_id}_{event_type.rpartition('.')[2]}"


def payload_body(event_type: str, occurred_at: str, job: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON of the event and the job as `GET /jobs/{id}` shows it."""
    payload = {"type": event_type, "timestamp": occurred_at, "data": job}
    return json.dumps(payload, separators=(",", ":")).encode()
