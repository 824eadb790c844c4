"""The job state machine, without AWS: transitions, idempotence, ordering, completion rules, the deadline sweep."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from functions.common import job_state
from functions.contracts.jobs import (
    TERMINAL_JOB_STATUSES,
    TERMINAL_RENDITION_STATUSES,
    ErrorInfo,
    JobRecord,
    JobStatus,
    ObjectLocation,
    PlaybackRecord,
    Probe,
    RenditionRecord,
    RenditionStatus,
)
from functions.contracts.playback import PackagingStatus
from tests.functions.playback_samples import package_for, sample_package

NOW = 1_795_000_000_000
HOUR_MS = 3_600_000
PROBE = {"durationMs": 10_000, "width": 1920, "height": 1080, "videoCodec": "h264", "audioCodec": "aac"}
OUTPUT_720 = {"width": 1280, "height": 720, "durationMs": 10_000, "bytes": 1_000, "bucket": "b", "key": "k/720p.mp4"}
OUTPUT_1080 = {"width": 1920, "height": 1080, "durationMs": 10_000, "bytes": 2_000, "bucket": "b", "key": "k/1080p.mp4"}

# The design's statuses, written out independently of the module so a change to its tables shows up here.
ALLOWED_JOB_MOVES = {
    ("AWAITING_UPLOAD", "VALIDATING"),
    ("AWAITING_UPLOAD", "REJECTED"),
    ("AWAITING_UPLOAD", "EXPIRED"),
    ("VALIDATING", "PROCESSING"),
    ("VALIDATING", "REJECTED"),
    ("VALIDATING", "EXPIRED"),
    ("VALIDATING", "FAILED"),
    ("PROCESSING", "COMPLETED"),
    ("PROCESSING", "FAILED"),
    # its owner deleted it while it ran
    ("AWAITING_UPLOAD", "CANCELED"),
    ("VALIDATING", "CANCELED"),
    ("PROCESSING", "CANCELED"),
    # the next attempt: retry (FAILED) and reprocess (COMPLETED)
    ("FAILED", "VALIDATING"),
    ("COMPLETED", "VALIDATING"),
}
ALLOWED_RENDITION_MOVES = {
    ("QUEUED", "PROCESSING"),
    ("QUEUED", "COMPLETED"),
    ("QUEUED", "FAILED"),
    ("QUEUED", "CANCELED"),
    ("PROCESSING", "COMPLETED"),
    ("PROCESSING", "FAILED"),
    ("PROCESSING", "CANCELED"),
}
RERUNNABLE = {"FAILED", "COMPLETED"}
JOB_RANK = {"AWAITING_UPLOAD": 0, "VALIDATING": 1, "PROCESSING": 2}
RENDITION_RANK = {"QUEUED": 0, "PROCESSING": 1}


def awaiting(job_id: str = "job-1") -> JobRecord:
    return job_state.new_job(
        job_id=job_id,
        owner_id="owner-1",
        source={"filename": "clip.mp4", "contentType": "video/mp4", "size": 1234},
        now=NOW,
        upload_deadline=NOW + HOUR_MS,
        retention_seconds=86_400,
    )


def validating(job_id: str = "job-1") -> JobRecord:
    job = job_state.begin_validation(awaiting(job_id), now=NOW + 1, deadline=NOW + 2 * HOUR_MS)
    assert job is not None
    return job


def processing(*plan: tuple[str, str], engine: str = "lambda") -> JobRecord:
    """A PROCESSING job with the given (name, status) plan; by default 720p and 1080p, both QUEUED."""
    plan = plan or (("720p", "QUEUED"), ("1080p", "QUEUED"))
    planned = [
        {
            "name": name,
            "status": status,
            "height": int(name.rstrip("p")),
            **({"reason": "NO_UPSCALE"} if status == "SKIPPED" else {}),
        }
        for name, status in plan
    ]
    job = job_state.begin_processing(
        validating(), media_type="video", engine=engine, probe=PROBE, planned=planned, now=NOW + 2
    )
    assert job is not None
    return job


def must(job: JobRecord | None) -> JobRecord:
    assert job is not None
    return job


def asking() -> JobRecord:
    """Both renditions completed: the video job waits for its playback package, which the last write asked for."""
    job = must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 10))
    return must(job_state.complete_rendition(job, name="1080p", output=OUTPUT_1080, now=NOW + 11))


def completed() -> JobRecord:
    job = asking()
    return must(job_state.complete_playback(job, package=package_for(job), now=NOW + 12))


def failed() -> JobRecord:
    return must(job_state.fail_job(processing(), code="TRANSCODE_FAILED", message="boom", now=NOW + 10))


def rejected() -> JobRecord:
    return must(job_state.reject(validating(), code="UNSUPPORTED_FORMAT", message="not media", now=NOW + 10))


def expired() -> JobRecord:
    return must(job_state.expire_if_overdue(awaiting(), now=NOW + HOUR_MS))


def every_transition(now: int) -> dict[str, Callable[[JobRecord], JobRecord | None]]:
    """Every public transition with plausible arguments, for the 'terminal jobs are immune' checks."""
    return {
        "begin_validation": partial(job_state.begin_validation, now=now, deadline=now + HOUR_MS),
        "reject": partial(job_state.reject, code="CORRUPT_MEDIA", message="x", now=now),
        "begin_processing": partial(
            job_state.begin_processing,
            media_type="video",
            engine="lambda",
            probe=PROBE,
            planned=[{"name": "720p", "status": "QUEUED"}],
            now=now,
        ),
        "start_rendition": partial(job_state.start_rendition, name="720p", now=now),
        "record_progress": partial(job_state.record_progress, name="720p", percent=50, now=now),
        "complete_rendition": partial(job_state.complete_rendition, name="720p", output=OUTPUT_720, now=now),
        "fail_rendition": partial(job_state.fail_rendition, name="720p", code="TRANSCODE_FAILED", message="x", now=now),
        "fail_job": partial(job_state.fail_job, code="TRANSCODE_FAILED", message="x", now=now),
        "expire_if_overdue": partial(job_state.expire_if_overdue, now=now + 100 * HOUR_MS),
        "complete_playback": partial(job_state.complete_playback, package=sample_package("job-1"), now=now),
        "fail_playback": partial(job_state.fail_playback, code="PACKAGING_FAILED", message="x", now=now),
    }


# --- the transition tables -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), list(itertools.product(JobStatus, JobStatus)))
def test_job_moves_exactly_as_designed(current: JobStatus, target: JobStatus) -> None:
    assert job_state.can_move_job(current, target) is ((current.value, target.value) in ALLOWED_JOB_MOVES)


@pytest.mark.parametrize(("current", "target"), list(itertools.product(RenditionStatus, RenditionStatus)))
def test_rendition_moves_exactly_as_designed(current: RenditionStatus, target: RenditionStatus) -> None:
    assert job_state.can_move_rendition(current, target) is ((current.value, target.value) in ALLOWED_RENDITION_MOVES)


def test_terminal_statuses_have_no_way_out_but_the_owners_next_attempt() -> None:
    for status in TERMINAL_JOB_STATUSES:
        exits = {target for target in JobStatus if job_state.can_move_job(status, target)}
        assert exits == ({JobStatus.VALIDATING} if status in RERUNNABLE else set())
    for status in TERMINAL_RENDITION_STATUSES:
        assert not any(job_state.can_move_rendition(status, target) for target in RenditionStatus)


def test_unknown_status_is_an_error_not_a_silent_no() -> None:
    with pytest.raises(ValueError):
        job_state.can_move_job("DONE", "FAILED")


# --- creation, validation, rejection ---------------------------------------------------------------------------------


def test_new_job_is_open_awaiting_upload_with_ttl_in_seconds() -> None:
    job = awaiting()
    assert job == JobRecord.model_validate(
        {
            "jobId": "job-1",
            "ownerId": "owner-1",
            "status": "AWAITING_UPLOAD",
            "version": 0,
            "createdAt": NOW,
            "updatedAt": NOW,
            "mediaType": None,
            "engine": None,
            "progress": 0,
            "source": {"filename": "clip.mp4", "contentType": "video/mp4", "size": 1234},
            "probe": None,
            "renditions": {},
            "error": None,
            "openJob": "OPEN",
            "deadlineAt": NOW + HOUR_MS,
            "expiresAt": NOW // 1000 + 86_400,
        }
    )


def test_begin_validation_moves_the_deadline_and_only_applies_once() -> None:
    job = validating()
    assert (job.status, job.deadlineAt, job.updatedAt) == ("VALIDATING", NOW + 2 * HOUR_MS, NOW + 1)
    assert job_state.begin_validation(job, now=NOW + 5, deadline=NOW + 9) is None


@pytest.mark.parametrize("make", [awaiting, validating])
def test_reject_records_the_reason_and_closes_the_job(make: Callable[[], JobRecord]) -> None:
    job = must(job_state.reject(make(), code="CORRUPT_MEDIA", message="bad", now=NOW + 7, probe={"durationMs": 1}))
    assert job.status == "REJECTED"
    assert job.error == ErrorInfo(code="CORRUPT_MEDIA", message="bad")
    assert job.probe == Probe.model_validate({"durationMs": 1})
    assert job.openJob is None and job.deadlineAt is None


def test_reject_does_not_apply_once_processing() -> None:
    assert job_state.reject(processing(), code="CORRUPT_MEDIA", message="bad", now=NOW) is None


@pytest.mark.parametrize("make", [processing, asking])
def test_transitions_never_mutate_their_input(make: Callable[[], JobRecord]) -> None:
    job = make()
    snapshot = job.model_copy(deep=True)
    for transition in every_transition(NOW + 50).values():
        transition(job)
    job_state.mark_packaging_requested(job, now=NOW + 50)
    assert job == snapshot


# --- processing ----------------------------------------------------------------------------------------------------


def test_begin_processing_keeps_the_plan_in_order_with_zero_progress() -> None:
    job = processing(("720p", "QUEUED"), ("1080p", "SKIPPED"))
    assert job.status == "PROCESSING"
    assert (job.mediaType, job.engine, job.probe) == ("video", "lambda", Probe.model_validate(PROBE))
    assert job.to_item()["renditions"] == {
        "720p": {"name": "720p", "status": "QUEUED", "kind": "video", "height": 720, "order": 0, "progress": 0},
        "1080p": {
            "name": "1080p",
            "status": "SKIPPED",
            "kind": "video",
            "height": 1080,
            "reason": "NO_UPSCALE",
            "order": 1,
            "progress": 0,
        },
    }
    assert job.openJob == "OPEN"


def test_begin_processing_only_from_validating() -> None:
    for job in (awaiting(), processing(), completed()):
        planned = [{"name": "720p", "status": "QUEUED"}]
        assert (
            job_state.begin_processing(job, media_type="video", engine="lambda", probe=PROBE, planned=planned, now=NOW)
            is None
        )


def test_a_plan_of_only_skipped_renditions_completes_at_once() -> None:
    job = processing(("1080p", "SKIPPED"))
    assert job.status == "COMPLETED"
    assert job.progress == 100
    assert job.openJob is None
    assert job.playback is None  # nothing was encoded, so there is nothing to package


@pytest.mark.parametrize(
    "planned",
    [
        [{"name": "720p", "status": "PROCESSING"}],
        [{"name": "720p", "status": "COMPLETED"}],
        [{"name": "720p", "status": "QUEUED"}, {"name": "720p", "status": "QUEUED"}],
    ],
)
def test_a_plan_holds_only_distinct_queued_or_skipped_renditions(planned: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError):
        job_state.begin_processing(
            validating(), media_type="video", engine="lambda", probe=PROBE, planned=planned, now=NOW
        )


def test_start_rendition_moves_queued_to_processing_once() -> None:
    job = must(job_state.start_rendition(processing(), name="720p", now=NOW + 5))
    assert job.renditions["720p"].status == "PROCESSING"
    assert job.updatedAt == NOW + 5
    assert job_state.start_rendition(job, name="720p", now=NOW + 6) is None
    assert job_state.start_rendition(job, name="4k", now=NOW + 6) is None


def test_progress_zero_starts_a_queued_rendition() -> None:
    job = must(job_state.record_progress(processing(), name="720p", percent=0, now=NOW + 5))
    assert job.renditions["720p"].status == "PROCESSING"
    assert job.renditions["720p"].progress == 0
    assert job_state.record_progress(job, name="720p", percent=0, now=NOW + 6) is None


def test_progress_is_monotonic_and_capped_below_completion() -> None:
    job = must(job_state.record_progress(processing(), name="720p", percent=40, now=NOW + 5))
    assert job_state.record_progress(job, name="720p", percent=40, now=NOW + 6) is None
    assert job_state.record_progress(job, name="720p", percent=10, now=NOW + 6) is None
    job = must(job_state.record_progress(job, name="720p", percent=150, now=NOW + 7))
    assert job.renditions["720p"].progress == 99
    assert job.progress == 49  # mean of 99 and the untouched 1080p's 0


def test_overall_progress_ignores_skipped_renditions() -> None:
    job = processing(("720p", "QUEUED"), ("1080p", "SKIPPED"))
    job = must(job_state.record_progress(job, name="720p", percent=60, now=NOW + 5))
    assert job.progress == 60


def test_progress_after_completion_is_a_no_op() -> None:
    job = must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 5))
    assert job_state.record_progress(job, name="720p", percent=50, now=NOW + 6) is None
    assert job_state.start_rendition(job, name="720p", now=NOW + 6) is None


def test_complete_rendition_records_the_output_but_not_over_state_keys() -> None:
    output = {**OUTPUT_720, "status": "QUEUED", "name": "evil", "order": 9, "progress": 3, "error": {"code": "X"}}
    job = must(job_state.complete_rendition(processing(), name="720p", output=output, now=NOW + 5))
    rendition = job.renditions["720p"]
    assert rendition == RenditionRecord.model_validate(
        {
            "name": "720p",
            "status": "COMPLETED",
            "height": 720,
            "order": 0,
            "progress": 100,
            **OUTPUT_720,
        }
    )
    assert job.status == "PROCESSING"  # 1080p is still open
    assert job.progress == 50


def test_completion_before_any_progress_is_accepted() -> None:
    job = must(job_state.complete_rendition(processing(), name="1080p", output=OUTPUT_1080, now=NOW + 5))
    assert job.renditions["1080p"].status == "COMPLETED"


def test_a_video_job_asks_for_its_package_once_every_rendition_is_terminal() -> None:
    job = must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 5))
    assert job.status == "PROCESSING" and job.openJob == "OPEN"
    assert job.playback is None  # 1080p is still open
    job = must(job_state.complete_rendition(job, name="1080p", output=OUTPUT_1080, now=NOW + 6))
    # the write that settles the last rendition asks for the package: the job stays open, just short of done
    assert job.status == "PROCESSING"
    assert job.playback == PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=NOW + 6)
    assert job.progress == 99
    assert job.error is None
    assert job.openJob == "OPEN" and job.deadlineAt == NOW + 2 * HOUR_MS
    assert job_state.awaiting_packaging_request(job)
    assert [r.name for r in job_state.packaging_sources(job)] == ["720p", "1080p"]


def test_the_package_completes_the_job_and_is_recorded_on_it() -> None:
    job = asking()
    package = package_for(job)

    done = must(job_state.complete_playback(job, package=package, now=NOW + 20))

    assert done.status == "COMPLETED"
    assert done.progress == 100
    assert done.error is None
    assert done.openJob is None and done.deadlineAt is None
    assert done.updatedAt == NOW + 20
    assert done.playback == PlaybackRecord(status=PackagingStatus.COMPLETED, requestedAt=NOW + 11, package=package)
    assert [v.rendition for v in package.variants] == ["720p", "1080p"]
    assert done.renditions == job.renditions
    # a second report of the same package (or another one) changes nothing
    assert job_state.complete_playback(done, package=package, now=NOW + 21) is None
    assert job_state.fail_playback(done, code="PACKAGING_FAILED", message="late", now=NOW + 21) is None


def test_a_package_failure_fails_the_job_with_packaging_failed_and_its_reason() -> None:
    job = asking()

    failed_job = must(
        job_state.fail_playback(job, code="PACKAGING_FAILED", message="rendition 720p cannot be remuxed", now=NOW + 20)
    )

    assert failed_job.status == "FAILED"
    assert failed_job.error == ErrorInfo(code="PACKAGING_FAILED", message="playback: rendition 720p cannot be remuxed")
    assert failed_job.playback == PlaybackRecord(
        status=PackagingStatus.FAILED,
        requestedAt=NOW + 11,
        error=ErrorInfo(code="PACKAGING_FAILED", message="rendition 720p cannot be remuxed"),
    )
    assert failed_job.progress == 100
    assert failed_job.openJob is None and failed_job.deadlineAt is None
    assert {r.status for r in failed_job.renditions.values()} == {"COMPLETED"}  # still there to download
    assert job_state.fail_playback(failed_job, code="PACKAGING_FAILED", message="again", now=NOW + 21) is None
    assert job_state.complete_playback(failed_job, package=package_for(job), now=NOW + 21) is None


@pytest.mark.parametrize(
    "make",
    [
        processing,
        lambda: must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 5)),
        validating,
    ],
    ids=["no-rendition-settled", "one-rendition-open", "validating"],
)
def test_a_packaging_report_for_a_job_not_yet_asking_changes_nothing(make: Callable[[], JobRecord]) -> None:
    job = make()
    assert job_state.complete_playback(job, package=sample_package(job.jobId), now=NOW + 20) is None
    assert job_state.fail_playback(job, code="PACKAGING_FAILED", message="x", now=NOW + 20) is None


def test_skipped_renditions_do_not_block_the_request_nor_go_into_it() -> None:
    job = processing(("720p", "QUEUED"), ("1080p", "SKIPPED"))
    job = must(job_state.complete_rendition(job, name="720p", output=OUTPUT_720, now=NOW + 5))
    assert job.status == "PROCESSING"
    assert job.playback == PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=NOW + 5)
    assert job.renditions["1080p"].status == "SKIPPED"
    assert [r.name for r in job_state.packaging_sources(job)] == ["720p"]
    done = must(job_state.complete_playback(job, package=package_for(job), now=NOW + 6))
    assert done.status == "COMPLETED"
    assert [v.rendition for v in done.playback.package.variants] == ["720p"]


@pytest.mark.parametrize(
    ("media_type", "units"),
    [
        (
            "image",
            [{"name": "thumb-webp", "kind": "image", "format": "webp"}, {"name": "metadata", "kind": "metadata"}],
        ),
        ("audio", [{"name": "audio", "kind": "audio", "format": "m4a"}, {"name": "waveform", "kind": "waveform"}]),
        ("video", [{"name": "waveform", "kind": "waveform"}]),  # a video job gets a package of video renditions only
    ],
)
def test_jobs_without_a_completed_video_rendition_complete_without_a_package(
    media_type: str, units: list[dict[str, Any]]
) -> None:
    planned = [{**unit, "status": "QUEUED"} for unit in units]
    job = must(
        job_state.begin_processing(
            validating(), media_type=media_type, engine="lambda", probe=PROBE, planned=planned, now=NOW + 2
        )
    )
    for unit in units:
        output = {"bucket": "b", "key": f"k/{unit['name']}", "bytes": 10}
        job = must(job_state.complete_rendition(job, name=unit["name"], output=output, now=NOW + 5))

    assert (job.status, job.progress, job.playback) == ("COMPLETED", 100, None)
    assert not job_state.needs_playback(job)
    assert job_state.packaging_sources(job) == []


def test_the_packaging_sources_are_the_completed_video_renditions_in_ladder_order() -> None:
    """DynamoDB does not keep a map's order: the ladder is the plan's, whatever order the record came back in."""
    job = processing(("480p", "QUEUED"), ("720p", "QUEUED"), ("1080p", "SKIPPED"))
    job = must(job_state.complete_rendition(job, name="720p", output=OUTPUT_720, now=NOW + 5))
    job.renditions = dict(reversed(list(job.renditions.items())))
    output_480 = {**OUTPUT_720, "width": 854, "height": 480, "key": "k/480p.mp4"}
    job = must(job_state.complete_rendition(job, name="480p", output=output_480, now=NOW + 6))
    assert [r.name for r in job_state.packaging_sources(job)] == ["480p", "720p"]
    assert job_state.needs_playback(job)


def test_a_failed_rendition_fails_the_job_with_its_reason_once_all_are_terminal() -> None:
    job = must(
        job_state.fail_rendition(processing(), name="1080p", code="TRANSCODE_FAILED", message="oom", now=NOW + 5)
    )
    assert job.status == "PROCESSING"
    job = must(job_state.complete_rendition(job, name="720p", output=OUTPUT_720, now=NOW + 6))
    assert job.status == "FAILED"
    assert job.playback is None  # a job that failed is not packaged, even with a rendition completed
    assert job.error == ErrorInfo(code="TRANSCODE_FAILED", message="1080p: oom")
    assert job.renditions["720p"].status == "COMPLETED"
    assert job.renditions["1080p"].error == ErrorInfo(code="TRANSCODE_FAILED", message="oom")


def test_the_reported_failure_is_the_first_in_plan_order_whatever_the_map_order() -> None:
    """DynamoDB does not keep a map's order: the reason must not depend on how the record came back."""
    job = processing()
    job = must(job_state.fail_rendition(job, name="1080p", code="OUTPUT_INVALID", message="b", now=NOW + 5))
    job.renditions = dict(reversed(list(job.renditions.items())))
    job = must(job_state.fail_rendition(job, name="720p", code="TRANSCODE_FAILED", message="a", now=NOW + 6))
    assert job.error == ErrorInfo(code="TRANSCODE_FAILED", message="720p: a")
    job.renditions = dict(reversed(list(job.renditions.items())))
    assert job.renditions_in_order()[0].name == "720p"


