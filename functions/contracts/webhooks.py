"""Webhooks' shared formats: the event types they announce, their ids, and the endpoint records.

Endpoint records are created, rotated, disabled and read as plain dicts, with no AWS in sight.

An endpoint (endpoints table, key `ownerId` + `endpointId`) holds its URL, the event types it wants, its own
secret and, for an overlap window after a rotation, the secret it replaced. The secret leaves the table only in
the answer to the request that created or rotated it, and in signatures.

Why a delivery attempt failed is told to clients in a few coarse words (`DeliveryError`, `http_<status>`): an OS
error, a resolved address or a port in the delivery log would let anyone probe other hosts through webhooks. The
function's own log has the details, for operators.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from ulid import ULID

from functions.contracts.events import DetailType

ENDPOINT_ID_PREFIX = "ep_"
_ENDPOINT_ID = re.compile(r"ep_[0-9A-HJKMNP-TV-Z]{26}")
MAX_ENDPOINTS_PER_OWNER = 10

Endpoint = dict[str, Any]


class EndpointStatus(StrEnum):
    ACTIVE = "ACTIVE"
    DISABLED = "DISABLED"  # the receiver answered 410 Gone: nothing more is sent


class DeliveryError(StrEnum):
    """Why an attempt got no 2xx, as the delivery log and a job's `webhookFailures` show it (or `http_<status>`)."""

    CONNECT_FAILED = "connect_failed"  # no HTTP answer: no connection, no address, or it ended before a status line
    TIMEOUT = "timeout"  # connected, but no status line within the delivery timeout
    TLS_ERROR = "tls_error"  # the TLS handshake or the certificate check failed
    REFUSED_ADDRESS = "refused_address"  # the address and port policy (SSRF) refused the URL at this attempt


DELIVERY_ERROR_DESCRIPTION = (
    "Why the attempt got no 2xx: `connect_failed` (no HTTP answer came back), `timeout`, `tls_error`, "
    "`refused_address` (the URL's address or port is not allowed) or `http_<status>`."
)
_CLIENT_ERROR = re.compile(r"connect_failed|timeout|tls_error|refused_address|http_[1-5][0-9]{2}")
_FREE_TEXT_STATUS = re.compile(r"HTTP ([1-5][0-9]{2})\b")


def status_error(status: int) -> str:
    """The error of an attempt answered with a status other than 2xx: `http_500`, `http_302`, `http_410`."""
    return f"http_{status}"


def client_error(logged: str | None) -> str | None:
    """The error a client is shown for a logged attempt: always one of the coarse codes.

    Attempts logged before the codes existed carry free text (`connection failed: [Errno 111] ...`); they are shown
    as the code they stand for, never as written.
    """
    if logged is None or _CLIENT_ERROR.fullmatch(logged):
        return logged
    status = _FREE_TEXT_STATUS.match(logged)
    if status:
        return status_error(int(status.group(1)))
    if logged.startswith("refused") and "does not resolve" not in logged:
        return DeliveryError.REFUSED_ADDRESS.value
    if logged.startswith("timed out"):
        return DeliveryError.TIMEOUT.value
    if logged.startswith("TLS"):
        return DeliveryError.TLS_ERROR.value
    return DeliveryError.CONNECT_FAILED.value


def new_endpoint_id() -> str:
    return ENDPOINT_ID_PREFIX + str(ULID())


def is_endpoint_id(value: str) -> bool:
    return bool(_ENDPOINT_ID.fullmatch(value))


def new_endpoint(
    *, endpoint_id: str, owner_id: str, url: str, events: Sequence[str], secret: str, now_ms: int
) -> Endpoint:
    return {
        "ownerId": owner_id,
        "endpointId": endpoint_id,
        "url": url,
        "events": list(events),
        "secret": secret,
        "status": str(EndpointStatus.ACTIVE),
        "createdAt": now_ms,
        "updatedAt": now_ms,
    }


def rotated(endpoint: Endpoint, *, new_secret: str, now_ms: int, overlap_seconds: int) -> Endpoint:
    """The endpoint signing with `new_secret`; the replaced secret keeps signing too until the overlap ends."""
    return {
        **endpoint,
        "secret": new_secret,
        "previousSecret": endpoint["secret"],
        "previousSecretExpiresAt": now_ms + overlap_seconds * 1000,
        "updatedAt": now_ms,
    }


def signing_secrets(endpoint: Endpoint, now_ms: int) -> list[str]:
    """Secrets a delivery is signed with now: the current one, then the replaced one while its overlap lasts."""
    secrets = [endpoint["secret"]]
    previous = endpoint.get("previousSecret")
    if previous and int(endpoint.get("previousSecretExpiresAt", 0)) > now_ms:
        secrets.append(previous)
    return secrets


def is_subscribed(endpoint: Endpoint, event_type: str) -> bool:
    """Whether an event of this type is sent to the endpoint now."""
    return endpoint.get("status") == EndpointStatus.ACTIVE and event_type in endpoint.get("events", ())


EVENT_TYPES: dict[DetailType, str] = {
    DetailType.JOB_COMPLETED: "job.completed",
    DetailType.JOB_FAILED: "job.failed",
    DetailType.JOB_REJECTED: "job.rejected",
    DetailType.JOB_EXPIRED: "job.expired",
    DetailType.JOB_CANCELED: "job.canceled",
    DetailType.JOB_DELETED: "job.deleted",
}
"""The bus events that become webhooks, and the webhook event type each becomes."""
ALL_EVENT_TYPES: tuple[str, ...] = tuple(EVENT_TYPES.values())


def event_type_for(detail_type: str) -> str | None:
    """The webhook event type of a bus event, or None when it is not one webhooks announce."""
    return next((event for detail, event in EVENT_TYPES.items() if detail == detail_type), None)


def webhook_id(job_id: str, event_type: str, attempt: int = 1) -> str:
    """`webhook-id`: one per job outcome, the same on every retry and for every endpoint (the idempotency key).

    An attempt of a job reaches one final state once, so a re-announced outcome or a duplicate bus event gets the same
    id; a retried or reprocessed job's next attempt ends with an id of its own (`_2`, ...; the first has no suffix).
    """
    suffix = f"_{attempt}" if attempt > 1 else ""
    return f"msg_{job_id}_{event_type.rpartition('.')[2]}{suffix}"
