"""The tracker's pure mapping from events to state-machine calls, without AWS: fixtures in, jobs out."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import ValidationError

from functions.common import job_state
from functions.contracts.events import (
    PackagingCompleted,
    PackagingFailed,
    PackagingRequested,
    RenditionCompleted,
    RenditionFailed,
    RenditionProgress,
    parse_packaging_event,
    parse_rendition_event,
)
from functions.contracts.jobs import ErrorInfo, JobRecord, PlaybackRecord, RenditionRecord
from functions.contracts.playback import PackagingSource, PackagingStatus
from functions.tracker import service as mc
from tests.functions.playback_samples import complete_playback, package_for, sample_package
from tests.functions.tracker.conftest import (
    NOW,
    PIPELINE_FIXTURE_JOB_ID,
    job_in,
    mediaconvert_change,
    mediaconvert_detail,
    packaging_completed,
    packaging_failed,
    pipeline_detail,
)

JOB_ID = PIPELINE_FIXTURE_JOB_ID


def mediaconvert_job(*plan: tuple[str, str], engine: str = "mediaconvert") -> JobRecord:
    return job_in("PROCESSING", JOB_ID, engine=engine, plan=plan or (("720p", "QUEUED"), ("1080p", "QUEUED")))


def apply_statuses(job: JobRecord, names: list[str] | tuple[str, ...], sizes: dict | None = None) -> JobRecord:
    for name in names:
        transition = mc.mediaconvert_transition(mediaconvert_change(name), now=NOW + 1, sizes=sizes or {})
        if transition is not None:
            job = transition(job) or job
    return job


# --- pipeline events -----------------------------------------------------------------------------------------------


def test_pipeline_fixtures_parse_into_typed_events() -> None:
    progress = parse_rendition_event("Rendition Progress", pipeline_detail("rendition_progress"))
    completed = parse_rendition_event("Rendition Completed", pipeline_detail("rendition_completed"))
    failed = parse_rendition_event("Rendition Failed", pipeline_detail("rendition_failed"))
    assert progress == RenditionProgress(job_id=JOB_ID, owner_id="owner-1", rendition="720p", percent=0)
    assert isinstance(completed, RenditionCompleted)
    assert completed.output() == {
        "width": 1280,
        "height": 720,
        "durationMs": 10000,
        "bytes": 1048576,
        "contentType": "video/mp4",
        "bucket": "test-outputs",
        "key": f"outputs/{JOB_ID}/720p.mp4",
        "engine": "lambda",
    }
    assert isinstance(failed, RenditionFailed)
    assert (failed.rendition, failed.error.code, failed.error.message) == (
        "1080p",
        "TRANSCODE_FAILED",
        "ffmpeg exited with status 1",
    )


@pytest.mark.parametrize("detail_type", ["Job Completed", "Job Accepted", "Something Else"])
def test_detail_types_the_tracker_does_not_apply_parse_to_none(detail_type: str) -> None:
    assert parse_rendition_event(detail_type, pipeline_detail("rendition_progress")) is None


@pytest.mark.parametrize(
    ("detail_type", "detail"),
    [
        ("Rendition Progress", pipeline_detail("rendition_progress", percent=101)),
        ("Rendition Progress", pipeline_detail("rendition_progress", percent="lots")),
        ("Rendition Progress", pipeline_detail("rendition_progress", jobId="")),
        ("Rendition Completed", {k: v for k, v in pipeline_detail("rendition_completed").items() if k != "key"}),
        ("Rendition Failed", pipeline_detail("rendition_failed", error="boom")),
    ],
)
def test_malformed_pipeline_details_are_rejected(detail_type: str, detail: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        parse_rendition_event(detail_type, detail)


def test_packaging_reports_parse_into_typed_events_and_nothing_else_does() -> None:
    job = job_in("PROCESSING", JOB_ID, engine="lambda")
    completed = packaging_completed(job, sample_package(JOB_ID))
    failed = packaging_failed(JOB_ID, "no frames")

    assert parse_packaging_event(completed["detail-type"], completed["detail"]) == PackagingCompleted(
        job_id=JOB_ID, owner_id="owner-1", package=sample_package(JOB_ID)
    )
    assert parse_packaging_event(failed["detail-type"], failed["detail"]) == PackagingFailed(
        job_id=JOB_ID, owner_id="owner-1", error=ErrorInfo(code="PACKAGING_FAILED", message="no frames")
    )
    for detail_type in ("Packaging Requested", "Rendition Completed", "Job Completed"):
        assert parse_packaging_event(detail_type, completed["detail"]) is None
    with pytest.raises(ValidationError):
        parse_packaging_event("Packaging Completed", {**completed["detail"], "package": {"bucket": "b"}})
    with pytest.raises(ValidationError):
        parse_packaging_event("Packaging Failed", {"jobId": JOB_ID, "error": "boom"})


def asking_job(*plan: tuple[str, str], engine: str = "lambda") -> JobRecord:
    """A video job whose renditions were all settled by the pipeline's events: it waits for its package."""
    job = mediaconvert_job(*plan, engine=engine)
    for name in job_state.open_rendition_names(job):
        output = {**pipeline_detail("rendition_completed"), "rendition": name, "key": f"outputs/{JOB_ID}/{name}.mp4"}
        event = parse_rendition_event("Rendition Completed", output)
        assert event is not None
        job = mc.rendition_transition(event, now=NOW + 1)(job) or job
    assert job.playback is not None
    return job


