"""Pin the validated upload: MediaConvert reads an immutable copy of exactly the object ingest validated.

A presigned POST form stays valid until it expires, so a client can POST a second file to `uploads/{jobId}/source`
after ingest validated the first (a playlist naming other users' uploads, say). The Lambda engine reads the source
with IfMatch on the validated ETag; MediaConvert cannot, so submit first copies the source with CopySourceIfMatch
to `uploads/{jobId}/validated` and points the job's input at the copy. Nothing else writes that key: the presigned
POST is bound to exactly `uploads/{jobId}/source` (functions/api/uploads.py `upload_form`), and the bucket
notification announces only keys ending in `/source` (components/ingest.py, `patterns.UPLOAD_SUFFIX`), so the copy
never starts another ingest. The copy is repeatable (same ETag, same bytes), so a redelivered message copies again
harmlessly; the uploads bucket's lifecycle rule on `uploads/` expires the copy with the source.

One CopyObject copies at most 5 GiB; an upload is a single POST, which S3 caps at 5 GiB too (and `MAX_UPLOAD_BYTES`
is validated against that cap, functions/api/settings.py), so a multipart copy is never needed.

The submit role needs s3:GetObject on `uploads/*` (the copy source) and s3:PutObject on `uploads/*/validated`.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

VALIDATED_NAME = "validated"
_PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})


class SourceReplaced(RuntimeError):
    """The upload is no longer the object ingest validated: no retry will bring that object back."""


def validated_key(job_id: str) -> str:
    """Where the pinned copy of a job's validated upload lives (docs/CONTRACTS.md "Keys")."""
    return f"uploads/{job_id}/{VALIDATED_NAME}"


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class ValidatedSources:
    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def pin(self, *, bucket: str, key: str, etag: str | None, job_id: str) -> str:
        """Copy `key` to `validated_key(job_id)` only while it still has `etag`; the copy's key.

        Without `etag` (a message from before ingest named it) the copy is unconditional: what MediaConvert read
        before, but from the one key its role may read. Raises SourceReplaced when the precondition fails; any other
        error propagates, so the message is retried.
        """
        destination = validated_key(job_id)
        condition = {} if etag is None else {"CopySourceIfMatch": _quoted(etag)}
        try:
            self._s3.copy_object(Bucket=bucket, Key=destination, CopySource={"Bucket": bucket, "Key": key}, **condition)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code")
            if code in _PRECONDITION_FAILED_CODES:
                raise SourceReplaced(f"s3://{bucket}/{key} was replaced after it was validated") from err
            raise
        return destination
