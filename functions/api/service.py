"""The api function's rules: what a request may say, what it changes, and how the answer reads.

Nothing here trusts its input: bodies may be undecodable, query strings repeated (HTTP API joins repeats with
commas), path parameters anything but a slash. Every refusal is an ApiError carrying the HTTP status and the
stable code a client can branch on, answered as `{"error": {"code", "message"}}`, never a 500. Messages never echo
the offending value back: it is untrusted input, and a reflected value is one more thing a client could use to
probe the API.

Storage, signing and the webhook URLs' address checks are ports (`JobStore`, `ObjectSigner`, `EndpointStore`,
`DeliveryStore`, `UrlPolicy`); adapters.py implements them over boto3 and the SSRF policy. The request and answer
models here, with the job view in contracts/job_view.py, are what docs/openapi.json describes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from functions.api.settings import ApiSettings
from functions.common import job_state
from functions.common.job_state import Transition, new_job
from functions.common.webhook_signing import new_secret
from functions.contracts.events import DetailType, EventDetail, JobDeletionRequested, JobOutcome
from functions.contracts.job_view import JobPage, JobView, SignedLinks, iso_utc, job_page, job_view
from functions.contracts.jobs import JobRecord, JobSource, JobStatus, RerunMessage, RerunMode, RerunRequest
from functions.contracts.media import MediaType
from functions.contracts.webhooks import (
    ALL_EVENT_TYPES,
    DELIVERY_ERROR_DESCRIPTION,
    MAX_ENDPOINTS_PER_OWNER,
    Endpoint,
    client_error,
    is_endpoint_id,
    new_endpoint,
    new_endpoint_id,
    rotated,
)

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
DEFAULT_DELIVERY_PAGE = 20
MAX_DELIVERY_PAGE = 100
MAX_FILENAME_CHARS = 255
UPLOAD_FIELDS = frozenset({"filename", "contentType", "size"})

# Job IDs are ULIDs: 26 characters of Crockford base32. Anything else cannot name a job, so it is answered
# as a missing job without a read (and never reaches DynamoDB, which rejects keys over 2 KiB with a 400 of its own).
_JOB_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
_PAGE_SIZE = re.compile(r"[0-9]{1,3}")
# Characters that reorder or hide text when a filename is displayed (a classic way to disguise an extension).
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters, lone surrogates (not encodable, so DynamoDB could not store them), line/paragraph separators.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


# --- errors -------------------------------------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, for a client to branch on, e.g. `JOB_NOT_FOUND` or `INVALID_LIMIT`.")
    message: str = Field(description="What is wrong, in plain words; never the offending value.")


class ErrorBody(BaseModel):
    """Every refusal."""

    error: ErrorDetail


class GatewayRefusal(BaseModel):
    """What API Gateway's JWT authorizer answers itself, before the function runs, to a missing or invalid token."""

    message: Literal["Unauthorized"]


class ApiError(Exception):
    """A request the API refuses; the handler turns it into a JSON error response."""

    def __init__(self, status: HTTPStatus, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return ErrorBody(error=ErrorDetail(code=self.code, message=self.message)).model_dump()


def bad_request(code: str, message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, code, message)


def invalid_cursor() -> ApiError:
    return bad_request("INVALID_CURSOR", "cursor is not one this API issued to you; start again without it")


def unauthorized() -> ApiError:
    return ApiError(HTTPStatus.UNAUTHORIZED, "UNAUTHORIZED", "a bearer token with a subject is required")


def job_not_found() -> ApiError:
    """The one answer for a job that does not exist and for another user's job: the two must not differ."""
    return ApiError(HTTPStatus.NOT_FOUND, "JOB_NOT_FOUND", "job not found")


def route_not_found() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "NOT_FOUND", "no such route")


def method_not_allowed(allowed: list[str]) -> ApiError:
    methods = ", ".join(allowed)
    return ApiError(
        HTTPStatus.METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", f"this route accepts {methods}", headers={"Allow": methods}
    )


def webhook_not_found() -> ApiError:
    """Like jobs: another user's endpoint answers exactly like a missing one."""
    return ApiError(HTTPStatus.NOT_FOUND, "WEBHOOK_NOT_FOUND", "webhook not found")


