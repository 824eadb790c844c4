"""CancelJob, as submit (a job created for a job canceled meanwhile) and the tracker (a deleted job's running
MediaConvert job) both call it: a job that already ended, or that MediaConvert does not know, is left as it is."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from functions.common.observability import logger

# What CancelJob answers for a job with nothing left to stop: it finished, or is unknown.
NOTHING_TO_CANCEL = frozenset({"ConflictException", "NotFoundException"})


def cancel_mediaconvert_job(client: Any, mediaconvert_job_id: str) -> None:
    """`CancelJob(Id=...)`; any error but "nothing to cancel" raises (for the caller's retry)."""
    try:
        client.cancel_job(Id=mediaconvert_job_id)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        if code not in NOTHING_TO_CANCEL:
            raise
        logger.info("nothing to cancel", extra={"mediaConvertJobId": mediaconvert_job_id, "code": code})
