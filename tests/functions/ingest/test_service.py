"""The service on its own: scratch files, the order of the checks, the processing deadline."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from functions.ingest.adapters import Ffprobe
from functions.ingest.service import Outcome, RejectionCode, UploadRejected
from tests.functions.ingest.conftest import (
    DEADLINE_SECONDS,
    JOB_ID,
    SERVICE_NOW_MS,
    MediaLibrary,
    Pipeline,
    ServiceUnderTest,
    upload_ref,
)


def test_size_is_checked_before_downloading(
    pipeline: Pipeline, make_service: Callable[[], ServiceUnderTest], ingest_env: Callable[..., None]
) -> None:
    ingest_env(MAX_UPLOAD_BYTES="4", MAX_IMAGE_UPLOAD_BYTES="4", MAX_AUDIO_UPLOAD_BYTES="4")
    under_test = make_service()
    pipeline.create_job()

    result = under_test.service.ingest(upload_ref(pipeline, b"12345"), redelivered=False)

    assert (result.outcome, result.code) == (Outcome.REJECTED, "UPLOAD_TOO_LARGE")
    assert under_test.store.downloads == []


@pytest.mark.media
@pytest.mark.parametrize(("clip", "outcome"), [("small", Outcome.ACCEPTED), ("text_named_mp4", Outcome.REJECTED)])
def test_scratch_copy_is_removed_whatever_the_outcome(
    pipeline: Pipeline,
    media: MediaLibrary,
    make_service: Callable[[], ServiceUnderTest],
    clip: str,
    outcome: Outcome,
) -> None:
    under_test = make_service()
    pipeline.create_job()

    result = under_test.service.ingest(upload_ref(pipeline, getattr(media, clip)), redelivered=False)

    assert result.outcome is outcome
    [downloaded] = under_test.store.downloads
    assert (downloaded.parent.parent, downloaded.name) == (under_test.scratch, "source")
    assert list(under_test.scratch.iterdir()) == []


@pytest.mark.media
def test_processing_deadline_runs_from_the_upload(
    pipeline: Pipeline, media: MediaLibrary, make_service: Callable[[], ServiceUnderTest]
) -> None:
    under_test = make_service()
    pipeline.create_job()

    under_test.service.ingest(upload_ref(pipeline, media.small), redelivered=False)

    job = pipeline.job()
    assert (job.status, job.deadlineAt) == ("PROCESSING", SERVICE_NOW_MS + DEADLINE_SECONDS * 1000)


def test_a_rejection_reason_that_names_a_location_reaches_the_job_without_it(
    pipeline: Pipeline, make_service: Callable[[], ServiceUnderTest], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an inspector whose rejection names the scratch copy and the upload's location (what a careless message
    # built from a tool's output would say)
    def leaky_probe(self: Ffprobe, path: object, *, size_bytes: int) -> None:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"file:{path} (s3://test-uploads/uploads/{JOB_ID}/source) is truncated",
            detail="for the logs: everything",
        )

    monkeypatch.setattr(Ffprobe, "probe", leaky_probe)
    under_test = make_service()
    pipeline.create_job()

    # WHEN the upload is rejected
    result = under_test.service.ingest(upload_ref(pipeline, b"not an image, so ffprobe decides"), redelivered=False)

    # THEN the job's reason keeps its words and loses the locations
    assert (result.outcome, result.code) == (Outcome.REJECTED, "CORRUPT_MEDIA")
    job = pipeline.job()
    assert job.error is not None
    assert job.error.message == "source ([object]) is truncated"