def webhook_url_refused(reason: str) -> ApiError:
    """The URL failed the address policy; `reason` is the policy's, which never repeats the URL."""
    return bad_request("WEBHOOK_URL_REFUSED", f"this URL cannot receive webhooks: {reason}")


def too_many_webhooks(limit: int) -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "TOO_MANY_WEBHOOKS", f"an account can register at most {limit} webhooks")


def concurrent_change(what: str = "the webhook") -> ApiError:
    return ApiError(HTTPStatus.CONFLICT, "CONCURRENT_CHANGE", f"{what} changed meanwhile; try again")


def quota_exceeded(message: str, retry_after_seconds: int) -> ApiError:
    """429: one of the caller's quotas is used up; `Retry-After` says in how many seconds the request could pass."""
    return ApiError(
        HTTPStatus.TOO_MANY_REQUESTS, "QUOTA_EXCEEDED", message, headers={"Retry-After": str(retry_after_seconds)}
    )


# --- the request ----------------------------------------------------------------------------------------------------


def owner_from_claims(claims: Mapping[str, Any]) -> str:
    """The caller: the `sub` claim that API Gateway's JWT authorizer verified and passed on."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise unauthorized()
    return subject


def parse_json_object(body: str | None, *, base64_encoded: bool) -> dict[str, Any]:
    """The request body as a JSON object; INVALID_JSON when it is not JSON, INVALID_REQUEST when not an object."""
    if not body:
        raise bad_request("INVALID_JSON", "the request body must be a JSON object")
    try:
        text = base64.b64decode(body, validate=True).decode("utf-8") if base64_encoded else body
        payload = json.loads(text)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and integers too long to convert; RecursionError, absurd nesting.
        raise bad_request("INVALID_JSON", "the request body is not valid JSON") from err
    if not isinstance(payload, dict):
        raise bad_request("INVALID_REQUEST", "the request body must be a JSON object")
    return payload


def parse_page_size(raw: str | None) -> int:
    """`limit` from the query string: absent means the default; otherwise a whole number from 1 to 100."""
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        raise bad_request("INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
    return int(raw)


def parse_cursor(raw: str | None) -> str | None:
    """`cursor` from the query string; an empty one asks for the first page, like no cursor at all."""
    return raw or None


def is_job_id(value: str) -> bool:
    return bool(_JOB_ID.fullmatch(value))


# --- ports ----------------------------------------------------------------------------------------------------------


class JobStore(Protocol):
    def create(self, job: JobRecord) -> None: ...

    def get(self, job_id: str) -> JobRecord | None:
        """The job, or None when there is none."""

    def page_for_owner(self, owner_id: str, *, limit: int, cursor: str | None) -> tuple[list[JobRecord], str | None]:
        """The owner's jobs, newest first, and the next page's cursor; `invalid_cursor()` for one it did not issue."""


class JobChanges(Protocol):
    """The jobs table's conditional write (functions/common/jobs_table.py `change`)."""

    def get(self, job_id: str) -> JobRecord | None: ...

    def change(self, job_id: str, transition: Transition) -> tuple[JobRecord, JobRecord] | None:
        """(before, after) once written; None when the transition did not apply or the job does not exist."""
        ...


class Announcer(Protocol):
    def publish(self, detail_type: DetailType, detail: EventDetail) -> None: ...


class UsageRelease(Protocol):
    def release(self, job: JobRecord) -> None:
        """A deleted job's bytes no longer count towards its owner's stored-bytes quota."""
        ...


class RerunQueue(Protocol):
    def send(self, message: RerunMessage) -> None:
        """To the ingest queue, which plans and fans out the job's next attempt."""
        ...


class UsageStore(Protocol):
    def create_within_quota(self, job: JobRecord, *, form_expires_ms: int, now_ms: int) -> None:
        """Store the job and count it in its owner's usage, atomically, unless that passes a limit:
        `quota_exceeded(...)` then, with nothing stored."""

    def usage(self, owner_id: str, *, now_ms: int) -> UsageView:
        """The owner's current usage and limits."""


