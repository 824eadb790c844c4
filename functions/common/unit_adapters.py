"""The adapters the unit functions (transcode, audio, images) share: S3 and the event bus, their errors mapped to
`unit_worker`'s.

S3: only "the object is not there" (SourceMissing, or None from `head_output`) and, for the source, "it is no longer
the object ingest validated" (412 on the IfMatch GET: SourceReplaced) are turned into a domain answer; any other
ClientError is transient or a permissions defect and propagates, so SQS delivers the message again. The domain
errors' messages are the client's (`functions/contracts/errors.py`); the bucket, key and S3's own answer are logged.

A function's role needs s3:GetObject on `uploads/*` and s3:PutObject on `outputs/*`; for the redelivery shortcut
also s3:GetObject on `outputs/*` (HEAD is authorised by GetObject) and s3:ListBucket on the outputs bucket (without
it, HEAD of a key that does not exist answers 403, which is read as "nothing to reuse": correct, only slower).

Every output carries user metadata (x-amz-meta-*) naming the job, the unit and the attempt that made it (`attempt`
only above 1: an output without one is the first attempt's), and the facts its Completed event reports, so a
redelivered message can announce it again from a HEAD. A later attempt (a reprocess may have changed the ladder)
never reuses an earlier attempt's output.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.event_bus import EventPublisher, EventPublishFailed
from functions.common.observability import logger
from functions.common.unit_worker import EventNotPublished, SourceMissing, SourceReplaced
from functions.contracts.errors import SOURCE_MISSING_MESSAGE, SOURCE_REPLACED_MESSAGE
from functions.contracts.events import DetailType, EventDetail
from functions.contracts.fanout import SourceObject

NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
FORBIDDEN_CODES = frozenset({"403", "AccessDenied", "Forbidden"})
PRECONDITION_FAILED_CODES = frozenset({"412", "PreconditionFailed"})
CHUNK_BYTES = 1024 * 1024
PART_BYTES = 16 * 1024 * 1024
"""A ranged GET of a large source: big enough that a request's latency is small beside its transfer."""
DOWNLOAD_THREADS = 8
"""Ranged GETs in flight at once: one S3 connection delivers far less than a function's network."""


# --- S3 -----------------------------------------------------------------------------------------------------------


def error_code(err: ClientError) -> str | None:
    return err.response.get("Error", {}).get("Code")


def quoted(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


class IncompleteDownload(RuntimeError):
    """A ranged GET delivered fewer bytes than it asked for: transient, raised so SQS delivers the message again."""


def byte_parts(start: int, end: int, part_bytes: int) -> list[tuple[int, int]]:
    """`[start, end)` as consecutive `[first, end)` pieces of at most `part_bytes`."""
    return [(first, min(first + part_bytes, end)) for first in range(start, end, part_bytes)]


def write_body(fd: int, body: Any, start: int, end: int) -> int:
    """Copy `end - start` bytes of a GET's body to the file at `start` (pwrite: parts land concurrently in one
    file); the body is closed, so a whole-object GET that only serves its first part stops there."""
    offset = start
    try:
        while offset < end:
            chunk = body.read(min(CHUNK_BYTES, end - offset))
            if not chunk:
                raise IncompleteDownload(f"the source ended at byte {offset}, expected {end}")
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
    finally:
        body.close()
    return end - start


def run_parallel(tasks: list[Callable[[], int]], threads: int) -> int:
    """Run the tasks on `threads` threads; the sum of what they return, or the first error once the running ones
    end (those not started are dropped)."""
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(tasks)))) as pool:
        futures = [pool.submit(task) for task in tasks]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        return sum(future.result() for future in futures if future in done)


def source_unavailable(err: ClientError, source: SourceObject) -> SourceMissing | None:
    """The domain error a failed read of the source stands for (logged with where it was looked for), or None when
    it is not a verdict on the source (the caller re-raises)."""
    code = error_code(err)
    if code in PRECONDITION_FAILED_CODES:
        unavailable: SourceMissing = SourceReplaced(SOURCE_REPLACED_MESSAGE)
    elif code in NOT_FOUND_CODES:
        unavailable = SourceMissing(SOURCE_MISSING_MESSAGE)
    else:
        return None
    logger.warning(
        "the source cannot be read",
        extra={"reason": str(unavailable), "bucket": source.bucket, "key": source.key, "etag": source.etag, "s3": code},
    )
    return unavailable


def object_metadata(
    job_id: str,
    unit: str,
    *,
    attempt: int,
    plan: str | None = None,
    width: int | None = None,
    height: int | None = None,
    duration_ms: int | None = None,
) -> dict[str, str]:
    """The user metadata stored with an output: the job, unit and attempt that made it, then the facts that are
    known. A first attempt is not named, so its outputs read exactly as they did before attempts existed."""
    metadata = {"job-id": job_id, "rendition": unit}
    if attempt != 1:
        metadata["attempt"] = str(attempt)
    if plan is not None:
        metadata["plan"] = plan
    for name, value in (("width", width), ("height", height), ("duration-ms", duration_ms)):
        if value is not None:
            metadata[name] = str(value)
    return metadata


