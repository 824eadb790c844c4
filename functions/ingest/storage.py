"""S3 adapter for the uploads bucket: read the object's size first, then copy exactly that object to local disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from functions.ingest.rejections import RejectionCode, UploadRejected

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredObject:
    size: int
    etag: str
    """Quoted, as S3 returns it and as `If-Match` wants it."""


class SourceStore:
    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str, *, etag: str | None) -> StoredObject:
        """Size and ETag of the upload. With `etag` (from the notification), only that version of the object.

        A missing object, or one replaced since the notification, rejects with UPLOAD_MISSING: a client that
        re-posts the upload form gets its first upload rejected rather than a different file validated.
        """
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key, **_if_match(etag))
        except ClientError as err:
            rejection = _as_rejection(err)
            if rejection is None:
                raise
            raise rejection from err
        return StoredObject(size=int(head["ContentLength"]), etag=str(head["ETag"]))

    def download(self, bucket: str, key: str, stored: StoredObject, destination: Path, *, max_bytes: int) -> int:
        """Stream the object (the same version HEAD saw) to `destination`; never writes more than `max_bytes`."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=stored.etag)
        except ClientError as err:
            rejection = _as_rejection(err)
            if rejection is None:
                raise
            raise rejection from err
        written = 0
        with destination.open("wb") as out:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise UploadRejected(
                        RejectionCode.UPLOAD_TOO_LARGE, f"the uploaded file is over the limit of {max_bytes} bytes"
                    )
                out.write(chunk)
        return written


def _if_match(etag: str | None) -> dict[str, str]:
    if not etag:
        return {}
    return {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'}


def _as_rejection(err: ClientError) -> UploadRejected | None:
    """404 and 412 are verdicts on the upload; anything else (None) is the caller's to retry."""
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = err.response.get("Error", {}).get("Code")
    if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
        return UploadRejected(RejectionCode.UPLOAD_MISSING, "the upload is no longer there; upload the file again")
    if status == 412 or code in ("412", "PreconditionFailed"):
        return UploadRejected(
            RejectionCode.UPLOAD_MISSING, "the upload was replaced while it was being checked; create a new upload"
        )
    return None
