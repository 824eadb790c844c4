"""The webhook routes' request parsing and views: what a client sends and sees, with every refusal an ApiError.

An endpoint reads `{"id", "url", "events", "status", "createdAt", "updatedAt", "disabledReason"}`; its secret only
ever appears in the answer to the request that created or rotated it. A delivery reads `{"webhookId", "event",
"jobId", "attempt", "outcome", "statusCode", "error", "attemptedAt", "durationMs", "nextAttemptAt"}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from functions.api.errors import bad_request
from functions.api.job_view import iso_utc
from functions.contracts.webhooks import Endpoint
from functions.contracts.webhooks import ALL_EVENT_TYPES

DEFAULT_DELIVERY_PAGE = 20
MAX_DELIVERY_PAGE = 100


@dataclass(frozen=True)
class Registration:
    """A valid `POST /webhooks` body (the URL's address check happens separately)."""

    url: str
    events: tuple[str, ...]


def parse_registration(payload: Mapping[str, Any]) -> Registration:
    """`{"url", "events"?}`: events default to all four, and must be a non-empty list of known, distinct types."""
    unknown_fields = set(payload) - {"url", "events"}
    if unknown_fields:
        raise bad_request("INVALID_REQUEST", "a webhook takes only url and events")
    url = payload.get("url")
    if not isinstance(url, str) or not url:
        raise bad_request("INVALID_URL", "url must be an http or https URL")
    events = payload.get("events", list(ALL_EVENT_TYPES))
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(event, str) and event in ALL_EVENT_TYPES for event in events)
        or len(set(events)) != len(events)
    ):
        raise bad_request("INVALID_EVENTS", f"events must be a non-empty list of distinct types from {ALL_EVENT_TYPES}")
    return Registration(url=url, events=tuple(events))


def parse_delivery_page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_DELIVERY_PAGE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_DELIVERY_PAGE:
        raise bad_request("INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_DELIVERY_PAGE}")
    return int(raw)


def endpoint_view(endpoint: Endpoint) -> dict[str, Any]:
    """An endpoint as its owner sees it in lists: never a secret."""
    return {
        "id": endpoint["endpointId"],
        "url": endpoint["url"],
        "events": list(endpoint["events"]),
        "status": str(endpoint["status"]).lower(),
        "createdAt": iso_utc(endpoint["createdAt"]),
        "updatedAt": iso_utc(endpoint["updatedAt"]),
        "disabledReason": endpoint.get("disabledReason"),
    }


def created_view(endpoint: Endpoint) -> dict[str, Any]:
    """`POST /webhooks`: the endpoint and, this once, its secret."""
    return {**endpoint_view(endpoint), "secret": endpoint["secret"]}


def rotated_view(endpoint: Endpoint) -> dict[str, Any]:
    """`POST /webhooks/{id}/rotate-secret`: the new secret, and until when the old one still signs."""
    return {
        "id": endpoint["endpointId"],
        "secret": endpoint["secret"],
        "previousSecretExpiresAt": iso_utc(endpoint["previousSecretExpiresAt"]),
    }


def delivery_view(entry: Mapping[str, Any]) -> dict[str, Any]:
    next_attempt = entry.get("nextAttemptAt")
    return {
        "webhookId": entry["webhookId"],
        "event": entry["eventType"],
        "jobId": entry["jobId"],
        "attempt": entry["attempt"],
        "outcome": entry["outcome"],
        "statusCode": entry.get("statusCode"),
        "error": entry.get("error"),
        "attemptedAt": iso_utc(entry["attemptedAt"]),
        "durationMs": entry.get("durationMs"),
        "nextAttemptAt": iso_utc(next_attempt) if next_attempt else None,
    }