def test_packaging_transitions_drive_the_state_machine() -> None:
    job = asking_job()
    completed = parse_packaging_event("Packaging Completed", packaging_completed(job)["detail"])
    failed = parse_packaging_event("Packaging Failed", packaging_failed(JOB_ID, "no frames")["detail"])
    assert completed is not None and failed is not None

    done = mc.packaging_transition(completed, now=NOW + 5)(job)
    given_up = mc.packaging_transition(failed, now=NOW + 5)(job)

    assert done is not None and given_up is not None
    assert (done.status, done.playback.status, done.playback.package) == (
        "COMPLETED",
        PackagingStatus.COMPLETED,
        package_for(job),
    )
    assert (given_up.status, given_up.error) == (
        "FAILED",
        ErrorInfo(code="PACKAGING_FAILED", message="playback: no frames"),
    )
    assert mc.packaging_transition(completed, now=NOW + 6)(done) is None
    assert mc.packaging_transition(failed, now=NOW + 6)(done) is None


def test_the_packaging_request_lists_the_completed_video_renditions_in_ladder_order() -> None:
    # GIVEN a ladder whose top rendition was skipped (no upscaling), completed from the top down, the record's map
    # coming back in another order than the ladder's
    job = mediaconvert_job(("480p", "QUEUED"), ("720p", "QUEUED"), ("1080p", "SKIPPED"), engine="lambda")
    for name, width, height in (("720p", 1280, 720), ("480p", 854, 480)):
        job.renditions = dict(reversed(list(job.renditions.items())))
        detail = pipeline_detail(
            "rendition_completed", rendition=name, key=f"outputs/{JOB_ID}/{name}.mp4", width=width, height=height
        )
        event = parse_rendition_event("Rendition Completed", detail)
        assert event is not None
        job = mc.rendition_transition(event, now=NOW + 1)(job) or job

    request = mc.packaging_request(job)

    assert request == PackagingRequested(
        job_id=JOB_ID,
        owner_id="owner-1",
        engine="lambda",
        duration_ms=10_000,
        renditions=[
            PackagingSource(
                rendition="480p", bucket="test-outputs", key=f"outputs/{JOB_ID}/480p.mp4", width=854, height=480
            ),
            PackagingSource(
                rendition="720p", bucket="test-outputs", key=f"outputs/{JOB_ID}/720p.mp4", width=1280, height=720
            ),
        ],
    )


def test_pipeline_transitions_drive_the_state_machine() -> None:
    job = mediaconvert_job(engine="lambda")
    for name, detail in [
        ("Rendition Progress", pipeline_detail("rendition_progress")),
        ("Rendition Completed", pipeline_detail("rendition_completed")),
        ("Rendition Failed", pipeline_detail("rendition_failed")),
    ]:
        event = parse_rendition_event(name, detail)
        assert event is not None
        job = mc.rendition_transition(event, now=NOW + 5)(job) or job
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="TRANSCODE_FAILED", message="1080p: ffmpeg exited with status 1")
    assert job.renditions["720p"].bytes == 1048576


# --- MediaConvert: parsing and outputs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["progressing", "status-update", "input-information", "complete", "error", "canceled", "other-pipeline-complete"],
)
def test_every_mediaconvert_fixture_parses(name: str) -> None:
    change = mediaconvert_change(name, job_id="job-x")
    assert change.job_id == "job-x"
    assert change.mediaconvert_job_id == "1763800000000-abc123"
    assert mc.belongs_to(change, "dev") is (name != "other-pipeline-complete")


def test_a_detail_without_status_is_not_a_mediaconvert_state_change() -> None:
    with pytest.raises(ValidationError):
        mc.parse_job_state_change({"userMetadata": {"jobId": "j", "pipeline": "dev"}})


def test_an_event_without_a_job_id_names_no_job() -> None:
    change = mc.parse_job_state_change({"status": "COMPLETE", "userMetadata": {"pipeline": "dev", "jobId": ""}})
    assert mc.belongs_to(change, "dev")
    assert change.job_id is None


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/outputs/j/720p.mp4", ("bucket", "outputs/j/720p.mp4")),
        ("s3://bucket/a%20b.mp4", ("bucket", "a b.mp4")),
        ("s3://bucket/", None),
        ("https://bucket/key.mp4", None),
        ("720p.mp4", None),
    ],
)
def test_s3_uris_parse_to_bucket_and_key(uri: str, expected: tuple[str, str] | None) -> None:
    assert mc.s3_location(uri) == expected


