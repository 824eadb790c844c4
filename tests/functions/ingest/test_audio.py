"""Audio through the handler: no video stream (cover art aside) but an audio stream, in an accepted audio container,
is an audio job with units `audio` and `waveform`, fanned out one SNS message per unit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from functions.ingest.service import RejectionCode
from tests.functions.ingest.conftest import (
    JOB_ID,
    NO_FAILURES,
    OWNER,
    MediaLibrary,
    Pipeline,
    assert_rejected,
)


@dataclass(frozen=True)
class Tone:
    extension: str
    codec: str
    format_name: str
    content_type: str


TONES = [
    pytest.param(Tone("mp3", "mp3", "mp3", "audio/mpeg"), id="mp3"),
    pytest.param(Tone("m4a", "aac", "mov,mp4,m4a,3gp,3g2,mj2", "audio/mp4"), id="m4a"),
    pytest.param(Tone("wav", "pcm_s16le", "wav", "audio/wav"), id="wav"),
    pytest.param(Tone("flac", "flac", "flac", "audio/flac"), id="flac"),
    pytest.param(Tone("ogg", "opus", "ogg", "audio/ogg"), id="ogg-opus"),
    pytest.param(Tone("webm", "opus", "matroska,webm", "audio/webm"), id="webm-opus"),
]


@pytest.mark.media
@pytest.mark.parametrize("tone", TONES)
def test_a_tone_is_accepted_as_audio_with_two_units_one_message_each(
    pipeline: Pipeline, media: MediaLibrary, tone: Tone
) -> None:
    # GIVEN a job, and a one-second stereo 48 kHz tone uploaded to its key
    pipeline.create_job(filename=f"tone.{tone.extension}", content_type=tone.content_type)
    path = media.tone(tone.extension)

    # WHEN the notification arrives
    response = pipeline.upload(path, content_type=tone.content_type)

    # THEN the job is a PROCESSING audio job in Lambda, whose probe says what the audio is (and nothing of video)
    assert response == NO_FAILURES
    job = pipeline.job()
    assert (job.status, job.mediaType, job.engine, job.error) == ("PROCESSING", "audio", "lambda", None)
    assert job.probe is not None
    probe = job.probe.model_dump(exclude_unset=True)
    assert 990 <= probe.pop("durationMs") <= 1100
    assert probe.pop("bitRate") > 0
    assert probe == {
        "audioCodec": tone.codec,
        "hasAudio": True,
        "channels": 2,
        "sampleRate": 48_000,
        "formatName": tone.format_name,
        "sizeBytes": path.stat().st_size,
    }
    # AND its units: the AAC rendition at the configured bitrate, and the waveform picture
    planned = {
        n: (r.status, r.kind, r.format, r.width, r.height, r.audioBitrateKbps) for n, r in job.renditions.items()
    }
    assert planned == {
        "audio": ("QUEUED", "audio", "m4a", None, None, 128),
        "waveform": ("QUEUED", "waveform", "png", 1800, 280, None),
    }

    # AND one message per unit, routed to the audio queue only
    messages = pipeline.fanout.drain()
    assert [m.attributes for m in messages] == [
        {"mediaType": "audio", "engine": "lambda", "renditions": ["audio"]},
        {"mediaType": "audio", "engine": "lambda", "renditions": ["waveform"]},
    ]
    assert [m.body["renditions"] for m in messages] == [
        [{"name": "audio", "kind": "audio", "width": None, "height": None, "maxVideoBitrateKbps": None,
          "audioBitrateKbps": 128, "format": "m4a"}],
        [{"name": "waveform", "kind": "waveform", "width": 1800, "height": 280, "maxVideoBitrateKbps": None,
          "audioBitrateKbps": None, "format": "png"}],
    ]  # fmt: skip
    assert all(m.body["probe"] == job.probe.model_dump(exclude_unset=True) for m in messages)
    assert len(pipeline.fanout.drain(pipeline.fanout.audio_url)) == 2
    assert pipeline.fanout.drain(pipeline.fanout.images_url) == []
    assert pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url) == []

    # AND Job Accepted lists both units
    assert [(e["detail-type"], e["detail"]) for e in pipeline.bus.drain()] == [
        ("Job Accepted", {"jobId": JOB_ID, "ownerId": OWNER, "engine": "lambda", "renditions": ["audio", "waveform"]})
    ]


@pytest.mark.media
def test_raw_aac_is_audio(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job(filename="tone.aac", content_type="audio/aac")

    response = pipeline.upload(media.adts_aac, content_type="audio/aac")

    assert response == NO_FAILURES
    job = pipeline.job()
    assert job.probe is not None
    assert (job.mediaType, job.probe.formatName, job.probe.audioCodec) == ("audio", "aac", "aac")


@pytest.mark.media
def test_an_mp3_with_cover_art_is_audio(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job(filename="song.mp3", content_type="audio/mpeg")

    response = pipeline.upload(media.mp3_with_cover, content_type="audio/mpeg")

    assert response == NO_FAILURES
    job = pipeline.job()
    assert (job.status, job.mediaType) == ("PROCESSING", "audio")
    assert job.probe is not None
    probe = job.probe.model_dump(exclude_unset=True)
    assert (probe["formatName"], probe["audioCodec"], probe["channels"]) == ("mp3", "mp3", 2)
    assert "videoCodec" not in probe and "width" not in probe  # the picture is not video
    assert [m.attributes["renditions"] for m in pipeline.fanout.drain()] == [["audio"], ["waveform"]]


@pytest.mark.media
def test_the_audio_bitrate_is_configured(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    ingest_env(AUDIO_BITRATE_KBPS="96")
    pipeline.create_job()

    pipeline.upload(media.tone("flac"))

    assert pipeline.job().renditions["audio"].audioBitrateKbps == 96
    assert pipeline.fanout.drain()[0].body["renditions"][0]["audioBitrateKbps"] == 96


@pytest.mark.media
def test_a_video_over_the_audio_limit_is_held_to_the_video_limit(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    ingest_env(MAX_AUDIO_UPLOAD_BYTES="1000", MAX_IMAGE_UPLOAD_BYTES="1000")
    pipeline.create_job()

    response = pipeline.upload(media.small)

    assert response == NO_FAILURES
    assert (pipeline.job().status, pipeline.job().mediaType) == ("PROCESSING", "video")


@dataclass(frozen=True)
class BadAudio:
    clip: str
    code: RejectionCode
    says: str
    env: tuple[tuple[str, str], ...] = ()


BAD_AUDIO = [
    pytest.param(
        BadAudio("two_second_tone", RejectionCode.DURATION_TOO_LONG, "the audio is 2.0 s long; the limit is 1 s",
                 (("MAX_DURATION_SECONDS", "1"),)),
        id="too-long",
    ),
    pytest.param(
        BadAudio("two_second_tone", RejectionCode.UPLOAD_TOO_LARGE, "the limit for audio files is 1000 bytes",
                 (("MAX_AUDIO_UPLOAD_BYTES", "1000"),)),
        id="over-the-audio-limit",
    ),
    pytest.param(
        BadAudio("audio_in_avi", RejectionCode.UNSUPPORTED_FORMAT,
                 "the file is audio in avi, which is not an accepted audio container"),
        id="audio-in-a-video-only-container",
    ),
]  # fmt: skip


@pytest.mark.media
@pytest.mark.parametrize("case", BAD_AUDIO)
def test_bad_audio_is_rejected_with_its_code(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None], case: BadAudio
) -> None:
    ingest_env(**dict(case.env))
    pipeline.create_job(filename="tone", content_type="audio/flac")

    response = pipeline.upload(getattr(media, case.clip), content_type="audio/flac")

    job = assert_rejected(pipeline, response, case.code)
    assert job.error is not None
    assert job.error.message == case.says or case.says in job.error.message
    if case.code is not RejectionCode.UNSUPPORTED_FORMAT:
        assert job.probe is not None  # the client sees what was measured
        assert (job.probe.formatName, job.probe.channels) == ("flac", 2)
