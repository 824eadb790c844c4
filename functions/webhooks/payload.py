"""What a webhook says: its event type, its stable id, and its body `{"type", "timestamp", "data": <the job>}`."""

from __future__ import annotations

import json
from typing import Any


def payload_body(event_type: str, occurred_at: str, job: dict[str, Any]) -> bytes:
    """The exact bytes sent and signed: compact JSON of the event and the job as `GET /jobs/{id}` shows it."""
    payload = {"type": event_type, "timestamp": occurred_at, "data": job}
    return json.dumps(payload, separators=(",", ":")).encode()
