"""`POST /uploads`: the request's rules, the job it creates, and the presigned form the client uploads with.

The body is `{"filename", "contentType", "size"}` and nothing else: an unknown field is refused with
UNKNOWN_FIELD rather than ignored, so a misspelt field (`content_type`) fails loudly instead of silently.
The filename is metadata only (the key is generated), but it is shown back to clients and written to logs,
so it may not hold path separators, control, surrogate or bidirectional-override characters.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from functions.api.errors import ApiError, bad_request
from functions.api.settings import ApiSettings
from functions.common.job_state import Job, new_job

UPLOAD_FIELDS = frozenset({"filename", "contentType", "size"})
MAX_FILENAME_CHARS = 255
# Characters that reorder or hide text when a filename is displayed (a classic way to disguise an extension).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters, lone surrogates (not encodable, so DynamoDB could not store them), line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


@dataclass(frozen=True)
class UploadRequest:
    """A validated `POST /uploads` body."""

    filename: str
    """What the client calls the file; metadata only."""
    content_type: str
    """The declared media type, lower case; the upload form pins `Content-Type` to it."""
    size: int
    """The declared size in bytes; the upload form refuses anything larger."""


def validate_upload_request(
    payload: Mapping[str, Any], *, allowed_content_types: frozenset[str], max_upload_bytes: int
) -> UploadRequest:
    """The upload request, or the first rule it breaks as an ApiError (400, 413 or 415)."""
    unknown = sorted(set(payload) - UPLOAD_FIELDS)
    if unknown:
        raise bad_request("UNKNOWN_FIELD", f"unknown fields {unknown}; allowed: filename, contentType, size")
    return UploadRequest(
        filename=validate_filename(payload.get("filename")),
        content_type=validate_content_type(payload.get("contentType"), allowed_content_types),
        size=validate_size(payload.get("size"), max_upload_bytes),
    )


def validate_filename(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("INVALID_FILENAME", "filename must be a non-empty string")
    if len(value) > MAX_FILENAME_CHARS:
        raise bad_request("INVALID_FILENAME", f"filename must be at most {MAX_FILENAME_CHARS} characters")
    if "/" in value or "\\" in value or value in {".", ".."}:
        raise bad_request("INVALID_FILENAME", "filename must be a plain name without path separators")
    if any(char in _BIDI_CONTROLS or unicodedata.category(char) in _FORBIDDEN_CATEGORIES for char in value):
        raise bad_request("INVALID_FILENAME", "filename must not contain control or formatting characters")
    return value


def validate_content_type(value: Any, allowed: frozenset[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("INVALID_CONTENT_TYPE", "contentType must be a non-empty string")
    content_type = value.strip().lower()  # media types are case-insensitive; the form pins the normalised one
    if content_type not in allowed:
        raise ApiError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_CONTENT_TYPE",
            f"contentType must be one of: {', '.join(sorted(allowed))}",
        )
    return content_type


def validate_size(value: Any, max_upload_bytes: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("INVALID_SIZE", "size must be a whole number of bytes, at least 1")
    if value > max_upload_bytes:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "UPLOAD_TOO_LARGE",
            f"size must be at most {max_upload_bytes} bytes",
        )
    return value


def upload_key(job_id: str) -> str:
    """Where the upload lands (docs/CONTRACTS.md); the presigned form is bound to exactly this key."""
    return f"uploads/{job_id}/source"


def new_upload_job(request: UploadRequest, *, job_id: str, owner_id: str, now_ms: int, settings: ApiSettings) -> Job:
    """The job record for an accepted request: AWAITING_UPLOAD until the upload's deadline, kept for the retention."""
    source = {
        "filename": request.filename,
        "contentType": request.content_type,
        "size": request.size,
        "bucket": settings.uploads_bucket,
        "key": upload_key(job_id),
    }
    return new_job(
        job_id=job_id,
        owner_id=owner_id,
        source=source,
        now=now_ms,
        upload_deadline=now_ms + settings.upload_deadline_seconds * 1000,
        retention_seconds=settings.retention_seconds,
    )


def upload_form(
    s3_client: Any, *, bucket: str, key: str, content_type: str, size: int, ttl_seconds: int, now_ms: int
) -> dict[str, Any]:
    """A presigned POST that accepts only this key, this Content-Type and 1..size bytes, for ttl_seconds.

    `expiresAt` is computed from `now_ms`, taken before signing, so it is never later than the policy's own
    expiration (botocore signs from its clock a moment after).
    """
    form = s3_client.generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Fields={"Content-Type": content_type},
        Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, size]],
        ExpiresIn=ttl_seconds,
    )
    expires_at = datetime.fromtimestamp(now_ms // 1000 + ttl_seconds, tz=UTC)
    return {"url": form["url"], "fields": form["fields"], "expiresAt": expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def upload_created_view(job: Job, form: dict[str, Any]) -> dict[str, Any]:
    """The 201 body: the job's ID and status, and the form to send the file with."""
    return {"jobId": job["jobId"], "status": job["status"], "upload": form}