def test_a_completed_rendition_cannot_fail_later_nor_complete_twice() -> None:
    job = must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 5))
    assert job_state.fail_rendition(job, name="720p", code="TRANSCODE_FAILED", message="late", now=NOW + 6) is None
    other = {**OUTPUT_720, "bytes": 999_999}
    assert job_state.complete_rendition(job, name="720p", output=other, now=NOW + 6) is None


def test_unknown_renditions_are_ignored() -> None:
    job = processing()
    assert job_state.complete_rendition(job, name="4k", output=OUTPUT_720, now=NOW) is None
    assert job_state.fail_rendition(job, name="4k", code="X", message="x", now=NOW) is None
    assert job_state.record_progress(job, name="4k", percent=5, now=NOW) is None


def test_fail_job_fails_open_renditions_and_keeps_finished_ones() -> None:
    job = processing(("480p", "QUEUED"), ("720p", "QUEUED"), ("1080p", "SKIPPED"))
    job = must(job_state.complete_rendition(job, name="480p", output=OUTPUT_720, now=NOW + 5))
    job = must(job_state.fail_job(job, code="MEDIACONVERT_1040", message="cannot read", now=NOW + 6))
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="MEDIACONVERT_1040", message="cannot read")
    assert {n: r.status for n, r in job.renditions.items()} == {
        "480p": "COMPLETED",
        "720p": "FAILED",
        "1080p": "SKIPPED",
    }
    assert job.renditions["720p"].error == ErrorInfo(code="MEDIACONVERT_1040", message="cannot read")


