"""The AWS projection of bench/segment_projection.py, on a measurement made up here (no ffmpeg): what each
assumption moves, so that a figure in the README cannot silently stop depending on it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bench.packager_speed import Timed
from bench.segment_projection import (
    Assumptions,
    Measurement,
    Part,
    RenditionRuns,
    project,
    report_measurement,
    report_projection,
)
from functions.contracts.fanout import EncodePlan
from functions.contracts.jobs import Probe

MEDIA_SECONDS = 60.0
MP4 = "mov,mp4,m4a,3gp,3g2,mj2"


def runs(name: str, width: int, height: int, kbps: int, cpu_per_second: float) -> RenditionRuns:
    """A rendition measured as five 12 s segments, each a little dearer than its share of the whole encode."""
    plan = EncodePlan(name=name, width=width, height=height, maxVideoBitrateKbps=kbps, audioBitrateKbps=128)
    whole_video = Timed(MEDIA_SECONDS * cpu_per_second / 2, MEDIA_SECONDS * cpu_per_second)
    segments = [Part(f"video {n}", 12.0, Timed(3.0, 12.0 * cpu_per_second + 0.5)) for n in range(5)]
    audio = Part("audio", MEDIA_SECONDS, Timed(3.7, 3.7))
    stitch = Part("stitch", MEDIA_SECONDS, Timed(0.1, 0.1))
    whole = Timed(whole_video.wall_seconds + 1, whole_video.cpu_seconds + 3.6)
    return RenditionRuns(plan, whole, whole_video, [*segments, audio, stitch])


@pytest.fixture
def measurement() -> Measurement:
    probe = Probe(
        durationMs=int(MEDIA_SECONDS * 1000),
        width=1920,
        height=1080,
        videoCodec="h264",
        audioCodec="aac",
        hasAudio=True,
        frameRate=30.0,
        formatName=MP4,
    )
    return Measurement(
        media_seconds=MEDIA_SECONDS,
        segment_seconds=12,
        segments=5,
        cpus=2,
        source_mbps=16.0,
        probe=probe,
        ingest_wall_seconds=0.8,
        renditions=[runs("720p", 1280, 720, 3000, 0.45), runs("1080p", 1920, 1080, 6000, 0.72)],
        packager_cpu_seconds=0.7,
        packager_wall_seconds=0.65,
    )


def test_an_hour_is_planned_in_segments_and_priced_against_mediaconvert(measurement: Measurement) -> None:
    hour = project(measurement, 3600, Assumptions(), 1.0)

    assert hour.segments > 1 and hour.segment_seconds is not None and hour.segment_seconds % 2 == 0
    assert hour.units == 2 * (hour.segments + 1)  # every video segment and one audio part, per rendition
    assert hour.stored < hour.ready  # the packager comes after the last stitch
    assert 1.0 < hour.cpu_ratio < 1.05
    assert hour.lambda_usd > 0 and hour.ratio == hour.mediaconvert_usd / hour.lambda_usd


def test_the_conservative_projection_takes_longer_and_costs_more(measurement: Measurement) -> None:
    raw, conservative = project(measurement, 3600, Assumptions(), 1.0), project(measurement, 3600, Assumptions(), 2.0)

    assert conservative.ready > raw.ready and conservative.lambda_usd > raw.lambda_usd


def test_reading_only_the_audio_shortens_the_audio_unit_and_reading_whole_sources_costs_more(
    measurement: Measurement,
) -> None:
    base = Assumptions()
    whole = project(measurement, 3600, base, 1.0)
    audio_only = project(measurement, 3600, replace(base, audio_reads=True), 1.0)
    whole_windows = project(measurement, 3600, replace(base, window_reads=False), 1.0)

    # an hour of a 16 Mbit/s source is 7.2 GB: 90 s at 80 MB/s, which the audio unit no longer reads
    assert whole.audio_unit - audio_only.audio_unit > 60
    assert audio_only.lambda_usd < whole.lambda_usd
    assert whole_windows.lambda_usd > 2 * whole.lambda_usd
    assert whole_windows.video_unit > whole.video_unit + 60


def test_the_report_prints_the_table_the_goal_and_each_what_if(
    measurement: Measurement, capsys: pytest.CaptureFixture[str]
) -> None:
    report_measurement(measurement)
    report_projection(measurement, Assumptions())

    printed = capsys.readouterr().out
    assert "CPU ratio segmented / unsegmented" in printed
    for media in ("1 min", "10 min", "1 h"):
        assert any(line.startswith(media) for line in printed.splitlines())
    assert "1 h goal: ready < 3 min" in printed
    for what_if in ("without S3 transfer time", "downloaded the whole source", "audio is in ~1 s chunks"):
        assert what_if in printed
