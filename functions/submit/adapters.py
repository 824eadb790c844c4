"""boto3 implementations of the submit ports: MediaConvert's CreateJob and CancelJob, and the S3 copy that pins the
upload.

The MediaConvert client is boto3's default for the region; `AWS_ENDPOINT_URL_MEDIACONVERT` (which boto3 reads by
itself) points it elsewhere, e.g. at the local cloud's stand-in. DescribeEndpoints is not needed: every account
can use the regional endpoint.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from functions.common.clients import aws_client
from functions.common.mediaconvert_cancel import cancel_mediaconvert_job
from functions.submit.service import CreatedJob, SettingsRefused, SourceReplaced

# The one CreateJob error that says "these settings, for this input, will never work"; every other error
# (throttling, 5xx, a missing queue or role permission) is worth retrying and, if it persists, ends in the DLQ.
SETTINGS_REFUSED = "BadRequestException"
_PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})


def _error_code(err: ClientError) -> str | None:
    return err.response.get("Error", {}).get("Code")


class MediaConvertJobs:
    def __init__(self, client: Any = None) -> None:
        self._client = client or aws_client("mediaconvert")

    def create_job(self, request: dict[str, Any]) -> CreatedJob:
        """`CreateJob(**request)`; raises SettingsRefused for a BadRequest, ClientError for anything else."""
        try:
            response = self._client.create_job(**request)
        except ClientError as err:
            if _error_code(err) == SETTINGS_REFUSED:
                raise SettingsRefused(err.response["Error"].get("Message", "")) from err
            raise
        job = response["Job"]
        return CreatedJob(id=job["Id"], arn=job.get("Arn", ""), status=job.get("Status", ""))

    def cancel_job(self, mediaconvert_job_id: str) -> None:
        cancel_mediaconvert_job(self._client, mediaconvert_job_id)


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class ValidatedSources:
    """The pinned copy, made with CopyObject and CopySourceIfMatch on the ETag ingest validated.

    One CopyObject copies at most 5 GiB; an upload is a single POST, which S3 caps at 5 GiB too (and
    `MAX_UPLOAD_BYTES` is validated against that cap in the api's settings), so a multipart copy is never needed.
    The submit role needs s3:GetObject on `uploads/*` (the copy source) and s3:PutObject on `uploads/*/validated`.
    """

    def __init__(self, s3_client: Any = None) -> None:
        self._s3 = s3_client or aws_client("s3")

    def pin(self, *, bucket: str, key: str, etag: str | None, destination: str) -> None:
        """Copy `key` to `destination` only while it still has `etag`.

        Without `etag` (a message from before ingest named it) the copy is unconditional: what MediaConvert read
        before, but from the one key its role may read. Raises SourceReplaced when the precondition fails; any other
        error propagates, so the message is retried.
        """
        condition = {} if etag is None else {"CopySourceIfMatch": _quoted(etag)}
        try:
            self._s3.copy_object(Bucket=bucket, Key=destination, CopySource={"Bucket": bucket, "Key": key}, **condition)
        except ClientError as err:
            if _error_code(err) in _PRECONDITION_FAILED_CODES:
                raise SourceReplaced(f"s3://{bucket}/{key} was replaced after it was validated") from err
            raise
