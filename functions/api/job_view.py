"""How a job reads to its owner (DESIGN.md, "A job reads"): the stored record minus its bookkeeping.

The record's internals (`version`, `openJob`, `deadlineAt`, `expiresAt`, `ownerId`, bucket names and keys)
stay inside; times become ISO-8601 UTC; renditions become a list in ladder order, and a completed one
carries a short-lived download link made by the `download_url` callable the handler injects. Webhook deliveries
that gave up (`webhookFailures`, a map on the record) become a list, oldest first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from functions.common.job_state import Job, RenditionStatus

DownloadUrl = Callable[[str], str]
"""Makes a download link for a key in the outputs bucket."""


def iso_utc(epoch_ms: int) -> str:
    """Epoch milliseconds as ISO-8601 UTC with milliseconds: `2026-11-24T02:22:13.123Z`."""
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def job_view(job: Job, download_url: DownloadUrl) -> dict[str, Any]:
    source = job.get("source") or {}
    renditions = sorted((job.get("renditions") or {}).values(), key=_ladder_position)
    return {
        "jobId": job["jobId"],
        "status": job["status"],
        "mediaType": job.get("mediaType"),
        "engine": job.get("engine"),
        "createdAt": iso_utc(job["createdAt"]),
        "updatedAt": iso_utc(job["updatedAt"]),
        "progress": job.get("progress", 0),
        "source": {
            "filename": source.get("filename"),
            "contentType": source.get("contentType"),
            "size": source.get("size"),
        },
        "probe": dict(job["probe"]) if job.get("probe") else None,
        "renditions": [rendition_view(rendition, download_url) for rendition in renditions],
        "error": _error_view(job.get("error")),
        "webhookFailures": webhook_failures_view(job),
    }


def webhook_failures_view(job: Job) -> list[dict[str, Any]]:
    """Webhook deliveries of the job that gave up after their last attempt, oldest first; [] when there are none."""
    failures = sorted((job.get("webhookFailures") or {}).values(), key=lambda f: (f["failedAt"], f["endpointId"]))
    return [
        {
            "endpointId": failure["endpointId"],
            "eventType": failure["eventType"],
            "attempts": failure["attempts"],
            "statusCode": failure.get("statusCode"),
            "error": failure.get("error"),
            "failedAt": iso_utc(failure["failedAt"]),
        }
        for failure in failures
    ]


def rendition_view(rendition: dict[str, Any], download_url: DownloadUrl) -> dict[str, Any]:
    """One rendition; `url` only once it is COMPLETED, `reason` says why a SKIPPED one was skipped."""
    completed = rendition["status"] == RenditionStatus.COMPLETED and rendition.get("key")
    return {
        "name": rendition["name"],
        "status": rendition["status"],
        "progress": rendition.get("progress", 0),
        "width": rendition.get("width"),
        "height": rendition.get("height"),
        "durationMs": rendition.get("durationMs"),
        "bytes": rendition.get("bytes"),
        "contentType": rendition.get("contentType"),
        "url": download_url(rendition["key"]) if completed else None,
        "error": _error_view(rendition.get("error")),
        "reason": rendition.get("reason"),
    }


def job_page_view(jobs: Iterable[Job], next_cursor: str | None, download_url: DownloadUrl) -> dict[str, Any]:
    """`GET /jobs`: a page of the owner's jobs as the table returned them (newest first), and where to go on."""
    return {"jobs": [job_view(job, download_url) for job in jobs], "nextCursor": next_cursor}


def _ladder_position(rendition: dict[str, Any]) -> tuple[float, str]:
    return (rendition.get("order", float("inf")), rendition["name"])


def _error_view(error: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"code": error.get("code"), "message": error.get("message")} if error else None