class ObjectSigner(Protocol):
    def presigned_post(self, *, key: str, content_type: str, size: int, ttl_seconds: int) -> tuple[str, dict[str, str]]:
        """URL and form fields of a POST into the uploads bucket admitting only this key, type and 1..size bytes."""

    def download_url(self, key: str) -> str:
        """A short-lived GET link for a key in the outputs bucket."""

    def sign_playback(self, job_id: str, keys: Mapping[str, str]) -> SignedLinks:
        """Links through the CDN to files under the job's folder, all under one signature."""


class EndpointStore(Protocol):
    def create(self, endpoint: Endpoint, *, limit: int) -> bool:
        """Store the endpoint unless its owner already has `limit`, atomically (concurrent creates never pass the
        cap); whether it was stored."""

    def get(self, owner_id: str, endpoint_id: str) -> Endpoint | None:
        """The owner's endpoint, or None when the owner has no such endpoint."""

    def list_for_owner(self, owner_id: str) -> list[Endpoint]: ...

    def delete(self, owner_id: str, endpoint_id: str) -> bool:
        """Whether there was such an endpoint to delete."""

    def rotate_secret(self, before: Endpoint, after: Endpoint) -> bool:
        """Store `after`'s secrets unless the secret changed since `before` was read; whether it was stored."""


class DeliveryStore(Protocol):
    def recent(self, endpoint_id: str, limit: int) -> list[dict[str, Any]]:
        """The endpoint's latest delivery attempts, newest first."""


class UrlPolicy(Protocol):
    def refusal(self, url: str) -> str | None:
        """Why the address policy refuses the URL (never repeating it), or None when it may receive webhooks."""


# --- GET /health, POST /uploads, GET /jobs/{jobId}, GET /jobs ---------------------------------------------------


class Health(BaseModel):
    status: Literal["ok"]


class UploadRequest(BaseModel):
    """`POST /uploads`: the file about to be uploaded; nothing else (an unknown field is refused, not ignored).

    The filename is metadata only (the key is generated), but it is shown back to clients and written to logs,
    so it may not hold path separators, control, surrogate or bidirectional-override characters.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    filename: str = Field(min_length=1, max_length=MAX_FILENAME_CHARS, description="What the client calls the file.")
    contentType: str = Field(
        description="One of the deployment's allowed media types (`ALLOWED_CONTENT_TYPES`: video, image and audio "
        "types), any case; the upload form pins `Content-Type` to it, lower case. It picks the size limit only: "
        "what the file is, ingest finds out from its content."
    )
    size: int = Field(
        ge=1,
        description="Bytes, at most the limit of the declared type's kind: `image/*` `MAX_IMAGE_UPLOAD_BYTES`, "
        "`audio/*` `MAX_AUDIO_UPLOAD_BYTES`, any other `MAX_UPLOAD_BYTES`; the upload form refuses a larger file.",
    )


class UploadForm(BaseModel):
    url: str = Field(description="Send `multipart/form-data` here: every field, then `file`.")
    fields: dict[str, str]
    expiresAt: str = Field(description="ISO-8601 UTC; the form is refused after it.")


class QuotaUse(BaseModel):
    used: int
    limit: int = Field(description="0: no limit.")


class UsageView(BaseModel):
    """`GET /usage`: the caller's use of each quota; `POST /uploads` answers 429 `QUOTA_EXCEEDED` past one."""

    openUploads: QuotaUse = Field(description="Upload forms issued and not yet expired, used or not.")
    jobsThisHour: QuotaUse = Field(description="Jobs created since the start of this UTC clock hour.")
    storedBytes: QuotaUse = Field(
        description="Declared upload sizes of the jobs created on the days still within the job retention."
    )


class UploadCreated(BaseModel):
    """The job's ID and status, and the form to send the file with."""

    jobId: str
    status: JobStatus
    upload: UploadForm