# --- the deadline sweep --------------------------------------------------------------------------------------------


def test_an_upload_that_never_came_expires_at_its_deadline() -> None:
    job = awaiting()
    assert job_state.expire_if_overdue(job, now=NOW + HOUR_MS - 1) is None
    job = must(job_state.expire_if_overdue(job, now=NOW + HOUR_MS))
    assert job.status == "EXPIRED"
    assert job.error.code == "UPLOAD_EXPIRED"
    assert job.openJob is None and job.deadlineAt is None


@pytest.mark.parametrize("make", [validating, processing])
def test_validation_or_processing_past_the_deadline_fails(make: Callable[[], JobRecord]) -> None:
    job = make()
    assert job_state.expire_if_overdue(job, now=job.deadlineAt - 1) is None
    job = must(job_state.expire_if_overdue(job, now=job.deadlineAt))
    assert job.status == "FAILED"
    assert job.error.code == "PROCESSING_TIMEOUT"
    assert all(r.status == "FAILED" for r in job.renditions.values())
    assert job.openJob is None


def test_a_job_still_waiting_for_its_package_at_the_deadline_fails_and_so_does_its_package() -> None:
    job = asking()
    assert job_state.expire_if_overdue(job, now=job.deadlineAt - 1) is None

    timed_out = must(job_state.expire_if_overdue(job, now=job.deadlineAt))

    assert timed_out.status == "FAILED"
    assert timed_out.error == ErrorInfo(code="PROCESSING_TIMEOUT", message="the job did not finish before its deadline")
    assert timed_out.playback is not None
    assert (timed_out.playback.status, timed_out.playback.error) == (PackagingStatus.FAILED, timed_out.error)
    assert {r.status for r in timed_out.renditions.values()} == {"COMPLETED"}
    assert timed_out.openJob is None
    # the package that arrives after all changes nothing
    assert job_state.complete_playback(timed_out, package=package_for(job), now=job.deadlineAt + 1) is None


