"""boto3 behind the tracker's own ports: reading back the size of a rendition MediaConvert wrote, deleting a deleted
job's files, canceling its MediaConvert job.

The jobs table and the bus are the shared adapters (`functions.common.jobs_table.JobsTable`,
`functions.common.event_bus.EventPublisher`); their AWS errors propagate, so EventBridge retries the event.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.clients import aws_client
from functions.common.mediaconvert_cancel import cancel_mediaconvert_job
from functions.contracts.playback import job_prefix
from functions.tracker.service import OutputReadFailed


class S3Outputs:
    """The outputs bucket, read with HEAD: MediaConvert's COMPLETE event does not say how large an output is."""

    def __init__(self, s3: Any = None) -> None:
        self._s3 = s3 or aws_client("s3")

    def size(self, bucket: str, key: str) -> int:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise OutputReadFailed(str(err)) from err
        return int(head["ContentLength"])


class S3JobFiles:
    """A job's objects in both buckets: `uploads/{jobId}/` (the upload, submit's validated copy) and
    `outputs/{jobId}/` (renditions, the playback package), listed and deleted a thousand at a time."""

    def __init__(self, uploads_bucket: str, outputs_bucket: str, s3: Any = None) -> None:
        self._uploads_bucket = uploads_bucket
        self._outputs_bucket = outputs_bucket
        self._s3 = s3 or aws_client("s3")

    def delete_all(self, job_id: str) -> int:
        removed = 0
        for bucket, prefix in (
            (self._uploads_bucket, f"uploads/{job_id}/"),
            (self._outputs_bucket, job_prefix(job_id)),
        ):
            for page in self._s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if not keys:
                    continue
                response = self._s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                errors = response.get("Errors", [])
                if errors:
                    raise RuntimeError(
                        f"{len(errors)} objects of the job could not be deleted: {errors[0].get('Code')}"
                    )
                removed += len(keys)
        return removed


class MediaConvertCanceller:
    """CancelJob on the job's MediaConvert job."""

    def __init__(self, client: Any = None) -> None:
        self._client = client or aws_client("mediaconvert")

    def cancel_job(self, mediaconvert_job_id: str) -> None:
        cancel_mediaconvert_job(self._client, mediaconvert_job_id)