def validate_upload_request(
    payload: Mapping[str, Any], *, allowed_content_types: frozenset[str], upload_limits: Mapping[MediaType, int]
) -> UploadRequest:
    """The upload request, or the first rule it breaks as an ApiError (400, 413 or 415).

    The size is bounded by the limit of the kind the declared type names (`declared_media_type`).
    """
    unknown = sorted(set(payload) - UPLOAD_FIELDS)
    if unknown:
        raise bad_request("UNKNOWN_FIELD", f"unknown fields {unknown}; allowed: filename, contentType, size")
    filename = validate_filename(payload.get("filename"))
    content_type = validate_content_type(payload.get("contentType"), allowed_content_types)
    kind = declared_media_type(content_type)
    size = validate_size(payload.get("size"), upload_limits[kind], kind)
    return UploadRequest(filename=filename, contentType=content_type, size=size)


def declared_media_type(content_type: str) -> MediaType:
    """The kind a declared (normalised) content type names: `image/*`, `audio/*`, anything else video.

    It only picks the upload's size limit; ingest decides what the file is from its content.
    """
    top_level = content_type.partition("/")[0]
    if top_level == "image":
        return MediaType.IMAGE
    if top_level == "audio":
        return MediaType.AUDIO
    return MediaType.VIDEO


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


def validate_size(value: Any, max_upload_bytes: int, kind: MediaType = MediaType.VIDEO) -> int:
    """A whole number of bytes from 1 to the limit of the upload's kind."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise bad_request("INVALID_SIZE", "size must be a whole number of bytes, at least 1")
    if value > max_upload_bytes:
        raise ApiError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            "UPLOAD_TOO_LARGE",
            f"size must be at most {max_upload_bytes} bytes for {kind} uploads",
        )
    return value


def upload_key(job_id: str) -> str:
    """Where the upload lands (docs/CONTRACTS.md); the presigned form is bound to exactly this key."""
    return f"uploads/{job_id}/source"


def new_upload_job(
    request: UploadRequest, *, job_id: str, owner_id: str, now_ms: int, settings: ApiSettings
) -> JobRecord:
    """The job record for an accepted request: AWAITING_UPLOAD until the upload's deadline, kept for the retention."""
    source = JobSource(
        filename=request.filename,
        contentType=request.contentType,
        size=request.size,
        bucket=settings.uploads_bucket,
        key=upload_key(job_id),
    )
    return new_job(
        job_id=job_id,
        owner_id=owner_id,
        source=source,
        now=now_ms,
        upload_deadline=now_ms + settings.upload_deadline_seconds * 1000,
        retention_seconds=settings.retention_seconds,
    )