def made_by(metadata: dict[str, str], job_id: str, unit: str, attempt: int) -> bool:
    """Whether an output's metadata says this job's unit made it, in this attempt (no `attempt`: the first)."""
    return (
        metadata.get("job-id") == job_id
        and metadata.get("rendition") == unit
        and metadata.get("attempt", "1") == str(attempt)
    )


def pinned_source(source: SourceObject, response: dict[str, Any]) -> SourceObject:
    """The source as `response` read it: with the ETag ingest validated or, without one, the one S3 answered, so
    every later ranged GET reads that same object."""
    etag = source.etag or response.get("ETag")
    return source.model_copy(update={"etag": etag}) if etag else source


class S3UnitStore:
    """The uploads and outputs buckets, on S3, as every unit function reads and writes them."""

    def __init__(
        self,
        s3_client: Any,
        outputs_bucket: str,
        *,
        part_bytes: int = PART_BYTES,
        download_threads: int = DOWNLOAD_THREADS,
    ) -> None:
        self._s3 = s3_client
        self.outputs_bucket = outputs_bucket
        self._part_bytes = part_bytes
        self._download_threads = download_threads

    def get_source(self, source: SourceObject) -> dict[str, Any]:
        """The GET of the source; with its `etag`, only the object ingest validated (a presigned POST can be reused
        until it expires, so the key may since hold a file nobody validated)."""
        return self._get_source(source)

    def get_source_range(self, source: SourceObject, start: int, end: int) -> dict[str, Any]:
        """The GET of bytes `[start, end)` of the source, only while it has `source.etag` (see `get_source`)."""
        return self._get_source(source, Range=f"bytes={start}-{end - 1}")

    def _get_source(self, source: SourceObject, **options: str) -> dict[str, Any]:
        if source.etag:
            options["IfMatch"] = quoted(source.etag)
        try:
            return self._s3.get_object(Bucket=source.bucket, Key=source.key, **options)
        except ClientError as err:
            unavailable = source_unavailable(err, source)
            if unavailable is None:
                raise
            raise unavailable from err

    def download_source(self, source: SourceObject, destination: Path) -> None:
        """Copy the source to `destination` (see `get_source`). One connection is enough for a small source; a larger
        one comes in `part_bytes` parts on parallel ranged GETs (one S3 connection carries far less than a function's
        network), the first from the whole-object GET, the others each only of the object that GET read (IfMatch its
        ETag: the parts cannot mix two uploads), each written at its offset."""
        response = self.get_source(source)
        size = int(response.get("ContentLength") or 0)
        with destination.open("wb") as out:
            if size <= self._part_bytes:
                for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                    out.write(chunk)
                return
            out.truncate(size)
            pinned = pinned_source(source, response)
            first, *rest = byte_parts(0, size, self._part_bytes)
            tasks = [lambda: write_body(out.fileno(), response["Body"], *first)]
            tasks += [self._part_task(pinned, out, *part) for part in rest]
            try:
                run_parallel(tasks, self._download_threads)
            finally:
                response["Body"].close()

    def download_source_ranges(self, source: SourceObject, out: BinaryIO, spans: list[tuple[int, int]]) -> int:
        """Write the `[start, end)` spans of the source into `out` at their offsets, in `part_bytes` ranged GETs on
        parallel connections; the bytes fetched."""
        parts = [part for start, end in spans for part in byte_parts(start, end, self._part_bytes)]
        return run_parallel([self._part_task(source, out, *part) for part in parts], self._download_threads)

    def _part_task(self, source: SourceObject, out: BinaryIO, start: int, end: int) -> Callable[[], int]:
        def fetch() -> int:
            return write_body(out.fileno(), self.get_source_range(source, start, end)["Body"], start, end)

        return fetch

    def head_output(self, key: str) -> dict[str, Any] | None:
        """The HEAD of an output, or None when there is none to reuse (or the role may not tell)."""
        try:
            return self._s3.head_object(Bucket=self.outputs_bucket, Key=key)
        except ClientError as err:
            if error_code(err) in NOT_FOUND_CODES:
                return None
            if error_code(err) in FORBIDDEN_CODES:
                logger.warning("cannot HEAD the output to reuse it (grant s3:GetObject and s3:ListBucket); making it")
                return None
            raise

    def upload_file(self, path: Path, key: str, *, content_type: str, metadata: dict[str, str]) -> int:
        """Upload a file as an output; its size in bytes."""
        extra = {"ContentType": content_type, "Metadata": metadata}
        self._s3.upload_file(str(path), self.outputs_bucket, key, ExtraArgs=extra)
        return path.stat().st_size


# --- the event bus ------------------------------------------------------------------------------------------------


class BusEvents:
    """The pipeline's EventPublisher; a refused put (failed entry, ClientError, no connection) is EventNotPublished."""

    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    def publish(self, detail_type: DetailType, detail: EventDetail) -> None:
        try:
            self._publisher.publish(detail_type, detail)
        except (ClientError, BotoCoreError, EventPublishFailed) as err:
            raise EventNotPublished(str(err)) from err
