"""S3 adapter: fetch the source, find a rendition already produced, upload a new one with its facts as metadata.

Only "the object is not there" is turned into a domain answer (SourceMissing, or None from `find_output`); any other
ClientError is transient or a permissions defect and propagates, so SQS delivers the message again.

The transcoder's role needs s3:GetObject on `uploads/*` and s3:PutObject on `outputs/*`. For the redelivery shortcut
it also needs s3:GetObject on `outputs/*` (HEAD is authorised by GetObject) and s3:ListBucket on the outputs bucket
(without it, HEAD of a key that does not exist answers 403 instead of 404). Until it has them, a 403 on that HEAD is
read as "nothing to reuse" and the rendition is encoded again, which is correct, only slower.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from functions.transcode.output_check import OutputMedia

CONTENT_TYPE = "video/mp4"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
_PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})
_CHUNK_BYTES = 1024 * 1024

logger = Logger(child=True)


class SourceMissing(RuntimeError):
    """The upload is no longer in the uploads bucket."""


@dataclass(frozen=True)
class StoredRendition:
    """A rendition object in the outputs bucket, with what the Completed event reports about it."""

    bucket: str
    key: str
    width: int
    height: int
    durationMs: int
    bytes: int


def output_key(job_id: str, rendition: str) -> str:
    return f"outputs/{job_id}/{rendition}.mp4"


def output_metadata(job_id: str, rendition: str, media: OutputMedia) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with a rendition, so a redelivered message can re-announce it from HEAD."""
    return {
        "job-id": job_id,
        "rendition": rendition,
        "width": str(media.width),
        "height": str(media.height),
        "duration-ms": str(media.durationMs),
    }


def stored_rendition_from_head(
    head: dict[str, Any], bucket: str, key: str, job_id: str, rendition: str
) -> StoredRendition | None:
    """The rendition a HEAD response describes, or None unless its metadata says this job and rendition made it."""
    metadata = head.get("Metadata") or {}
    if metadata.get("job-id") != job_id or metadata.get("rendition") != rendition:
        return None
    facts = [metadata.get(name, "") for name in ("width", "height", "duration-ms")]
    if not all(value.isdigit() for value in facts):
        return None
    width, height, duration_ms = (int(value) for value in facts)
    return StoredRendition(bucket, key, width, height, duration_ms, int(head.get("ContentLength") or 0))


def _error_code(err: ClientError) -> str | None:
    return err.response.get("Error", {}).get("Code")


def _is_not_found(err: ClientError) -> bool:
    return _error_code(err) in _NOT_FOUND_CODES


def _quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class MediaStore:
    """The uploads and outputs buckets, as the transcoder uses them."""

    def __init__(self, s3_client: Any, outputs_bucket: str) -> None:
        self._s3 = s3_client
        self.outputs_bucket = outputs_bucket

    def download_source(self, bucket: str, key: str, destination: Path, *, etag: str | None = None) -> None:
        """Copy the source to `destination`; with `etag`, only the object ingest validated (a presigned POST can be
        reused until it expires, so the key may since hold a file nobody validated)."""
        if etag is None:
            try:
                self._s3.download_file(bucket, key, str(destination))
            except ClientError as err:
                if _is_not_found(err):
                    raise SourceMissing(f"s3://{bucket}/{key} does not exist") from err
                raise
            return
        # download_file takes no IfMatch, so the one conditional GET is streamed to disk.
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=_quoted(etag))
        except ClientError as err:
            if _is_not_found(err):
                raise SourceMissing(f"s3://{bucket}/{key} does not exist") from err
            if _error_code(err) in _PRECONDITION_FAILED_CODES:
                raise SourceMissing(f"s3://{bucket}/{key} was replaced after it was validated") from err
            raise
        with destination.open("wb") as out:
            for chunk in response["Body"].iter_chunks(_CHUNK_BYTES):
                out.write(chunk)

    def find_output(self, job_id: str, rendition: str) -> StoredRendition | None:
        """The rendition as an earlier delivery of the same message uploaded it, if one did."""
        key = output_key(job_id, rendition)
        try:
            head = self._s3.head_object(Bucket=self.outputs_bucket, Key=key)
        except ClientError as err:
            if _is_not_found(err):
                return None
            if _error_code(err) in _FORBIDDEN_CODES:
                logger.warning("cannot HEAD the output to reuse it (grant s3:GetObject and s3:ListBucket); encoding")
                return None
            raise
        return stored_rendition_from_head(head, self.outputs_bucket, key, job_id, rendition)

    def upload_output(self, path: Path, job_id: str, rendition: str, media: OutputMedia) -> StoredRendition:
        key = output_key(job_id, rendition)
        extra = {"ContentType": CONTENT_TYPE, "Metadata": output_metadata(job_id, rendition, media)}
        self._s3.upload_file(str(path), self.outputs_bucket, key, ExtraArgs=extra)
        return StoredRendition(
            self.outputs_bucket, key, media.width, media.height, media.durationMs, path.stat().st_size
        )