def upload_form(
    signer: ObjectSigner, *, key: str, content_type: str, size: int, ttl_seconds: int, now_ms: int
) -> UploadForm:
    """A presigned POST that accepts only this key, this Content-Type and 1..size bytes, for ttl_seconds.

    `size` is the declared size, already bounded by its kind's limit, so the policy's `content-length-range`
    never admits more than that limit.

    `expiresAt` is computed from `now_ms`, taken before signing, so it is never later than the policy's own
    expiration (botocore signs from its clock a moment after).
    """
    url, fields = signer.presigned_post(key=key, content_type=content_type, size=size, ttl_seconds=ttl_seconds)
    expires_at = datetime.fromtimestamp(now_ms // 1000 + ttl_seconds, tz=UTC)
    return UploadForm(url=url, fields=fields, expiresAt=expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"))


def owned_job(store: JobStore | JobChanges, owner_id: str, job_id: str) -> JobRecord:
    """The caller's job; another user's job answers exactly like a missing one (and a malformed ID is never read)."""
    job = store.get(job_id) if is_job_id(job_id) else None
    if job is None or job.ownerId != owner_id:
        raise job_not_found()
    return job


class Jobs:
    """The job routes: create an upload, read one of the caller's jobs, page through them."""

    def __init__(self, settings: ApiSettings, store: JobStore, signer: ObjectSigner, usage: UsageStore) -> None:
        self.settings = settings
        self.store = store
        self.signer = signer
        self.quotas = usage

    def upload_request(self, body: str | None, *, base64_encoded: bool) -> UploadRequest:
        return validate_upload_request(
            parse_json_object(body, base64_encoded=base64_encoded),
            allowed_content_types=self.settings.allowed_content_types,
            upload_limits=self.settings.upload_limits,
        )

    def create_upload(self, owner_id: str, request: UploadRequest, *, job_id: str, now_ms: int) -> UploadCreated:
        """The job, waiting for its upload, and the form to upload with."""
        form = upload_form(
            self.signer,
            key=upload_key(job_id),
            content_type=request.contentType,
            size=request.size,
            ttl_seconds=self.settings.upload_url_ttl_seconds,
            now_ms=now_ms,
        )
        job = new_upload_job(request, job_id=job_id, owner_id=owner_id, now_ms=now_ms, settings=self.settings)
        form_expires_ms = (now_ms // 1000 + self.settings.upload_url_ttl_seconds) * 1000
        self.quotas.create_within_quota(job, form_expires_ms=form_expires_ms, now_ms=now_ms)
        return UploadCreated(jobId=job.jobId, status=job.status, upload=form)

    def usage(self, owner_id: str, *, now_ms: int) -> UsageView:
        return self.quotas.usage(owner_id, now_ms=now_ms)

    def job(self, owner_id: str, job_id: str) -> JobView:
        job = owned_job(self.store, owner_id, job_id)
        return job_view(job, self.signer.download_url, self.signer.sign_playback)

    def page(self, owner_id: str, *, limit: str | None, cursor: str | None) -> JobPage:
        size = parse_page_size(limit)
        jobs, next_cursor = self.store.page_for_owner(owner_id, limit=size, cursor=parse_cursor(cursor))
        return job_page(jobs, next_cursor, self.signer.download_url, self.signer.sign_playback)


# --- job management -------------------------------------------------------------------------------------------------


def job_not_rerunnable(mode: RerunMode, job: JobRecord) -> ApiError:
    """409: a retry needs a FAILED job, a reprocess a COMPLETED one (and neither a deleted one)."""
    wanted = job_state.RERUN_FROM[mode].value
    state = "was deleted" if job.deletion is not None else f"is {job.status.value}"
    code = "JOB_NOT_RETRYABLE" if mode is RerunMode.RETRY else "JOB_NOT_REPROCESSABLE"
    verb = "retried" if mode is RerunMode.RETRY else "reprocessed"
    return ApiError(HTTPStatus.CONFLICT, code, f"only a {wanted} job can be {verb}; this one {state}")


class JobControl:
    """`DELETE /jobs/{id}`, `POST /jobs/{id}/retry` and `POST /jobs/{id}/reprocess` over the state machine.

    Each is one conditional write (functions/common/job_state.py) and then its announcement. Repeating a request is
    safe and re-sends what an earlier one may have failed to send: a DELETE of a job whose deletion is under way asks
    for it again (and announces `Job Canceled` if that put failed), a retry of a job whose retry is still being
    planned sends the re-run message again.
    """

    def __init__(
        self,
        *,
        store: JobChanges,
        signer: ObjectSigner,
        announcer: Announcer,
        reruns: RerunQueue,
        usage: UsageRelease,
        processing_deadline_seconds: int,
    ) -> None:
        self._store = store
        self._usage = usage
        self._signer = signer
        self._announcer = announcer
        self._reruns = reruns
        self._deadline_seconds = processing_deadline_seconds

    def delete(self, owner_id: str, job_id: str, *, now_ms: int) -> JobView:
        self._owned(owner_id, job_id)
        changed = self._store.change(job_id, _owned_by(owner_id, lambda j: job_state.request_deletion(j, now=now_ms)))
        job = changed[1] if changed else self._owned(owner_id, job_id)
        if changed:
            self._usage.release(job)
        if job.status == JobStatus.CANCELED and job.outcomeAnnouncedAt is None:
            self._announce_cancel(job, now_ms)
        if job.status != JobStatus.DELETED:
            self._announcer.publish(DetailType.JOB_DELETION_REQUESTED, JobDeletionRequested.of(job))
        return self._view(job)

    def rerun(self, owner_id: str, job_id: str, mode: RerunMode, *, now_ms: int) -> JobView:
        self._owned(owner_id, job_id)
        deadline = now_ms + self._deadline_seconds * 1000
        changed = self._store.change(
            job_id, _owned_by(owner_id, lambda j: job_state.begin_rerun(j, mode=mode, now=now_ms, deadline=deadline))
        )
        job = changed[1] if changed else self._owned(owner_id, job_id)
        if changed is None and not _planning(job, mode):
            raise job_not_rerunnable(mode, job)
        self._reruns.send(RerunMessage(rerun=RerunRequest(jobId=job.jobId, attempt=job.attempt)))
        return self._view(job)

    def _announce_cancel(self, job: JobRecord, now_ms: int) -> None:
        self._announcer.publish(DetailType.JOB_CANCELED, JobOutcome.of(job))
        self._store.change(
            job.jobId,
            lambda j: job_state.mark_outcome_announced(j, now=now_ms) if j.status == JobStatus.CANCELED else None,
        )

    def _owned(self, owner_id: str, job_id: str) -> JobRecord:
        return owned_job(self._store, owner_id, job_id)

    def _view(self, job: JobRecord) -> JobView:
        return job_view(job, self._signer.download_url, self._signer.sign_playback)


def _owned_by(owner_id: str, transition: Transition) -> Transition:
    """The transition, applied only to the owner's job (the write re-reads it)."""
    return lambda job: transition(job) if job.ownerId == owner_id else None


def _planning(job: JobRecord, mode: RerunMode) -> bool:
    """A re-run of this mode was asked for and ingest has not planned it yet: asking again re-sends it."""
    return job.status == JobStatus.VALIDATING and job.rerun is not None and job.rerun.mode == mode


# --- the webhook routes ---------------------------------------------------------------------------------------------

EventType = Literal[ALL_EVENT_TYPES]
"""A webhook event type (the Literal of a tuple is the Literal of its items)."""


class WebhookRegistration(BaseModel):
    """`POST /webhooks`: where to send which events (the URL's address check happens separately)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, description="An http or https URL the address (SSRF) policy admits.")
    events: tuple[EventType, ...] = Field(
        default=ALL_EVENT_TYPES, min_length=1, description="Distinct event types; all four when absent."
    )


class WebhookView(BaseModel):
    """An endpoint as its owner sees it in lists: never a secret."""

    id: str
    url: str
    events: list[str]
    status: str = Field(description="`active`, or `disabled` once the receiver answered 410 Gone.")
    createdAt: str = Field(description="ISO-8601 UTC.")
    updatedAt: str = Field(description="ISO-8601 UTC.")
    disabledReason: str | None


class CreatedWebhook(WebhookView):
    """`POST /webhooks`: the endpoint and, this once, its secret."""

    secret: str = Field(description="`whsec_…`, which signs every delivery; shown only here and on rotation.")


class RotatedSecret(BaseModel):
    """`POST /webhooks/{webhookId}/rotate-secret`: the new secret, and until when the old one still signs."""

    id: str
    secret: str
    previousSecretExpiresAt: str = Field(description="ISO-8601 UTC; until then deliveries carry both signatures.")


class WebhookList(BaseModel):
    webhooks: list[WebhookView] = Field(description="Oldest first.")


class DeliveryView(BaseModel):
    """One delivery attempt."""

    webhookId: str = Field(description="The `webhook-id` header: one per job outcome, the same on every retry.")
    event: str
    jobId: str
    attempt: int
    outcome: str = Field(description="`delivered`, `retrying`, `dead-lettered`, `endpoint-disabled` or `sending`.")
    statusCode: int | None
    error: str | None = Field(description=f"{DELIVERY_ERROR_DESCRIPTION} Null when delivered or still sending.")
    attemptedAt: str = Field(description="ISO-8601 UTC.")
    durationMs: int | None
    nextAttemptAt: str | None = Field(description="ISO-8601 UTC, while the delivery is retrying.")


class DeliveryList(BaseModel):
    deliveries: list[DeliveryView] = Field(description="Newest first.")


def parse_registration(payload: Mapping[str, Any]) -> WebhookRegistration:
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
    return WebhookRegistration(url=url, events=tuple(events))


def parse_delivery_page_size(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_DELIVERY_PAGE
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_DELIVERY_PAGE:
        raise bad_request("INVALID_LIMIT", f"limit must be a whole number from 1 to {MAX_DELIVERY_PAGE}")
    return int(raw)


def endpoint_view(endpoint: Endpoint) -> WebhookView:
    return WebhookView(
        id=endpoint["endpointId"],
        url=endpoint["url"],
        events=list(endpoint["events"]),
        status=str(endpoint["status"]).lower(),
        createdAt=iso_utc(endpoint["createdAt"]),
        updatedAt=iso_utc(endpoint["updatedAt"]),
        disabledReason=endpoint.get("disabledReason"),
    )


def created_view(endpoint: Endpoint) -> CreatedWebhook:
    return CreatedWebhook(**endpoint_view(endpoint).model_dump(), secret=endpoint["secret"])


def rotated_view(endpoint: Endpoint) -> RotatedSecret:
    return RotatedSecret(
        id=endpoint["endpointId"],
        secret=endpoint["secret"],
        previousSecretExpiresAt=iso_utc(endpoint["previousSecretExpiresAt"]),
    )


def delivery_view(entry: Mapping[str, Any]) -> DeliveryView:
    next_attempt = entry.get("nextAttemptAt")
    return DeliveryView(
        webhookId=entry["webhookId"],
        event=entry["eventType"],
        jobId=entry["jobId"],
        attempt=entry["attempt"],
        outcome=entry["outcome"],
        statusCode=entry.get("statusCode"),
        error=client_error(entry.get("error")),
        attemptedAt=iso_utc(entry["attemptedAt"]),
        durationMs=entry.get("durationMs"),
        nextAttemptAt=iso_utc(next_attempt) if next_attempt else None,
    )


class Webhooks:
    """The webhook routes: register, list, delete, rotate a secret, read the delivery log; the caller's only."""

    def __init__(
        self, *, endpoints: EndpointStore, deliveries: DeliveryStore, urls: UrlPolicy, secret_overlap_seconds: int
    ) -> None:
        self.endpoints = endpoints
        self.deliveries = deliveries
        self.urls = urls
        self.secret_overlap_seconds = secret_overlap_seconds

    def register(self, owner_id: str, registration: WebhookRegistration, *, now_ms: int) -> CreatedWebhook:
        refusal = self.urls.refusal(registration.url)  # checked again, against the address used, at every delivery
        if refusal:
            raise webhook_url_refused(refusal)
        endpoint = new_endpoint(
            endpoint_id=new_endpoint_id(),
            owner_id=owner_id,
            url=registration.url,
            events=registration.events,
            secret=new_secret(),
            now_ms=now_ms,
        )
        if not self.endpoints.create(endpoint, limit=MAX_ENDPOINTS_PER_OWNER):
            raise too_many_webhooks(MAX_ENDPOINTS_PER_OWNER)
        return created_view(endpoint)

    def registered(self, owner_id: str) -> WebhookList:
        endpoints = sorted(self.endpoints.list_for_owner(owner_id), key=lambda endpoint: endpoint["createdAt"])
        return WebhookList(webhooks=[endpoint_view(endpoint) for endpoint in endpoints])

    def delete(self, owner_id: str, webhook_id: str) -> None:
        if not is_endpoint_id(webhook_id) or not self.endpoints.delete(owner_id, webhook_id):
            raise webhook_not_found()

    def rotate_secret(self, owner_id: str, webhook_id: str, *, now_ms: int) -> RotatedSecret:
        endpoint = self._owned(owner_id, webhook_id)
        after = rotated(endpoint, new_secret=new_secret(), now_ms=now_ms, overlap_seconds=self.secret_overlap_seconds)
        if not self.endpoints.rotate_secret(endpoint, after):
            raise concurrent_change()
        return rotated_view(after)

    def recent_deliveries(self, owner_id: str, webhook_id: str, *, limit: str | None) -> DeliveryList:
        size = parse_delivery_page_size(limit)
        endpoint = self._owned(owner_id, webhook_id)
        entries = self.deliveries.recent(endpoint["endpointId"], size)
        return DeliveryList(deliveries=[delivery_view(entry) for entry in entries])

    def _owned(self, owner_id: str, webhook_id: str) -> Endpoint:
        """The caller's endpoint; another user's answers exactly like a missing one."""
        endpoint = self.endpoints.get(owner_id, webhook_id) if is_endpoint_id(webhook_id) else None
        if endpoint is None:
            raise webhook_not_found()
        return endpoint
