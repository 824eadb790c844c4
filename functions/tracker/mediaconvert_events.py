"""MediaConvert "Job State Change" events mapped to state-machine calls.

One MediaConvert job produces every QUEUED rendition of a pipeline job (FILE_GROUP outputs named
`outputs/{jobId}/{rendition}.mp4`, plus an HLS package). Deliveries are at least once and in any order,
so every mapping is a transition the state machine may turn down: a PROGRESSING after COMPLETE, a
second COMPLETE, a STATUS_UPDATE for a finished job all come out as no-ops. Pure: no I/O here.
"""

from __future__ import annotations

import dataclasses
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from functions.common import job_state
from functions.common.job_state import Job, JobStatus, Transition

SOURCE = "aws.mediaconvert"
DETAIL_TYPE = "MediaConvert Job State Change"
ENGINE = "mediaconvert"
OUTPUT_EXTENSION = ".mp4"
OUTPUT_CONTENT_TYPE = "video/mp4"
OUTPUT_MISSING = "MEDIACONVERT_OUTPUT_MISSING"
CANCELED = "MEDIACONVERT_CANCELED"


class MediaConvertStatus(StrEnum):
    SUBMITTED = "SUBMITTED"
    PROGRESSING = "PROGRESSING"
    INPUT_INFORMATION = "INPUT_INFORMATION"
    STATUS_UPDATE = "STATUS_UPDATE"
    COMPLETE = "COMPLETE"
    CANCELED = "CANCELED"
    ERROR = "ERROR"
    NEW_WARNING = "NEW_WARNING"
    QUEUE_HOP = "QUEUE_HOP"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class UserMetadata(_Model):
    job_id: str | None = None
    pipeline: str | None = None


class VideoDetails(_Model):
    width_in_px: int | None = None
    height_in_px: int | None = None


class OutputDetail(_Model):
    output_file_paths: list[str] = Field(default_factory=list)
    duration_in_ms: int | None = None
    video_details: VideoDetails | None = None


class OutputGroupDetail(_Model):
    type: str
    output_details: list[OutputDetail] = Field(default_factory=list)
    playlist_file_paths: list[str] = Field(default_factory=list)


class JobProgress(_Model):
    job_percent_complete: int | None = None


class JobStateChange(_Model):
    """The `detail` of a MediaConvert Job State Change event (the fields the tracker reads)."""

    status: str
    mediaconvert_job_id: str | None = Field(default=None, alias="jobId")
    user_metadata: UserMetadata = Field(default_factory=UserMetadata)
    job_progress: JobProgress | None = None
    output_group_details: list[OutputGroupDetail] = Field(default_factory=list)
    error_code: int | str | None = None
    error_message: str | None = None

    @property
    def job_id(self) -> str | None:
        """The pipeline's job, as the submit function put it in userMetadata (not MediaConvert's own id)."""
        return self.user_metadata.job_id or None


def parse_job_state_change(detail: dict[str, Any]) -> JobStateChange:
    """Raises pydantic.ValidationError when the detail does not have a MediaConvert shape."""
    return JobStateChange.model_validate(detail)


def belongs_to(change: JobStateChange, stack_name: str) -> bool:
    """Defence in depth behind the rule's filter: only this stack's MediaConvert jobs move its jobs."""
    return change.user_metadata.pipeline == stack_name


def s3_location(uri: str) -> tuple[str, str] | None:
    """`s3://bucket/key` as (bucket, key); None for anything else."""
    parts = urlsplit(uri)
    key = unquote(parts.path.lstrip("/"))
    if parts.scheme != "s3" or not parts.netloc or not key:
        return None
    return parts.netloc, key


@dataclass(frozen=True)
class RenditionOutput:
    """One FILE_GROUP output, named after the rendition it is (`{rendition}.mp4`)."""

    rendition: str
    bucket: str
    key: str
    width: int | None
    height: int | None
    duration_ms: int | None
    bytes: int | None = None

    def as_record(self) -> dict[str, Any]:
        """The rendition fields the job record keeps (docs/CONTRACTS.md, `renditions`)."""
        return {
            "width": self.width,
            "height": self.height,
            "durationMs": self.duration_ms,
            "bytes": self.bytes,
            "contentType": OUTPUT_CONTENT_TYPE,
            "bucket": self.bucket,
            "key": self.key,
            "engine": ENGINE,
        }


def rendition_outputs(change: JobStateChange) -> list[RenditionOutput]:
    """The FILE_GROUP outputs of a COMPLETE event; the first one wins if a rendition name appears twice."""
    outputs: dict[str, RenditionOutput] = {}
    for group in change.output_group_details:
        if group.type != "FILE_GROUP":
            continue
        for detail in group.output_details:
            for path in detail.output_file_paths:
                location = s3_location(path)
                if location is None:
                    continue
                stem, extension = posixpath.splitext(posixpath.basename(location[1]))
                if extension != OUTPUT_EXTENSION or not stem or stem in outputs:
                    continue
                video = detail.video_details or VideoDetails()
                outputs[stem] = RenditionOutput(
                    rendition=stem,
                    bucket=location[0],
                    key=location[1],
                    width=video.width_in_px,
                    height=video.height_in_px,
                    duration_ms=detail.duration_in_ms,
                )
    return list(outputs.values())