def test_a_job_without_a_deadline_is_left_alone() -> None:
    job = processing()
    job.deadlineAt = None
    assert job_state.expire_if_overdue(job, now=NOW + 1000 * HOUR_MS) is None


# --- terminal jobs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [completed, failed, rejected, expired])
def test_terminal_jobs_are_immune_to_every_transition(make: Callable[[], JobRecord]) -> None:
    job = make()
    assert job.is_terminal
    for name, transition in every_transition(NOW + 1000).items():
        assert transition(job) is None, name


# --- bookkeeping and composition -----------------------------------------------------------------------------------


def test_the_packaging_request_is_marked_published_once_while_the_job_asks() -> None:
    one_open = must(job_state.complete_rendition(processing(), name="720p", output=OUTPUT_720, now=NOW + 10))
    job = must(job_state.complete_rendition(one_open, name="1080p", output=OUTPUT_1080, now=NOW + 11))
    assert job_state.packaging_requested(one_open, job)  # the write that settled the last rendition asked

    published = must(job_state.mark_packaging_requested(job, now=NOW + 99))

    assert published.playback == PlaybackRecord(
        status=PackagingStatus.QUEUED, requestedAt=NOW + 11, requestPublishedAt=NOW + 99
    )
    assert published.model_dump(exclude={"playback"}) == job.model_dump(exclude={"playback"})  # updatedAt too
    assert not job_state.awaiting_packaging_request(published)
    assert job_state.mark_packaging_requested(published, now=NOW + 100) is None
    for other in (processing(), completed(), failed()):
        assert job_state.mark_packaging_requested(other, now=NOW + 100) is None
        assert not job_state.awaiting_packaging_request(other)
    # only the write that asked is the fan-in; the bookkeeping after it is not
    assert not job_state.packaging_requested(job, published)
    assert not job_state.packaging_requested(job, completed())


