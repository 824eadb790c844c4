"""Segment-parallel renditions in the transcoder: each part encoded and stored on its own, then the stitch joins them
into an MP4 that reads like one continuous encode (real ffmpeg, S3 and the bus in moto)."""

from __future__ import annotations

import copy
import errno
from typing import Any

import boto3
import pytest

from functions.contracts.fanout import Segment
from functions.contracts.media import SegmentPart
from functions.transcode import adapters
from functions.transcode.service import concat_list, part_name, stitch_parts
from tests.functions.conftest import REGION
from tests.functions.transcode.conftest import JOB_ID, OUTPUTS, Harness, fan_out_message, planned
from tests.functions.transcode.test_handler import by_type, keyframe_times
from tests.media_samples import is_faststart, make_video, probe

SECONDS, COUNT = 2, 4  # a 7 s source: three whole 2 s segments and a last one of 1 s


def part_message(message: dict[str, Any], part: SegmentPart, index: int = 0) -> dict[str, Any]:
    body = copy.deepcopy(message)
    body["segment"] = {"part": str(part), "index": index, "count": COUNT, "seconds": SECONDS}
    return body


def parts_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    videos = [part_message(message, SegmentPart.VIDEO, i) for i in range(COUNT)]
    return [*videos, part_message(message, SegmentPart.AUDIO)]


def stored_keys(prefix: str) -> list[str]:
    listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS, Prefix=prefix)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def frame_count(report: dict[str, Any]) -> int:
    return int(next(s for s in report["streams"] if s["codec_type"] == "video")["nb_frames"])


def test_part_names_and_the_concat_list() -> None:
    stitch = Segment(part=SegmentPart.STITCH, count=3, seconds=4)
    parts = stitch_parts(stitch, has_audio=True)
    assert [part_name(part) for part in parts] == ["video-00000.mp4", "video-00001.mp4", "video-00002.mp4", "audio.m4a"]
    assert [part.start_seconds for part in parts[:3]] == [0, 4, 8]
    assert [part_name(part) for part in stitch_parts(stitch, has_audio=False)][-1] == "video-00002.mp4"
    assert concat_list([]) == ""


def test_a_segment_outside_its_rendition_is_refused() -> None:
    with pytest.raises(ValueError, match="segment 4 of 4"):
        Segment(part=SegmentPart.VIDEO, index=4, count=4, seconds=2)


@pytest.mark.media
def test_parts_then_stitch_make_the_same_rendition_as_one_encode(harness: Harness) -> None:
    # GIVEN a 7 s clip with audio, planned at its own size, and the same clip encoded whole for another job
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=7, audio=True)
    whole = fan_out_message("job-whole", source, [planned("720p", 320, 180)])
    assert harness.invoke(whole) == {"batchItemFailures": []}
    reference = probe(harness.download_output("outputs/job-whole/720p.mp4"))
    harness.events.drain()
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])

    # WHEN every part of the segmented rendition is handled, in any order
    parts = parts_of(message)
    assert harness.invoke(*reversed(parts)) == {"batchItemFailures": []}

    # THEN each part is stored under the job's segments prefix and announced once as Segment Completed
    prefix = f"outputs/{JOB_ID}/segments/720p/1/"
    assert stored_keys(prefix) == [f"{prefix}audio.m4a", *(f"{prefix}video-{i:05d}.mp4" for i in range(COUNT))]
    events = harness.events.drain()
    completed = by_type(events, "Segment Completed")
    assert sorted((e["part"], e["index"]) for e in completed) == [("audio", 0)] + [("video", i) for i in range(COUNT)]
    assert by_type(events, "Rendition Completed") == []
    # AND a video part is a closed run of frames starting with a keyframe, without audio
    first = probe(harness.download_output(f"{prefix}video-00001.mp4"))
    assert [s["codec_type"] for s in first["streams"]] == ["video"]
    assert frame_count(first) == SECONDS * 30

    # WHEN the stitch arrives
    assert harness.invoke(part_message(message, SegmentPart.STITCH)) == {"batchItemFailures": []}

    # THEN the rendition is stored and announced as an unsegmented one is, and the parts are gone
    (rendition,) = by_type(harness.events.drain(), "Rendition Completed")
    assert rendition["key"] == f"outputs/{JOB_ID}/720p.mp4"
    assert stored_keys(prefix) == []
    output = harness.download_output(rendition["key"])
    stitched = probe(output)
    assert frame_count(stitched) == frame_count(reference)
    assert [s["codec_type"] for s in stitched["streams"]] == ["video", "audio"]
    assert abs(float(stitched["format"]["duration"]) - float(reference["format"]["duration"])) <= 1 / 30
    assert keyframe_times(output) == [0.0, 2.0, 4.0, 6.0]
    assert is_faststart(output)
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
def test_a_redelivered_part_is_announced_again_without_encoding(harness: Harness) -> None:
    # GIVEN a part that was stored once, whose source is gone since (a second encode would fail)
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=7, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    part = part_message(message, SegmentPart.VIDEO, 2)
    assert harness.invoke(part) == {"batchItemFailures": []}
    harness.events.drain()
    boto3.client("s3", region_name=REGION).delete_object(Bucket="test-uploads", Key=message["source"]["key"])

    # WHEN SQS delivers it again
    assert harness.invoke(part) == {"batchItemFailures": []}

    # THEN only its Segment Completed is announced again
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Segment Completed"]
    assert (events[0]["detail"]["part"], events[0]["detail"]["index"]) == ("video", 2)


@pytest.mark.media
def test_a_stitch_missing_a_part_fails_the_rendition(harness: Harness) -> None:
    # GIVEN every part but the audio
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=7, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    assert harness.invoke(*parts_of(message)[:-1]) == {"batchItemFailures": []}
    harness.events.drain()

    # WHEN the stitch arrives
    assert harness.invoke(part_message(message, SegmentPart.STITCH)) == {"batchItemFailures": []}

    # THEN the rendition fails, saying a part is missing but not where it was looked for
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"]["code"] == "TRANSCODE_FAILED"
    assert "a segment of the rendition is missing" in failed["error"]["message"]
    assert "outputs/" not in failed["error"]["message"]


@pytest.mark.media
def test_a_stitch_that_runs_out_of_storage_fails_the_rendition_as_too_large(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN every part stored, and a /tmp that fills up while the parts are downloaded
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=7, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    assert harness.invoke(*parts_of(message)) == {"batchItemFailures": []}
    harness.events.drain()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(adapters.S3MediaStore, "download_part", full)

    # WHEN the stitch arrives
    assert harness.invoke(part_message(message, SegmentPart.STITCH)) == {"batchItemFailures": []}

    # THEN the rendition fails with a reason the client can act on
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {
        "code": "OUTPUT_TOO_LARGE",
        "message": "the rendition is too large for the function's storage",
    }
