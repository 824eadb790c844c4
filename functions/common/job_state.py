"""The job state machine: the one place that decides how a job record may change.

Every function here is pure: it takes the job as stored (a plain dict) and returns the new record, or
None when the change does not apply (a duplicate, an event that arrives after a later one, a job of
another state). The jobs table adapter writes the result with a condition on the version it read, so
concurrent writers cannot both win, and a None never writes at all.

Job:        AWAITING_UPLOAD -> VALIDATING -> PROCESSING -> COMPLETED | FAILED
            AWAITING_UPLOAD | VALIDATING -> REJECTED | EXPIRED; VALIDATING -> FAILED (ingest gave up)
Rendition:  QUEUED -> PROCESSING -> COMPLETED | FAILED;  SKIPPED from the start (no upscaling)
Bookkeeping that leaves the status alone: the outcome announced, a webhook delivery dead-lettered.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

Job = dict[str, Any]
# A pure change to a job: the new record, or None when it does not apply. JobsTable.change writes the result.
Transition = Callable[[Job], Job | None]


class JobStatus(StrEnum):
    AWAITING_UPLOAD = "AWAITING_UPLOAD"
    VALIDATING = "VALIDATING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"


class RenditionStatus(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"


TERMINAL_JOB_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.REJECTED, JobStatus.EXPIRED})
TERMINAL_RENDITION_STATUSES = frozenset({RenditionStatus.COMPLETED, RenditionStatus.FAILED, RenditionStatus.SKIPPED})

JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.AWAITING_UPLOAD: frozenset({JobStatus.VALIDATING, JobStatus.REJECTED, JobStatus.EXPIRED}),
    JobStatus.VALIDATING: frozenset({JobStatus.PROCESSING, JobStatus.REJECTED, JobStatus.EXPIRED, JobStatus.FAILED}),
    JobStatus.PROCESSING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED}),
}
RENDITION_TRANSITIONS: dict[RenditionStatus, frozenset[RenditionStatus]] = {
    RenditionStatus.QUEUED: frozenset({RenditionStatus.PROCESSING, RenditionStatus.COMPLETED, RenditionStatus.FAILED}),
    RenditionStatus.PROCESSING: frozenset({RenditionStatus.COMPLETED, RenditionStatus.FAILED}),
}

# Sparse index key: present only while the job can still change, so the deadline sweep reads open jobs only.
OPEN_MARKER = "OPEN"

# Keys of a rendition that only the state machine sets; an output report cannot overwrite them.
_STATE_KEYS = frozenset({"name", "status", "order", "progress", "error", "reason"})


def can_move_job(current: str, target: str) -> bool:
    return JobStatus(target) in JOB_TRANSITIONS.get(JobStatus(current), frozenset())


def can_move_rendition(current: str, target: str) -> bool:
    return RenditionStatus(target) in RENDITION_TRANSITIONS.get(RenditionStatus(current), frozenset())


def is_terminal(job: Job) -> bool:
    return job["status"] in TERMINAL_JOB_STATUSES


def new_job(
    *,
    job_id: str,
    owner_id: str,
    source: dict[str, Any],
    now: int,
    upload_deadline: int,
    retention_seconds: int,
) -> Job:
    """A job waiting for its upload. Times are epoch milliseconds except the TTL (epoch seconds, as DynamoDB wants)."""
    return {
        "jobId": job_id,
        "ownerId": owner_id,
        "status": JobStatus.AWAITING_UPLOAD.value,
        "version": 0,
        "createdAt": now,
        "updatedAt": now,
        "mediaType": None,
        "engine": None,
        "progress": 0,
        "source": dict(source),
        "probe": None,
        "renditions": {},
        "error": None,
        "openJob": OPEN_MARKER,
        "deadlineAt": upload_deadline,
        "expiresAt": (now // 1000) + retention_seconds,
    }


def _moved(job: Job, status: JobStatus, now: int) -> Job:
    changed = copy.deepcopy(job)
    changed["status"] = status.value
    changed["updatedAt"] = now
    if status in TERMINAL_JOB_STATUSES:
        changed.pop("openJob", None)
        changed.pop("deadlineAt", None)
    return changed


def begin_validation(job: Job, *, now: int, deadline: int) -> Job | None:
    """The upload arrived: AWAITING_UPLOAD -> VALIDATING, with the processing deadline from now on."""
    if job["status"] != JobStatus.AWAITING_UPLOAD:
        return None
    changed = _moved(job, JobStatus.VALIDATING, now)
    changed["deadlineAt"] = deadline
    return changed


def reject(job: Job, *, code: str, message: str, now: int, probe: dict[str, Any] | None = None) -> Job | None:
    """The upload broke a rule: the reason goes on the job for the client to read."""
    if not can_move_job(job["status"], JobStatus.REJECTED):
        return None
    changed = _moved(job, JobStatus.REJECTED, now)
    changed["error"] = {"code": code, "message": message}
    if probe is not None:
        changed["probe"] = probe
    return changed


def begin_processing(
    job: Job,
    *,
    media_type: str,
    engine: str,
    probe: dict[str, Any],
    planned: Iterable[dict[str, Any]],
    now: int,
) -> Job | None:
    """Validation passed: VALIDATING -> PROCESSING with the rendition plan.

    `planned` items carry `name`, `status` (QUEUED or SKIPPED), the target `height`/`width`, and for
    SKIPPED a `reason`.
    """
    if job["status"] != JobStatus.VALIDATING:
        return None
    changed = _moved(job, JobStatus.PROCESSING, now)
    changed.update(mediaType=media_type, engine=engine, probe=dict(probe), progress=0)
    changed["renditions"] = {}
    for order, item in enumerate(planned):
        status = RenditionStatus(item["status"])
        if status not in (RenditionStatus.QUEUED, RenditionStatus.SKIPPED):
            raise ValueError(f"rendition {item['name']}: a plan holds QUEUED or SKIPPED renditions, not {status}")
        if item["name"] in changed["renditions"]:
            raise ValueError(f"rendition {item['name']} is planned twice")
        changed["renditions"][item["name"]] = {**item, "status": status.value, "order": order, "progress": 0}
    return _settle(changed, now)


def start_rendition(job: Job, *, name: str, now: int) -> Job | None:
    """A transcoder picked the rendition up."""
    rendition = job.get("renditions", {}).get(name)
    if job["status"] != JobStatus.PROCESSING or rendition is None:
        return None
    if not can_move_rendition(rendition["status"], RenditionStatus.PROCESSING):
        return None
    changed = copy.deepcopy(job)
    changed["renditions"][name]["status"] = RenditionStatus.PROCESSING.value
    changed["updatedAt"] = now
    return changed


def record_progress(job: Job, *, name: str, percent: int, now: int) -> Job | None:
    """Progress only ever rises; a stale or repeated report is a no-op.

    Any report on a QUEUED rendition (0% included: the transcoder's "started") moves it to PROCESSING.
    """
    rendition = job.get("renditions", {}).get(name)
    if job["status"] != JobStatus.PROCESSING or rendition is None:
        return None
    if rendition["status"] not in (RenditionStatus.QUEUED, RenditionStatus.PROCESSING):
        return None
    percent = max(int(rendition.get("progress", 0)), min(99, int(percent)))
    if percent == int(rendition.get("progress", 0)) and rendition["status"] == RenditionStatus.PROCESSING:
        return None
    changed = copy.deepcopy(job)
    changed["renditions"][name].update(status=RenditionStatus.PROCESSING.value, progress=percent)
    changed["updatedAt"] = now
    changed["progress"] = overall_progress(changed)
    return changed


def complete_rendition(job: Job, *, name: str, output: dict[str, Any], now: int) -> Job | None:
    """A rendition's output exists: record what was read back from it (width, height, durationMs, bytes, key).

    Keys the state machine owns (name, status, order, progress, error, reason) are not taken from `output`.
    """
    details = {key: value for key, value in output.items() if key not in _STATE_KEYS}
    return _finish_rendition(job, name=name, status=RenditionStatus.COMPLETED, details=details, now=now)


def fail_rendition(job: Job, *, name: str, code: str, message: str, now: int) -> Job | None:
    details = {"error": {"code": code, "message": message}}
    return _finish_rendition(job, name=name, status=RenditionStatus.FAILED, details=details, now=now)


def _finish_rendition(job: Job, *, name: str, status: RenditionStatus, details: dict[str, Any], now: int) -> Job | None:
    rendition = job.get("renditions", {}).get(name)
    if job["status"] != JobStatus.PROCESSING or rendition is None:
        return None
    if not can_move_rendition(rendition["status"], status):
        return None
    changed = copy.deepcopy(job)
    changed["renditions"][name].update(details)
    changed["renditions"][name]["status"] = status.value
    changed["renditions"][name]["progress"] = 100
    changed["updatedAt"] = now
    return _settle(changed, now)


def fail_job(job: Job, *, code: str, message: str, now: int) -> Job | None:
    """Give up on a job that can no longer finish (deadline passed, poison message): every open rendition fails."""
    if not can_move_job(job["status"], JobStatus.FAILED):
        return None
    changed = _moved(job, JobStatus.FAILED, now)
    changed["error"] = {"code": code, "message": message}
    for rendition in changed.get("renditions", {}).values():
        if rendition["status"] not in TERMINAL_RENDITION_STATUSES:
            rendition["status"] = RenditionStatus.FAILED.value
            rendition["error"] = {"code": code, "message": message}
    return changed


def expire_if_overdue(job: Job, *, now: int) -> Job | None:
    """The sweep: an upload that never came expires; processing past its deadline fails."""
    deadline = job.get("deadlineAt")
    if deadline is None or now < deadline or is_terminal(job):
        return None
    if job["status"] == JobStatus.AWAITING_UPLOAD:
        changed = _moved(job, JobStatus.EXPIRED, now)
        changed["error"] = {"code": "UPLOAD_EXPIRED", "message": "no upload arrived before the upload form expired"}
        return changed
    return fail_job(job, code="PROCESSING_TIMEOUT", message="the job did not finish before its deadline", now=now)


def record_hls_output(job: Job, *, bucket: str, key: str, now: int) -> Job | None:
    """An HLS package was written beside the renditions: remember its master playlist on the job."""
    if job["status"] != JobStatus.PROCESSING:
        return None
    hls = {"bucket": bucket, "key": key}
    if job.get("hls") == hls:
        return None
    changed = copy.deepcopy(job)
    changed["hls"] = hls
    changed["updatedAt"] = now
    return changed


MEDIACONVERT_ENGINE = "mediaconvert"


def mediaconvert_job_id(job: Job) -> str | None:
    """The MediaConvert job recorded for this job (`job.mediaconvert.jobId`), if one was submitted."""
    return (job.get("mediaconvert") or {}).get("jobId")


def record_mediaconvert_job(job: Job, *, mediaconvert_job_id: str, client_request_token: str, now: int) -> Job | None:
    """The one MediaConvert job that encodes this job was created: record it as `mediaconvert`, once.

    Only a PROCESSING job of the mediaconvert engine takes the record, and only while it has none: a second
    submission (a redelivered message, a retried function) finds it and does not create another job, and a
    job that already ended is not reopened by a late record. Returns None for all of those.
    """
    if job["status"] != JobStatus.PROCESSING or job.get("engine") != MEDIACONVERT_ENGINE:
        return None
    if job.get("mediaconvert"):
        return None
    changed = copy.deepcopy(job)
    changed["mediaconvert"] = {
        "jobId": mediaconvert_job_id,
        "clientRequestToken": client_request_token,
        "submittedAt": now,
    }
    changed["updatedAt"] = now
    return changed


def mark_outcome_announced(job: Job, *, now: int) -> Job | None:
    """Bookkeeping after the terminal event was published, so a retried delivery announces only what was missed.

    A write a terminal job still takes; it changes neither the status nor anything a client reads.
    """
    if not is_terminal(job) or job.get("outcomeAnnouncedAt") is not None:
        return None
    changed = copy.deepcopy(job)
    changed["outcomeAnnouncedAt"] = now
    return changed


# An owner has at most 10 endpoints (functions/webhooks/endpoints.py) and a job one outcome event; the bound leaves
# room for endpoints deleted and re-created while a job's deliveries were retrying, and keeps the record small.
MAX_WEBHOOK_FAILURES = 20
MAX_WEBHOOK_ERROR_CHARS = 500


@dataclass(frozen=True)
class WebhookFailure:
    """A webhook delivery of this job that gave up after its last attempt (its task is in the DLQ)."""

    owner_id: str
    """Whose endpoint it is: a job of another owner is never touched."""
    endpoint_id: str
    event_type: str
    webhook_id: str
    attempts: int
    status_code: int | None
    """The receiver's last answer; None when there was none (timeout, refused address, connection failure)."""
    error: str | None

    @property
    def key(self) -> str:
        """Its key in `job.webhookFailures`: one entry per endpoint and event."""
        return f"{self.endpoint_id}#{self.event_type}"


def note_webhook_failure(job: Job, failure: WebhookFailure, *, now: int) -> Job | None:
    """Record a dead-lettered delivery in `webhookFailures`, for the job's owner to see; the status stays.

    Works on any job of the endpoint's owner (deliveries are only made for terminal ones). A failure already recorded
    for the same endpoint, event and webhook-id is a no-op: duplicated and redelivered tasks are normal. At most
    MAX_WEBHOOK_FAILURES entries are kept; the oldest make way. `updatedAt` moves, since a client reads the entry.
    """
    if job.get("ownerId") != failure.owner_id:
        return None
    failures: dict[str, Any] = job.get("webhookFailures") or {}
    if (failures.get(failure.key) or {}).get("webhookId") == failure.webhook_id:
        return None
    changed = copy.deepcopy(job)
    kept: dict[str, Any] = changed.get("webhookFailures") or {}
    kept.pop(failure.key, None)
    oldest_first = sorted(kept, key=lambda key: (int(kept[key].get("failedAt", 0)), key))
    for key in oldest_first[: max(0, len(kept) - (MAX_WEBHOOK_FAILURES - 1))]:
        del kept[key]
    kept[failure.key] = {
        "endpointId": failure.endpoint_id,
        "eventType": failure.event_type,
        "webhookId": failure.webhook_id,
        "attempts": failure.attempts,
        "statusCode": failure.status_code,
        "error": failure.error[:MAX_WEBHOOK_ERROR_CHARS] if failure.error is not None else None,
        "failedAt": now,
    }
    changed["webhookFailures"] = kept
    changed["updatedAt"] = now
    return changed


def apply_in_order(job: Job, transitions: Iterable[Transition]) -> Job | None:
    """Several transitions as one write: each sees the previous one's result; None when none of them applied."""
    current, applied = job, False
    for transition in transitions:
        changed = transition(current)
        if changed is not None:
            current, applied = changed, True
    return current if applied else None


def renditions_in_order(job: Job) -> list[dict[str, Any]]:
    """The job's renditions in plan order (a DynamoDB map does not keep the order it was written in)."""
    return sorted(job.get("renditions", {}).values(), key=lambda r: (int(r.get("order", 0)), r["name"]))


def open_rendition_names(job: Job) -> list[str]:
    """Renditions that can still change (QUEUED or PROCESSING), in plan order."""
    return [r["name"] for r in renditions_in_order(job) if r["status"] not in TERMINAL_RENDITION_STATUSES]


def overall_progress(job: Job) -> int:
    """Mean progress of the renditions that will produce output; SKIPPED ones do not count."""
    counted = [r for r in job.get("renditions", {}).values() if r["status"] != RenditionStatus.SKIPPED]
    if not counted:
        return 100 if job["status"] == JobStatus.COMPLETED else 0
    return sum(int(r.get("progress", 0)) for r in counted) // len(counted)


def _settle(job: Job, now: int) -> Job:
    """A PROCESSING job whose renditions are all terminal ends: FAILED if any failed, else COMPLETED."""
    renditions = job["renditions"].values()
    if job["status"] != JobStatus.PROCESSING or any(r["status"] not in TERMINAL_RENDITION_STATUSES for r in renditions):
        job["progress"] = overall_progress(job)
        return job
    failed = [r for r in renditions_in_order(job) if r["status"] == RenditionStatus.FAILED]
    if failed:
        settled = _moved(job, JobStatus.FAILED, now)
        first = failed[0]
        error = first.get("error") or {"code": "RENDITION_FAILED", "message": "a rendition failed"}
        settled["error"] = {"code": error["code"], "message": f"{first['name']}: {error['message']}"}
    else:
        settled = _moved(job, JobStatus.COMPLETED, now)
    settled["progress"] = 100
    return settled