def test_a_job_of_an_earlier_release_keeps_its_mediaconvert_hls_record() -> None:
    item = {**completed().to_item(), "hls": {"bucket": "b", "key": "outputs/j/hls/index.m3u8"}}
    del item["playback"]
    job = JobRecord.from_item(item)
    assert job.hls == ObjectLocation(bucket="b", key="outputs/j/hls/index.m3u8")
    assert job.playback is None
    assert JobRecord.from_item(job.to_item()) == job


def test_outcome_is_marked_announced_only_on_terminal_jobs_and_only_once() -> None:
    assert job_state.mark_outcome_announced(processing(), now=NOW) is None
    job = must(job_state.mark_outcome_announced(completed(), now=NOW + 99))
    assert job.outcomeAnnouncedAt == NOW + 99
    assert job.status == "COMPLETED"
    assert job.updatedAt == completed().updatedAt
    assert job_state.mark_outcome_announced(job, now=NOW + 100) is None


def webhook_failure(endpoint_id: str = "ep_1", **changes: Any) -> job_state.WebhookFailure:
    fields: dict[str, Any] = {
        "owner_id": "owner-1",
        "endpoint_id": endpoint_id,
        "event_type": "job.completed",
        "webhook_id": "msg_job-1_completed",
        "attempts": 8,
        "status_code": 500,
        "error": "HTTP 500",
    }
    return job_state.WebhookFailure(**(fields | changes))


