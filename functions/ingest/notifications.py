"""What arrives on the ingest queue: an S3 event notification (or S3's test event) as the SQS message body.

The models declare only what ingest reads. Powertools' `S3Model` requires fields (`userIdentity`,
`requestParameters`, the bucket's `ownerIdentity`, ...) that the local cloud's emulated S3 does not send, and
ingest has no use for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser import BaseModel
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Field, Json

# The key the presigned POST is bound to (docs/CONTRACTS.md "Keys"); job IDs are generated, never client-chosen.
UPLOAD_KEY = re.compile(r"uploads/(?P<job_id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})/source")


class S3TestEvent(BaseModel):
    """Sent once when the bucket notification is configured; acknowledged and ignored."""

    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


class NotifiedBucket(BaseModel):
    name: str


class NotifiedObject(BaseModel):
    key: str
    """URL-encoded, as S3 sends it (spaces as `+`)."""
    size: int | None = None
    eTag: str | None = None


class NotifiedEntity(BaseModel):
    bucket: NotifiedBucket
    object_: NotifiedObject = Field(alias="object")


class S3NotificationRecord(BaseModel):
    eventSource: str
    eventName: str
    s3: NotifiedEntity


class S3Notification(BaseModel):
    Records: list[S3NotificationRecord]


class IngestQueueRecord(SqsRecordModel):
    """An SQS record of the ingest queue. A body that is neither shape fails validation and ends in the DLQ."""

    body: Json[S3Notification | S3TestEvent]  # type: ignore[assignment]


@dataclass(frozen=True)
class Upload:
    """An upload that arrived for a job."""

    job_id: str
    bucket: str
    key: str
    """Decoded."""
    etag: str | None
    """The ETag of the object the notification is about; the object is read only while it still has it."""


@dataclass(frozen=True)
class Ignored:
    """A notification ingest does not act on (and does not retry), with the reason for the log."""

    reason: str


def upload_from_record(record: S3NotificationRecord, *, uploads_bucket: str) -> Upload | Ignored:
    """The upload a notification announces, or why it is ignored (another event type, bucket or key)."""
    if record.eventSource != "aws:s3" or not record.eventName.startswith("ObjectCreated:"):
        return Ignored(f"not an object-created notification ({record.eventSource} {record.eventName})")
    bucket = record.s3.bucket.name
    if bucket != uploads_bucket:
        return Ignored(f"object in bucket {bucket!r}, not the uploads bucket")
    key = unquote_plus(record.s3.object_.key)
    match = UPLOAD_KEY.fullmatch(key)
    if match is None:
        return Ignored(f"key {key[:200]!r} is not uploads/{{jobId}}/source")
    return Upload(job_id=match.group("job_id"), bucket=bucket, key=key, etag=record.s3.object_.eTag or None)
