"""Accepted uploads through the handler: the job is PROCESSING with its plan, fanned out once, Job Accepted put."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.functions.ingest.conftest import (
    DEADLINE_SECONDS,
    JOB_ID,
    NO_FAILURES,
    NOW_MS,
    OWNER,
    MediaLibrary,
    Pipeline,
)


@pytest.mark.media
def test_landscape_1080p_with_audio_is_accepted_and_fanned_out(pipeline: Pipeline, media: MediaLibrary) -> None:
    # GIVEN a job waiting for its upload, and a 1080p clip with audio uploaded to its key
    pipeline.create_job()
    etag = pipeline.put(media.landscape_1080p)
    size = media.landscape_1080p.stat().st_size

    # WHEN the notification arrives
    response = pipeline.deliver(pipeline.record(etag=etag, size=size))

    # THEN the job is PROCESSING with the probe and both renditions queued at their sizes
    assert response == NO_FAILURES
    job = pipeline.job()
    assert job.status == "PROCESSING"
    assert (job.mediaType, job.engine, job.error) == ("video", "lambda", None)
    assert job.probe is not None
    probe = job.probe.model_dump(exclude_unset=True)  # stored as ingest set it: no audio or image fields
    assert 900 <= probe.pop("durationMs") <= 1100
    assert probe.pop("bitRate") > 0
    assert probe == {
        "width": 1920,
        "height": 1080,
        "codedWidth": 1920,
        "codedHeight": 1080,
        "rotation": 0,
        "videoCodec": "h264",
        "audioCodec": "aac",
        "hasAudio": True,
        "frameRate": 30,
        "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
        "sizeBytes": size,
    }
    assert {name: (r.status, r.width, r.height, r.order) for name, r in job.renditions.items()} == {
        "720p": ("QUEUED", 1280, 720, 0),
        "1080p": ("QUEUED", 1920, 1080, 1),
    }
    assert job.openJob == "OPEN"
    assert job.deadlineAt is not None
    assert NOW_MS < job.deadlineAt - DEADLINE_SECONDS * 1000 <= job.updatedAt  # from the upload's arrival

    # AND one fan-out message with the contract's attributes and body
    [message] = pipeline.fanout.drain()
    assert message.attributes == {"mediaType": "video", "engine": "lambda", "renditions": ["720p", "1080p"]}
    assert message.body == {
        "jobId": JOB_ID,
        "ownerId": OWNER,
        "engine": "lambda",
        "source": {"bucket": "test-uploads", "key": f"uploads/{JOB_ID}/source", "etag": etag},
        "probe": {**job.probe.model_dump(exclude_unset=True), "frameRate": 30.0},
        "renditions": [
            {"name": "720p", "width": 1280, "height": 720, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128},
            {"name": "1080p", "width": 1920, "height": 1080, "maxVideoBitrateKbps": 6000, "audioBitrateKbps": 160},
        ],
    }
    # AND the transcode-1080p queue's filter policy matches it
    assert [m.body["jobId"] for m in pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url)] == [JOB_ID]

    # AND Job Accepted is on the bus
    events = pipeline.bus.drain()
    assert [(e["source"], e["detail-type"], e["detail"]) for e in events] == [
        (
            "media-pipeline",
            "Job Accepted",
            {"jobId": JOB_ID, "ownerId": OWNER, "engine": "lambda", "renditions": ["720p", "1080p"]},
        )
    ]


@pytest.mark.media
def test_480p_source_keeps_the_lowest_rendition_at_its_own_size(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    response = pipeline.upload(media.sd_480p)

    assert response == NO_FAILURES
    job = pipeline.job()
    assert job.status == "PROCESSING"
    assert job.probe is not None
    assert (job.probe.width, job.probe.height, job.probe.hasAudio) == (854, 480, False)
    r720, r1080 = job.renditions["720p"], job.renditions["1080p"]
    assert (r720.status, r720.width, r720.height) == ("QUEUED", 854, 480)
    assert r720.reason is not None
    assert "480p" in r720.reason
    assert (r1080.status, r1080.reason) == ("SKIPPED", "source is 480p; no upscaling")
    [message] = pipeline.fanout.drain()
    assert message.attributes["renditions"] == ["720p"]
    assert [r["name"] for r in message.body["renditions"]] == ["720p"]
    # The 1080p transcoder's filter policy does not match a job that skips 1080p.
    assert pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url) == []


@pytest.mark.media
@pytest.mark.parametrize(
    ("clip", "coded", "rotation"),
    [("rotated_portrait", (1920, 1080), 90), ("coded_portrait", (1080, 1920), 0)],
    ids=["display-matrix-90", "coded-1080x1920"],
)
def test_portrait_sources_keep_their_orientation(
    pipeline: Pipeline, media: MediaLibrary, clip: str, coded: tuple[int, int], rotation: int
) -> None:
    pipeline.create_job()

    response = pipeline.upload(getattr(media, clip))

    assert response == NO_FAILURES
    job = pipeline.job()
    probe = job.probe
    assert probe is not None
    assert (probe.width, probe.height, probe.rotation) == (1080, 1920, rotation)
    assert (probe.codedWidth, probe.codedHeight) == coded
    assert {name: (r.status, r.width, r.height) for name, r in job.renditions.items()} == {
        "720p": ("QUEUED", 720, 1280),
        "1080p": ("QUEUED", 1080, 1920),
    }
    [message] = pipeline.fanout.drain()
    assert [(r["width"], r["height"]) for r in message.body["renditions"]] == [(720, 1280), (1080, 1920)]


@pytest.mark.media
def test_odd_dimensions_plan_even_targets(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    pipeline.upload(media.odd_dimensions)

    job = pipeline.job()
    assert job.probe is not None
    assert (job.probe.width, job.probe.height) == (1281, 721)
    assert (job.renditions["720p"].width, job.renditions["720p"].height) == (1280, 720)
    assert job.renditions["1080p"].status == "SKIPPED"


@pytest.mark.media
def test_source_without_audio_says_so(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    pipeline.upload(media.no_audio)

    probe = pipeline.job().probe
    assert probe is not None
    assert (probe.hasAudio, probe.audioCodec, probe.videoCodec) == (False, None, "h264")
    [message] = pipeline.fanout.drain()
    assert message.body["probe"]["hasAudio"] is False


@pytest.mark.media
def test_mpegts_container_is_accepted(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    response = pipeline.upload(media.mpegts)

    assert response == NO_FAILURES
    job = pipeline.job()
    assert job.probe is not None
    assert (job.status, job.probe.formatName, job.probe.hasAudio) == ("PROCESSING", "mpegts", True)


@pytest.mark.media
def test_long_source_goes_to_mediaconvert_when_engine_is_auto(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    ingest_env(MEDIACONVERT_THRESHOLD_SECONDS="1")
    pipeline.create_job()

    pipeline.upload(media.small_two_seconds)

    assert pipeline.job().engine == "mediaconvert"
    [message] = pipeline.fanout.drain()
    assert (message.attributes["engine"], message.body["engine"]) == ("mediaconvert", "mediaconvert")
    assert pipeline.bus.drain()[0]["detail"]["engine"] == "mediaconvert"


@pytest.mark.media
def test_a_short_source_too_heavy_for_a_transcode_function_goes_to_mediaconvert(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    # GIVEN a transcode function with one second of encode budget at 1 Mpx/s per vCPU, under a high threshold
    ingest_env(TRANSCODE_TIMEOUT_SECONDS="31", LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND="1")
    pipeline.create_job()

    # WHEN a two-second clip arrives (far below the 600 s threshold, far above the budget)
    pipeline.upload(media.small_two_seconds)

    # THEN the ceiling wins over the threshold
    assert pipeline.job().engine == "mediaconvert"
    [message] = pipeline.fanout.drain()
    assert message.attributes["engine"] == "mediaconvert"