@pytest.mark.parametrize("make", [completed, failed, rejected, expired])
def test_a_dead_lettered_webhook_is_noted_on_a_terminal_job_without_changing_its_status(
    make: Callable[[], JobRecord],
) -> None:
    job = make()
    noted = must(job_state.note_webhook_failure(job, webhook_failure(), now=NOW + 500))
    assert noted.to_item()["webhookFailures"] == {
        "ep_1#job.completed": {
            "endpointId": "ep_1",
            "eventType": "job.completed",
            "webhookId": "msg_job-1_completed",
            "attempts": 8,
            "statusCode": 500,
            "error": "HTTP 500",
            "failedAt": NOW + 500,
        }
    }
    assert noted.updatedAt == NOW + 500
    assert noted.model_dump(exclude={"webhookFailures", "updatedAt"}) == job.model_dump(
        exclude={"webhookFailures", "updatedAt"}
    )
    assert job.webhookFailures is None  # the input is not changed in place


def test_a_webhook_failure_is_noted_once_per_endpoint_and_event() -> None:
    job = must(job_state.note_webhook_failure(completed(), webhook_failure(), now=NOW + 500))
    # A duplicated or redelivered final task, even one that got further, is a no-op.
    assert job_state.note_webhook_failure(job, webhook_failure(), now=NOW + 600) is None
    assert job_state.note_webhook_failure(job, webhook_failure(attempts=9, error="HTTP 502"), now=NOW + 700) is None
    # Another endpoint, or another event of the same endpoint, is an entry of its own.
    job = must(job_state.note_webhook_failure(job, webhook_failure("ep_2", status_code=None, error="x"), now=NOW + 800))
    other_event = webhook_failure(event_type="job.failed", webhook_id="msg_job-1_failed")
    job = must(job_state.note_webhook_failure(job, other_event, now=NOW + 900))
    assert sorted(job.webhookFailures) == ["ep_1#job.completed", "ep_1#job.failed", "ep_2#job.completed"]
    assert job.webhookFailures["ep_2#job.completed"].statusCode is None
    # A different webhook-id under the same key replaces the entry.
    replaced = must(job_state.note_webhook_failure(job, webhook_failure(webhook_id="msg_other"), now=NOW + 950))
    assert replaced.webhookFailures["ep_1#job.completed"].webhookId == "msg_other"
    assert len(replaced.webhookFailures) == 3


