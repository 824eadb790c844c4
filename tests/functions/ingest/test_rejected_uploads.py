"""Bad uploads: each ends REJECTED with its code, without an exception or a retry, touching no other job."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from functions.ingest.service import RejectionCode
from tests.functions.ingest.conftest import BYSTANDER_ID, MediaLibrary, Pipeline, assert_rejected


@dataclass(frozen=True)
class BadUpload:
    clip: str
    """A MediaLibrary property."""
    code: RejectionCode
    env: tuple[tuple[str, str], ...] = ()
    """Limits tightened for the case."""


BAD_UPLOADS = [
    pytest.param(BadUpload("text_named_mp4", RejectionCode.UNSUPPORTED_FORMAT), id="text-named-mp4"),
    pytest.param(BadUpload("hls_playlist", RejectionCode.UNSUPPORTED_FORMAT), id="hls-playlist"),
    pytest.param(BadUpload("concat_script", RejectionCode.UNSUPPORTED_FORMAT), id="concat-script"),
    pytest.param(BadUpload("truncated", RejectionCode.CORRUPT_MEDIA), id="truncated"),
    pytest.param(BadUpload("truncated_faststart", RejectionCode.CORRUPT_MEDIA), id="truncated-index-first"),
    pytest.param(BadUpload("subtitles_only", RejectionCode.NO_VIDEO_STREAM), id="neither-video-nor-audio"),
    pytest.param(
        BadUpload("small_two_seconds", RejectionCode.DURATION_TOO_LONG, (("MAX_DURATION_SECONDS", "1"),)),
        id="too-long",
    ),
    pytest.param(
        BadUpload(
            "small_two_seconds",
            RejectionCode.DURATION_TOO_LONG,
            (
                ("ENGINE", "lambda"),
                ("TRANSCODE_TIMEOUT_SECONDS", "31"),
                ("LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND", "1"),
            ),
        ),
        id="beyond-the-lambda-ceiling",
    ),
    pytest.param(
        BadUpload("landscape_1080p", RejectionCode.RESOLUTION_TOO_HIGH, (("MAX_WIDTH", "1280"), ("MAX_HEIGHT", "720"))),
        id="resolution-too-high",
    ),
    pytest.param(BadUpload("small", RejectionCode.UPLOAD_TOO_LARGE, (("MAX_UPLOAD_BYTES", "1000"),)), id="too-large"),
]
"""Videos, and files that are none of the accepted kinds (images and audio: test_images.py, test_audio.py)."""


@pytest.mark.media
@pytest.mark.parametrize("case", BAD_UPLOADS)
def test_bad_upload_is_rejected_without_retry(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None], case: BadUpload
) -> None:
    # GIVEN the job, and another job that is still waiting for its upload
    ingest_env(**dict(case.env))
    pipeline.create_job()
    bystander = pipeline.create_job(BYSTANDER_ID)

    # WHEN the bad upload's notification arrives
    response = pipeline.upload(getattr(media, case.clip))

    # THEN the job is REJECTED with the code, nothing is published, and the other job is untouched
    job = assert_rejected(pipeline, response, case.code)
    assert pipeline.job(BYSTANDER_ID) == bystander
    if case.code in (RejectionCode.DURATION_TOO_LONG, RejectionCode.RESOLUTION_TOO_HIGH):
        assert job.probe is not None
        assert job.probe.durationMs > 0  # the client can see what was measured


def test_empty_upload_is_rejected_and_counted(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    pipeline.create_job()

    response = pipeline.upload(b"")

    assert_rejected(pipeline, response, RejectionCode.EMPTY_UPLOAD)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    by_code = [m for m in emitted if "UploadsRejectedByCode" in m]
    assert [m["code"] for m in by_code] == ["EMPTY_UPLOAD"]
    rejected = [m for m in emitted if "UploadsRejected" in m]
    assert [m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in rejected] == ["MediaPipelineTest"]


def test_too_large_upload_is_rejected_without_probing(pipeline: Pipeline, ingest_env: Callable[..., None]) -> None:
    # Over the limit of every kind of media: nothing it could turn out to be is accepted at that size.
    ingest_env(MAX_UPLOAD_BYTES="10", MAX_IMAGE_UPLOAD_BYTES="9", MAX_AUDIO_UPLOAD_BYTES="8")
    pipeline.create_job()

    response = pipeline.upload(b"x" * 11)

    job = assert_rejected(pipeline, response, RejectionCode.UPLOAD_TOO_LARGE)
    assert job.probe is None


def test_notification_for_a_deleted_object_rejects_upload_missing(pipeline: Pipeline) -> None:
    pipeline.create_job()

    response = pipeline.deliver(pipeline.record(size=10))

    assert_rejected(pipeline, response, RejectionCode.UPLOAD_MISSING)


def test_object_replaced_after_the_notification_is_not_validated(pipeline: Pipeline) -> None:
    # GIVEN the client re-posted the upload form: the object no longer has the notified ETag
    pipeline.create_job()
    pipeline.put(b"the second upload")

    response = pipeline.deliver(pipeline.record(etag="0123456789abcdef0123456789abcdef", size=16))

    job = assert_rejected(pipeline, response, RejectionCode.UPLOAD_MISSING)
    assert job.error is not None
    assert "replaced" in job.error.message
