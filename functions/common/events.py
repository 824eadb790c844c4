"""The pipeline's events on its custom bus (source `media-pipeline`), and the adapter that puts them."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import boto3

from functions.common.job_state import Job, JobStatus

SOURCE = "media-pipeline"


class DetailType(StrEnum):
    JOB_ACCEPTED = "Job Accepted"
    JOB_REJECTED = "Job Rejected"
    RENDITION_PROGRESS = "Rendition Progress"
    RENDITION_COMPLETED = "Rendition Completed"
    RENDITION_FAILED = "Rendition Failed"
    JOB_COMPLETED = "Job Completed"
    JOB_FAILED = "Job Failed"
    JOB_EXPIRED = "Job Expired"


# The events the tracker applies to a job (the rule on the custom bus matches exactly these).
TRACKED_DETAIL_TYPES = (DetailType.RENDITION_PROGRESS, DetailType.RENDITION_COMPLETED, DetailType.RENDITION_FAILED)

TERMINAL_DETAIL_TYPES = {
    JobStatus.COMPLETED: DetailType.JOB_COMPLETED,
    JobStatus.FAILED: DetailType.JOB_FAILED,
    JobStatus.REJECTED: DetailType.JOB_REJECTED,
    JobStatus.EXPIRED: DetailType.JOB_EXPIRED,
}


class EventPublishFailed(RuntimeError):
    pass


def job_outcome_detail(job: Job) -> dict[str, Any]:
    """Detail of Job Completed / Failed / Rejected / Expired: enough for a subscriber to act without a read."""
    return {
        "jobId": job["jobId"],
        "ownerId": job["ownerId"],
        "status": job["status"],
        "engine": job.get("engine"),
        "error": job.get("error"),
        "renditions": {
            name: {k: r.get(k) for k in ("status", "width", "height", "durationMs", "bytes", "bucket", "key")}
            for name, r in job.get("renditions", {}).items()
        },
    }


def outcome_event(before: Job, after: Job) -> tuple[DetailType, dict[str, Any]] | None:
    """The event to announce when a write made the job terminal; None when it did not."""
    if before["status"] == after["status"]:
        return None
    detail_type = TERMINAL_DETAIL_TYPES.get(JobStatus(after["status"]))
    return (detail_type, job_outcome_detail(after)) if detail_type else None


class EventPublisher:
    def __init__(self, bus_name: str, events_client: Any = None) -> None:
        self._bus_name = bus_name
        self._client = events_client or boto3.client("events")

    def publish(self, detail_type: DetailType | str, detail: dict[str, Any]) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": str(detail_type),
            "Detail": json.dumps(detail, separators=(",", ":"), default=str),
            "EventBusName": self._bus_name,
        }
        response = self._client.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failure = response["Entries"][0]
            raise EventPublishFailed(f"{detail_type}: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}")