def test_a_webhook_failure_of_another_owners_endpoint_never_touches_the_job() -> None:
    assert job_state.note_webhook_failure(completed(), webhook_failure(owner_id="owner-2"), now=NOW + 500) is None


def test_webhook_failures_are_bounded_and_the_oldest_make_way() -> None:
    job = completed()
    limit = job_state.MAX_WEBHOOK_FAILURES
    for index in range(limit + 3):
        job = must(job_state.note_webhook_failure(job, webhook_failure(f"ep_{index:02d}"), now=NOW + index))
        assert len(job.webhookFailures) == min(index + 1, limit)
    kept = sorted(entry.endpointId for entry in job.webhookFailures.values())
    assert kept == [f"ep_{index:02d}" for index in range(3, limit + 3)]


def test_a_long_webhook_error_is_cut_short() -> None:
    job = must(job_state.note_webhook_failure(completed(), webhook_failure(error="e" * 5000), now=NOW + 500))
    assert job.webhookFailures["ep_1#job.completed"].error == "e" * job_state.MAX_WEBHOOK_ERROR_CHARS


def test_apply_in_order_chains_and_reports_no_op_as_none() -> None:
    job = processing()
    steps = [
        partial(job_state.start_rendition, name="720p", now=NOW + 1),
        partial(job_state.start_rendition, name="720p", now=NOW + 2),  # no-op: already started
        partial(job_state.complete_rendition, name="1080p", output=OUTPUT_1080, now=NOW + 3),
    ]
    result = must(job_state.apply_in_order(job, steps))
    assert {n: r.status for n, r in result.renditions.items()} == {"720p": "PROCESSING", "1080p": "COMPLETED"}
    assert job_state.apply_in_order(result, steps) is None
    assert job_state.apply_in_order(job, []) is None


def test_open_rendition_names_are_in_plan_order() -> None:
    job = processing(("480p", "QUEUED"), ("720p", "SKIPPED"), ("1080p", "QUEUED"))
    job.renditions = dict(reversed(list(job.renditions.items())))
    assert job_state.open_rendition_names(job) == ["480p", "1080p"]


# --- duplicates, reordering, forward-only --------------------------------------------------------------------------

EVENTS: dict[str, Callable[[JobRecord], JobRecord | None]] = {
    "start 720p": partial(job_state.start_rendition, name="720p", now=NOW + 10),
    "progress 720p 0": partial(job_state.record_progress, name="720p", percent=0, now=NOW + 10),
    "progress 720p 30": partial(job_state.record_progress, name="720p", percent=30, now=NOW + 10),
    "progress 1080p 60": partial(job_state.record_progress, name="1080p", percent=60, now=NOW + 10),
    "complete 720p": partial(job_state.complete_rendition, name="720p", output=OUTPUT_720, now=NOW + 10),
    "complete 1080p": partial(job_state.complete_rendition, name="1080p", output=OUTPUT_1080, now=NOW + 10),
    "fail 1080p": partial(job_state.fail_rendition, name="1080p", code="TRANSCODE_FAILED", message="x", now=NOW + 10),
    "expire": partial(job_state.expire_if_overdue, now=NOW + 100 * HOUR_MS),
}