def test_complete_maps_file_group_outputs_to_renditions_and_leaves_the_hls_group_out() -> None:
    change = mediaconvert_change("complete")
    assert [group.type for group in change.output_group_details] == ["FILE_GROUP", "HLS_GROUP"]
    assert mc.rendition_outputs(change) == [
        mc.RenditionOutput("720p", "dev-outputs", "outputs/01JDEMO0000000000000000000/720p.mp4", 1280, 720, 10000),
        mc.RenditionOutput("1080p", "dev-outputs", "outputs/01JDEMO0000000000000000000/1080p.mp4", 1920, 1080, 10000),
    ]


def test_outputs_that_are_not_rendition_files_are_left_out() -> None:
    detail = mediaconvert_detail("complete")
    file_group = detail["outputGroupDetails"][0]
    file_group["outputDetails"].extend(
        [
            {"outputFilePaths": ["s3://dev-outputs/outputs/j/thumb.jpg"]},
            {"outputFilePaths": ["not-a-uri/480p.mp4"]},
            {"outputFilePaths": ["s3://dev-outputs/elsewhere/720p.mp4"], "durationInMs": 1},
        ]
    )
    names = [(o.rendition, o.duration_ms) for o in mc.rendition_outputs(mc.parse_job_state_change(detail))]
    assert names == [("720p", 10000), ("1080p", 10000)]


def test_sizes_fill_bytes_by_bucket_and_key() -> None:
    outputs = mc.rendition_outputs(mediaconvert_change("complete"))
    sized = mc.with_sizes(outputs, {("dev-outputs", "outputs/01JDEMO0000000000000000000/720p.mp4"): 4321})
    assert [o.bytes for o in sized] == [4321, None]


# --- MediaConvert: transitions -------------------------------------------------------------------------------------


def test_progressing_starts_every_queued_rendition() -> None:
    job = apply_statuses(mediaconvert_job(("720p", "QUEUED"), ("1080p", "SKIPPED")), ["progressing"])
    assert {n: r.status for n, r in job.renditions.items()} == {"720p": "PROCESSING", "1080p": "SKIPPED"}


def test_status_update_sets_every_open_rendition_to_the_job_percentage() -> None:
    job = apply_statuses(mediaconvert_job(), ["status-update"])
    assert [(r.status, r.progress) for r in job.renditions.values()] == [("PROCESSING", 40)] * 2
    assert job.progress == 40


def test_status_update_without_a_percentage_changes_nothing() -> None:
    detail = mediaconvert_detail("status-update")
    del detail["jobProgress"]
    assert mc.mediaconvert_transition(mc.parse_job_state_change(detail), now=NOW, sizes={}) is None


@pytest.mark.parametrize("status", ["INPUT_INFORMATION", "SUBMITTED", "NEW_WARNING", "QUEUE_HOP", "SOMETHING_NEW"])
def test_statuses_that_change_nothing_have_no_transition(status: str) -> None:
    change = mc.parse_job_state_change({"status": status, "userMetadata": {"jobId": JOB_ID, "pipeline": "dev"}})
    assert mc.mediaconvert_transition(change, now=NOW, sizes={}) is None


def test_complete_completes_the_renditions_with_what_mediaconvert_reported_and_asks_for_the_package() -> None:
    sizes = {("dev-outputs", "outputs/01JDEMO0000000000000000000/1080p.mp4"): 99}
    job = apply_statuses(mediaconvert_job(), ["complete"], sizes=sizes)
    assert (job.status, job.progress) == ("PROCESSING", 99)
    assert job.playback == PlaybackRecord(status=PackagingStatus.QUEUED, requestedAt=NOW + 1)
    assert job.hls is None  # the HLS group of the fixture is not recorded: the packager makes the ladder
    assert [(s.rendition, s.bucket, s.key, s.width, s.height) for s in mc.packaging_request(job).renditions] == [
        ("720p", "dev-outputs", "outputs/01JDEMO0000000000000000000/720p.mp4", 1280, 720),
        ("1080p", "dev-outputs", "outputs/01JDEMO0000000000000000000/1080p.mp4", 1920, 1080),
    ]
    assert mc.packaging_request(job).engine == "mediaconvert"
    assert job.renditions["1080p"] == RenditionRecord.model_validate(
        {
            "name": "1080p",
            "status": "COMPLETED",
            "order": 1,
            "progress": 100,
            "width": 1920,
            "height": 1080,
            "durationMs": 10000,
            "bytes": 99,
            "contentType": "video/mp4",
            "bucket": "dev-outputs",
            "key": "outputs/01JDEMO0000000000000000000/1080p.mp4",
            "engine": "mediaconvert",
        }
    )
    assert job.renditions["720p"].bytes is None


