"""Segment planning: how long a Lambda job's segments are, which jobs are split at all, and the fan-out of the parts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from functions.ingest.service import (
    MAX_SEGMENTS,
    Engine,
    EngineSetting,
    choose_engine,
    segment_count,
    segment_seconds,
)
from tests.functions.ingest.conftest import NO_FAILURES, Pipeline
from tests.media_samples import make_video

HOUR_MS = 3_600_000


@pytest.mark.parametrize(
    ("duration_ms", "per_second", "target", "expected"),
    [
        (30_000, 1.0, 60, None),  # fits one unit: encoded whole, as before
        (60_000, 1.0, 60, None),
        (60_001, 1.0, 60, 60),  # just over: two segments of 60 s
        (HOUR_MS, 1.23, 60, 48),  # 1 h of 1080p30 at the default estimate: 75 segments of 48 s
        (HOUR_MS, 1.23, 61, 48),
        (20_000, 3.0, 1, 2),  # never below one 2 s GOP
        (4 * HOUR_MS, 10.0, 2, 36),  # at most MAX_SEGMENTS segments
        (0, 1.0, 60, None),
    ],
)
def test_segment_length_is_a_whole_number_of_gops_within_the_target(
    duration_ms: int, per_second: float, target: float, expected: int | None
) -> None:
    seconds = segment_seconds(
        duration_ms=duration_ms, encode_seconds_per_media_second=per_second, target_seconds=target
    )
    assert seconds == expected
    if seconds is not None:
        assert seconds % 2 == 0
        assert 2 <= segment_count(duration_ms, seconds) <= MAX_SEGMENTS


def test_the_last_segment_is_the_shorter_one() -> None:
    assert segment_count(7_000, 2) == 4
    assert segment_count(8_000, 2) == 4
    assert segment_count(8_001, 2) == 5


def test_auto_sends_a_long_source_to_mediaconvert_only_when_the_stack_asks() -> None:
    assert choose_engine(EngineSetting.AUTO, duration_ms=4 * HOUR_MS, threshold_seconds=0) is Engine.LAMBDA
    assert choose_engine(EngineSetting.AUTO, duration_ms=4 * HOUR_MS, threshold_seconds=3600) is Engine.MEDIACONVERT


@pytest.mark.media
def test_a_long_source_is_fanned_out_as_one_message_per_part(
    pipeline: Pipeline, ingest_env: Callable[..., None], tmp_path: Path
) -> None:
    # GIVEN a stack whose unit should take 1 s of encode, at an estimate of about 0.5 s per second of this 240p clip
    ingest_env(
        SEGMENT_TARGET_SECONDS="1", LAMBDA_ENCODE_MEGAPIXELS_PER_VCPU_SECOND="4", MEDIACONVERT_THRESHOLD_SECONDS="0"
    )
    pipeline.create_job()
    clip = make_video(tmp_path / "clip.mp4", width=320, height=240, seconds=7, audio=True)

    # WHEN the 7 s upload arrives
    assert pipeline.upload(clip) == NO_FAILURES

    # THEN its one rendition is planned in four 2 s segments with an audio part
    job = pipeline.job()
    (rendition,) = [r for r in job.renditions.values() if r.status == "QUEUED"]
    assert rendition.segments is not None
    assert (rendition.segments.count, rendition.segments.seconds, rendition.segments.audio) == (4, 2, True)
    assert job.engine == "lambda"
    # AND each part is its own message on the fan-out, routed to that rendition's queue
    messages = pipeline.fanout.drain()
    parts = sorted((m.body["segment"]["part"], m.body["segment"]["index"]) for m in messages)
    assert parts == [("audio", 0), ("video", 0), ("video", 1), ("video", 2), ("video", 3)]
    for message in messages:
        assert message.attributes["renditions"] == [rendition.name]
        assert [r["name"] for r in message.body["renditions"]] == [rendition.name]
        assert message.body["segment"]["count"] == 4
        assert message.body["segment"]["seconds"] == 2