PLAYBACK_EVENTS: dict[str, Callable[[JobRecord], JobRecord | None]] = {
    "package completed": partial(
        job_state.complete_playback, package=sample_package("job-1", bucket="b"), now=NOW + 20
    ),
    "package failed": partial(job_state.fail_playback, code="PACKAGING_FAILED", message="no", now=NOW + 20),
}


def apply_all(job: JobRecord, names: list[str] | tuple[str, ...]) -> JobRecord:
    for name in names:
        job = {**EVENTS, **PLAYBACK_EVENTS}[name](job) or job
    return job


@pytest.mark.parametrize("name", sorted(EVENTS))
def test_applying_an_event_twice_equals_applying_it_once(name: str) -> None:
    assert EVENTS[name](processing()) is not None, "every event applies to a fresh job"
    starts = [processing(), apply_all(processing(), ["progress 720p 30"]), apply_all(processing(), ["complete 720p"])]
    for start in starts:
        once = apply_all(start, [name])
        assert EVENTS[name](once) is None, name
        assert apply_all(start, [name, name]) == once


@pytest.mark.parametrize(
    "names",
    [
        ("progress 720p 0", "progress 720p 30", "progress 1080p 60", "complete 720p", "complete 1080p"),
        ("start 720p", "progress 720p 30", "complete 720p", "fail 1080p", "progress 1080p 60"),
    ],
    ids=["asks-for-its-package", "fails"],
)
def test_every_order_of_the_same_events_ends_in_the_same_job(names: tuple[str, ...]) -> None:
    finals = [apply_all(processing(), order) for order in itertools.permutations(names)]
    assert all(final == finals[0] for final in finals)
    if "fail 1080p" in names:
        assert finals[0].status == "FAILED"
        assert finals[0].error == ErrorInfo(code="TRANSCODE_FAILED", message="1080p: x")
        assert finals[0].playback is None
    else:
        assert finals[0].status == "PROCESSING"
        assert finals[0].playback == PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=NOW + 10)
        assert finals[0].renditions["720p"].width == 1280
        assert finals[0].renditions["1080p"].bytes == 2_000


@pytest.mark.parametrize("name", sorted(PLAYBACK_EVENTS))
def test_a_packaging_report_applies_once_and_only_to_a_job_asking(name: str) -> None:
    job = asking()
    once = must(PLAYBACK_EVENTS[name](job))
    assert once.is_terminal
    assert PLAYBACK_EVENTS[name](once) is None
    for other in sorted(set(PLAYBACK_EVENTS) - {name}):
        assert PLAYBACK_EVENTS[other](once) is None, f"{other} after {name}"
    assert apply_all(processing(), [name]) == processing()  # nothing asked for a package yet


def test_the_first_packaging_report_wins_and_the_job_ends_once() -> None:
    completed_first = apply_all(asking(), ["package completed", "package failed", "package completed"])
    failed_first = apply_all(asking(), ["package failed", "package completed", "package failed"])
    assert (completed_first.status, completed_first.playback.status) == ("COMPLETED", "COMPLETED")
    assert (failed_first.status, failed_first.playback.status) == ("FAILED", "FAILED")


def test_completed_before_progress_leaves_the_rendition_completed() -> None:
    job = apply_all(processing(), ["complete 720p", "progress 720p 30", "start 720p", "progress 720p 0"])
    assert job.renditions["720p"].status == "COMPLETED"
    assert job.renditions["720p"].progress == 100


@pytest.mark.parametrize("seed", range(25))
def test_random_event_streams_only_ever_move_forward(seed: int) -> None:
    rng = random.Random(seed)
    stream = {**EVENTS, **PLAYBACK_EVENTS}
    job = processing()
    for _ in range(40):
        name = rng.choice(sorted(stream))
        changed = stream[name](job)
        if changed is None:
            continue
        if job.status in JOB_RANK and changed.status in JOB_RANK:
            assert JOB_RANK[changed.status] >= JOB_RANK[job.status]
        assert not job.is_terminal, f"{name} changed a terminal job"
        if job.playback is not None:  # asked once: the request is never withdrawn nor asked again
            assert changed.playback is not None
            assert changed.playback.requestedAt == job.playback.requestedAt
            assert job.playback.status == PackagingStatus.QUEUED, f"{name} changed a settled package"
        for rendition_name, before in job.renditions.items():
            after = changed.renditions[rendition_name]
            if before.status in TERMINAL_RENDITION_STATUSES:
                assert after == before, f"{name} changed terminal rendition {rendition_name}"
            elif after.status in RENDITION_RANK:
                assert RENDITION_RANK[after.status] >= RENDITION_RANK[before.status]
            assert after.progress >= before.progress
        job = changed