def test_complete_without_a_planned_rendition_fails_that_rendition() -> None:
    detail = mediaconvert_detail("complete")
    del detail["outputGroupDetails"][0]["outputDetails"][1]  # 1080p.mp4
    change = mc.parse_job_state_change(detail)
    transition = mc.mediaconvert_transition(change, now=NOW, sizes={})
    assert transition is not None
    job = transition(mediaconvert_job())
    assert job is not None
    assert job.status == "FAILED"
    assert job.renditions["720p"].status == "COMPLETED"
    assert job.renditions["1080p"].status == "FAILED"
    assert job.error is not None
    assert job.error.code == "MEDIACONVERT_OUTPUT_MISSING"
    assert job.error.message.startswith("1080p: ")
    assert job.playback is None


def test_complete_leaves_skipped_renditions_skipped_even_if_an_output_carries_their_name() -> None:
    job = apply_statuses(mediaconvert_job(("720p", "QUEUED"), ("1080p", "SKIPPED")), ["complete"])
    assert (job.status, job.playback.status) == ("PROCESSING", PackagingStatus.QUEUED)
    assert job.renditions["1080p"].status == "SKIPPED"
    assert job.renditions["1080p"].width is None
    assert [s.rendition for s in mc.packaging_request(job).renditions] == ["720p"]


def test_error_fails_the_job_with_the_mediaconvert_code_and_message() -> None:
    job = apply_statuses(mediaconvert_job(), ["progressing", "error"])
    # MediaConvert's words, without the input's location (the log keeps it for operators)
    assert "s3://" in mediaconvert_detail("error")["errorMessage"]
    message = "Unable to open input file [[object]]: [Failed probe/open: [Failed to read data: AssumeRole failed]]"
    assert job.status == "FAILED"
    assert job.error == ErrorInfo(code="MEDIACONVERT_1040", message=message)
    assert all(r.error == ErrorInfo(code="MEDIACONVERT_1040", message=message) for r in job.renditions.values())


def test_changes_of_a_mediaconvert_job_other_than_the_recorded_one_are_ignored() -> None:
    fixture_job_id = mediaconvert_detail("error")["jobId"]
    job = job_state.record_mediaconvert_job(
        mediaconvert_job(), mediaconvert_job_id="1763800000000-other", client_request_token=JOB_ID, now=NOW
    )
    assert job is not None
    assert apply_statuses(job, ["progressing", "error", "complete"]) == job
    recorded = job_state.record_mediaconvert_job(
        mediaconvert_job(), mediaconvert_job_id=fixture_job_id, client_request_token=JOB_ID, now=NOW
    )
    assert recorded is not None
    assert apply_statuses(recorded, ["progressing", "error"]).status == "FAILED"


def test_error_without_a_code_still_fails_with_a_mediaconvert_code() -> None:
    detail = mediaconvert_detail("error")
    del detail["errorCode"], detail["errorMessage"]
    assert mc.error_code(mc.parse_job_state_change(detail)) == "MEDIACONVERT_ERROR"


def test_canceled_fails_the_job() -> None:
    job = apply_statuses(mediaconvert_job(), ["canceled"])
    assert job.status == "FAILED"
    assert job.error is not None
    assert job.error.code == "MEDIACONVERT_CANCELED"


@pytest.mark.parametrize("name", ["progressing", "status-update", "complete", "error", "canceled"])
def test_mediaconvert_events_do_not_touch_jobs_of_the_lambda_engine(name: str) -> None:
    job = mediaconvert_job(engine="lambda")
    assert apply_statuses(job, [name]) == job


@pytest.mark.parametrize("packaged", [False, True], ids=["waiting-for-its-package", "completed"])
@pytest.mark.parametrize("late", ["progressing", "status-update", "input-information", "complete", "error", "canceled"])
def test_nothing_mediaconvert_reports_moves_a_job_after_complete(late: str, packaged: bool) -> None:
    done = apply_statuses(mediaconvert_job(), ["complete"])
    if packaged:
        done = complete_playback(done, now=NOW + 2)
    assert apply_statuses(done.model_copy(deep=True), [late]) == done


def test_every_order_of_the_mediaconvert_events_ends_in_the_same_job_waiting_for_its_package() -> None:
    names = ["progressing", "status-update", "input-information", "complete"]
    finals = [apply_statuses(mediaconvert_job(), order + order) for order in itertools.permutations(names)]
    assert all(final == finals[0] for final in finals)
    assert (finals[0].status, finals[0].playback.status) == ("PROCESSING", PackagingStatus.QUEUED)
    assert complete_playback(finals[0], now=NOW + 2).status == "COMPLETED"