def hls_master_playlist(change: JobStateChange) -> tuple[str, str] | None:
    """(bucket, key) of the HLS_GROUP's master playlist, if the job wrote one."""
    for group in change.output_group_details:
        if group.type == "HLS_GROUP":
            for path in group.playlist_file_paths:
                location = s3_location(path)
                if location is not None:
                    return location
    return None


def with_sizes(outputs: list[RenditionOutput], sizes: Mapping[tuple[str, str], int]) -> list[RenditionOutput]:
    """Outputs with `bytes` filled from HEAD results keyed by (bucket, key); unknown sizes stay None."""
    return [dataclasses.replace(o, bytes=sizes.get((o.bucket, o.key), o.bytes)) for o in outputs]


def _is_mediaconvert_job(job: Job) -> bool:
    return job["status"] == JobStatus.PROCESSING and job.get("engine") == ENGINE


def start_all(job: Job, *, now: int) -> Job | None:
    """PROGRESSING: MediaConvert started the job, so every QUEUED rendition is being worked on."""
    if not _is_mediaconvert_job(job):
        return None
    queued = [r["name"] for r in job_state.renditions_in_order(job) if r["status"] == job_state.RenditionStatus.QUEUED]
    return job_state.apply_in_order(job, [partial(job_state.start_rendition, name=n, now=now) for n in queued])


def progress_all(job: Job, *, percent: int, now: int) -> Job | None:
    """STATUS_UPDATE: one job makes every open rendition, so each gets the job's percentage."""
    if not _is_mediaconvert_job(job):
        return None
    names = job_state.open_rendition_names(job)
    return job_state.apply_in_order(
        job, [partial(job_state.record_progress, name=n, percent=percent, now=now) for n in names]
    )


def complete_all(job: Job, *, outputs: list[RenditionOutput], hls: tuple[str, str] | None, now: int) -> Job | None:
    """COMPLETE: record the HLS package, complete each rendition found in the outputs, fail the ones missing.

    The HLS record goes first: once the last rendition completes the job is terminal and takes no more writes.
    """
    if not _is_mediaconvert_job(job):
        return None
    produced = {o.rendition: o for o in outputs}
    steps: list[Transition] = []
    if hls is not None:
        steps.append(partial(job_state.record_hls_output, bucket=hls[0], key=hls[1], now=now))
    for name in job_state.open_rendition_names(job):
        output = produced.get(name)
        if output is not None:
            steps.append(partial(job_state.complete_rendition, name=name, output=output.as_record(), now=now))
        else:
            message = f"MediaConvert completed without an output named {name}{OUTPUT_EXTENSION}"
            steps.append(partial(job_state.fail_rendition, name=name, code=OUTPUT_MISSING, message=message, now=now))
    return job_state.apply_in_order(job, steps)


def fail_all(job: Job, *, code: str, message: str, now: int) -> Job | None:
    """ERROR / CANCELED: one MediaConvert job made every open rendition, so the job fails with its reason."""
    if not _is_mediaconvert_job(job):
        return None
    return job_state.fail_job(job, code=code, message=message, now=now)


def error_code(change: JobStateChange) -> str:
    return f"MEDIACONVERT_{change.error_code}" if change.error_code not in (None, "") else "MEDIACONVERT_ERROR"


def mediaconvert_transition(
    change: JobStateChange, *, now: int, sizes: Mapping[tuple[str, str], int]
) -> Transition | None:
    """The transition a state change stands for; None when the status changes nothing (INPUT_INFORMATION, unknown).

    `sizes` are the byte counts the adapter read back for the outputs (see `rendition_outputs`). Once a job has
    its MediaConvert job recorded, changes of any other MediaConvert job (a duplicate submission) are ignored.
    """
    transition = _transition_for_status(change, now=now, sizes=sizes)
    if transition is None:
        return None
    return partial(_from_recorded_job, transition=transition, source_job_id=change.mediaconvert_job_id)


def _from_recorded_job(job: Job, *, transition: Transition, source_job_id: str | None) -> Job | None:
    recorded = job_state.mediaconvert_job_id(job)
    if recorded is not None and source_job_id is not None and recorded != source_job_id:
        return None
    return transition(job)


def _transition_for_status(
    change: JobStateChange, *, now: int, sizes: Mapping[tuple[str, str], int]
) -> Transition | None:
    status = change.status
    if status == MediaConvertStatus.PROGRESSING:
        return partial(start_all, now=now)
    if status == MediaConvertStatus.STATUS_UPDATE:
        percent = change.job_progress.job_percent_complete if change.job_progress else None
        return partial(progress_all, percent=percent, now=now) if percent is not None else None
    if status == MediaConvertStatus.COMPLETE:
        outputs = with_sizes(rendition_outputs(change), sizes)
        return partial(complete_all, outputs=outputs, hls=hls_master_playlist(change), now=now)
    if status == MediaConvertStatus.ERROR:
        message = change.error_message or "MediaConvert reported an error without a message"
        return partial(fail_all, code=error_code(change), message=message, now=now)
    if status == MediaConvertStatus.CANCELED:
        return partial(fail_all, code=CANCELED, message="the MediaConvert job was canceled", now=now)
    return None
