"""The transcode handler end to end against moto: SQS records in, real ffmpeg, outputs read back with ffprobe."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.ffmpeg_runner import FfmpegFailed
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.settings import SettingsError
from functions.transcode import adapters
from tests.functions.conftest import REGION, FakeLambdaContext
from tests.functions.transcode.conftest import (
    JOB_ID,
    OUTPUTS,
    OWNER_ID,
    UPLOADS,
    Harness,
    fan_out_message,
    fixture_body,
    make_odd_sized_video,
    planned,
)
from tests.media_samples import is_faststart, make_video, probe

KEYFRAME_TIMES_OPTIONS = ("-v", "error", "-select_streams", "v:0", "-skip_frame", "nokey")
KEYFRAME_TIMES_OPTIONS += ("-show_entries", "frame=pts_time", "-of", "csv=p=0")


# --- reading the results back -----------------------------------------------------------------------------------


def keyframe_times(path: Path) -> list[float]:
    result = subprocess.run(
        [ffprobe_path(), *KEYFRAME_TIMES_OPTIONS, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=tool_env(),
    )
    return [round(float(line.strip(",")), 3) for line in result.stdout.split()]


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in events if event["detail-type"] == detail_type]


def source_duration_ms(path: Path) -> int:
    return round(float(probe(path)["format"]["duration"]) * 1000)


def assert_is_planned_rendition(
    output: Path, *, width: int, height: int, source: Path, has_audio: bool
) -> dict[str, Any]:
    """Everything the rendition promises, read back from the file; returns its ffprobe report."""
    report = probe(output)
    video = [s for s in report["streams"] if s["codec_type"] == "video"]
    audio = [s for s in report["streams"] if s["codec_type"] == "audio"]
    assert len(video) == 1
    assert (video[0]["codec_name"], video[0]["profile"], video[0]["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert not video[0].get("side_data_list"), "the output must be stored upright, without a display matrix"
    assert (video[0]["width"], video[0]["height"]) == (width, height)
    assert video[0].get("sample_aspect_ratio", "1:1") == "1:1"
    assert abs(round(float(report["format"]["duration"]) * 1000) - source_duration_ms(source)) <= 100
    assert is_faststart(output)
    assert [s["codec_name"] for s in audio] == (["aac"] if has_audio else [])
    # One keyframe every 2 s of video, and no others (no scene-cut keyframes).
    video_seconds = float(video[0]["duration"])
    assert keyframe_times(output) == [float(t) for t in range(0, math.ceil(video_seconds), 2)]
    return report


# --- real ffmpeg ----------------------------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize(("name", "width", "height"), [("720p", 1280, 720), ("1080p", 1920, 1080)])
def test_landscape_1080p_with_audio_becomes_the_planned_rendition(
    harness: Harness, name: str, width: int, height: int
) -> None:
    # GIVEN the function for `name` and a 2 s 1080p upload with audio, planned for 720p and 1080p
    harness.use_rendition(name, height)
    source = make_video(harness.tmp / "landscape.mp4", width=1920, height=1080, seconds=2, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 1280, 720), planned("1080p", 1920, 1080)])

    # WHEN its SQS record is handled
    response = harness.invoke(message)

    # THEN the record succeeded, the rendition is in the outputs bucket, and it reads back as planned
    assert response == {"batchItemFailures": []}
    key = f"outputs/{JOB_ID}/{name}.mp4"
    output = harness.download_output(key)
    report = assert_is_planned_rendition(output, width=width, height=height, source=source, has_audio=True)
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=OUTPUTS, Key=key)
    assert head["ContentType"] == "video/mp4"
    duration_ms = round(float(report["format"]["duration"]) * 1000)
    assert head["Metadata"] == {
        "job-id": JOB_ID,
        "rendition": name,
        "width": str(width),
        "height": str(height),
        "duration-ms": str(duration_ms),
    }
    # AND the bus heard Progress 0 first, at most the quarter milestones, then exactly one Completed
    events = harness.events.drain()
    progress = by_type(events, "Rendition Progress")
    assert progress[0] == {"jobId": JOB_ID, "ownerId": OWNER_ID, "rendition": name, "percent": 0}
    percents = [p["percent"] for p in progress]
    assert percents == sorted(set(percents))
    assert set(percents) <= {0, 25, 50, 75}
    assert by_type(events, "Rendition Completed") == [
        {
            "jobId": JOB_ID,
            "ownerId": OWNER_ID,
            "rendition": name,
            "engine": "lambda",
            "bucket": OUTPUTS,
            "key": key,
            "width": width,
            "height": height,
            "durationMs": duration_ms,
            "bytes": head["ContentLength"],
            "contentType": "video/mp4",
        }
    ]
    assert len(events) == len(progress) + 1
    # AND the per-message working directory is gone
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
@pytest.mark.parametrize(
    ("clip", "video"),
    [
        ("rotated", {"width": 640, "height": 360, "rotation": 90}),
        ("coded-portrait", {"width": 360, "height": 640}),
    ],
)
def test_portrait_sources_come_out_upright_at_the_planned_portrait_size(
    harness: Harness, clip: str, video: dict[str, int]
) -> None:
    # GIVEN a portrait phone clip (landscape frames + 90 degree display matrix, or portrait frames), planned 270x480
    harness.use_rendition("480p", 480)
    source = make_video(harness.tmp / f"{clip}.mp4", seconds=2, audio=True, **video)
    message = fan_out_message(JOB_ID, source, [planned("480p", 270, 480)])
    assert (message["probe"]["width"], message["probe"]["height"]) == (360, 640)

    # WHEN it is transcoded
    response = harness.invoke(message)

    # THEN the output is stored as upright portrait frames, 270x480, with no rotation left to apply
    assert response == {"batchItemFailures": []}
    output = harness.download_output(f"outputs/{JOB_ID}/480p.mp4")
    assert_is_planned_rendition(output, width=270, height=480, source=source, has_audio=True)
    (completed,) = by_type(harness.events.drain(), "Rendition Completed")
    assert (completed["width"], completed["height"]) == (270, 480)


@pytest.mark.media
def test_source_without_audio_gives_a_rendition_without_audio(harness: Harness) -> None:
    source = make_video(harness.tmp / "silent.mp4", width=1280, height=720, seconds=2, audio=False)
    message = fan_out_message(JOB_ID, source, [planned("720p", 1280, 720)])

    response = harness.invoke(message)

    assert response == {"batchItemFailures": []}
    output = harness.download_output(f"outputs/{JOB_ID}/720p.mp4")
    assert_is_planned_rendition(output, width=1280, height=720, source=source, has_audio=False)
    assert len(by_type(harness.events.drain(), "Rendition Completed")) == 1


@pytest.mark.media
def test_odd_sized_source_is_scaled_to_the_even_planned_size(harness: Harness) -> None:
    # GIVEN an 853x479 4:4:4 source planned at 640x360
    source = make_odd_sized_video(harness.tmp / "odd.mp4")
    message = fan_out_message(JOB_ID, source, [planned("720p", 640, 360)])
    assert (message["probe"]["width"], message["probe"]["height"]) == (853, 479)

    response = harness.invoke(message)

    # THEN the output is 640x360, 4:2:0, High profile
    assert response == {"batchItemFailures": []}
    output = harness.download_output(f"outputs/{JOB_ID}/720p.mp4")
    assert_is_planned_rendition(output, width=640, height=360, source=source, has_audio=True)
    assert len(by_type(harness.events.drain(), "Rendition Completed")) == 1


@pytest.mark.media
def test_mpegts_source_is_read_with_the_demuxer_ingest_detected(harness: Harness) -> None:
    # GIVEN a broadcast-style MPEG-TS upload (whose demuxer converts service names with iconv)
    clip = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=2, audio=True)
    source = harness.tmp / "clip.ts"
    remux = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy", "-f", "mpegts"]
    subprocess.run([*remux, str(source)], check=True, env=tool_env())
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    assert message["probe"]["formatName"] == "mpegts"

    response = harness.invoke(message)

    assert response == {"batchItemFailures": []}
    output = harness.download_output(f"outputs/{JOB_ID}/720p.mp4")
    assert_is_planned_rendition(output, width=320, height=180, source=source, has_audio=True)


@pytest.mark.media
def test_480p_source_is_encoded_at_its_own_planned_size(harness: Harness) -> None:
    harness.use_rendition("480p", 480)
    source = make_video(harness.tmp / "sd.mp4", width=854, height=480, seconds=2, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("480p", 854, 480)])

    response = harness.invoke(message)

    assert response == {"batchItemFailures": []}
    output = harness.download_output(f"outputs/{JOB_ID}/480p.mp4")
    assert_is_planned_rendition(output, width=854, height=480, source=source, has_audio=True)
    (completed,) = by_type(harness.events.drain(), "Rendition Completed")
    assert (completed["width"], completed["height"]) == (854, 480)


@pytest.mark.media
@pytest.mark.parametrize(("fps", "expected"), [(25, [0.0, 2.0, 4.0, 6.0]), (24, [0.0, 2.0, 4.0])])
def test_keyframes_fall_every_two_seconds(harness: Harness, fps: int, expected: list[float]) -> None:
    # GIVEN a longer clip, so there are several GOPs to look at
    source = make_video(
        harness.tmp / "long.mp4", width=320, height=180, seconds=expected[-1] + 0.5, audio=False, fps=fps
    )
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])

    response = harness.invoke(message)

    # THEN every keyframe, and only those, sits on the 2 s grid
    assert response == {"batchItemFailures": []}
    assert keyframe_times(harness.download_output(f"outputs/{JOB_ID}/720p.mp4")) == expected


@pytest.mark.media
def test_corrupt_source_fails_the_rendition_without_a_retry(harness: Harness) -> None:
    # GIVEN an upload whose index is missing (the first third of an MP4 that keeps its moov at the end)
    whole = make_video(harness.tmp / "whole.mp4", width=320, height=180, seconds=2, audio=True)
    message = fan_out_message(JOB_ID, whole, [planned("720p", 320, 180)])
    truncated = harness.tmp / "truncated.mp4"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    boto3.client("s3", region_name=REGION).upload_file(str(truncated), UPLOADS, message["source"]["key"])

    # WHEN it is handled
    response = harness.invoke(message)

    # THEN the record is consumed (a retry would fail the same way) and the rendition failed with ffmpeg's reason
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    (failed,) = by_type(events, "Rendition Failed")
    assert failed["error"]["code"] == "TRANSCODE_FAILED"
    assert "moov atom not found" in failed["error"]["message"]
    assert str(harness.work) not in failed["error"]["message"]
    assert len(failed["error"]["message"]) <= 500
    assert {k: v for k, v in failed.items() if k != "error"} == {
        "jobId": JOB_ID,
        "ownerId": OWNER_ID,
        "rendition": "720p",
        "engine": "lambda",
    }
    assert by_type(events, "Rendition Completed") == []
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS)
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
def test_redelivered_message_reannounces_the_uploaded_rendition_without_encoding(harness: Harness) -> None:
    # GIVEN a message that was handled once
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=2, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    assert harness.invoke(message) == {"batchItemFailures": []}
    (first,) = by_type(harness.events.drain(), "Rendition Completed")
    s3 = boto3.client("s3", region_name=REGION)
    etag = s3.head_object(Bucket=OUTPUTS, Key=first["key"])["ETag"]
    # AND whose source is gone since, so a second encode would fail
    s3.delete_object(Bucket=UPLOADS, Key=message["source"]["key"])

    # WHEN SQS delivers it again
    response = harness.invoke(message)

    # THEN the same Completed is announced from the object's metadata, and nothing else happens
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Completed"]
    assert events[0]["detail"] == first
    assert s3.head_object(Bucket=OUTPUTS, Key=first["key"])["ETag"] == etag


@pytest.mark.media
def test_batch_reports_only_the_records_that_should_be_retried(harness: Harness) -> None:
    # GIVEN a batch: a good message, a body that is not a fan-out message, and a good message of another job
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=2, audio=False)
    good = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    other = fan_out_message("job-2", source, [planned("720p", 320, 180)])

    response = harness.invoke(good, '{"jobId": "job-3"}', other)

    # THEN only the malformed record goes back to the queue (and on to the DLQ); both jobs completed
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}
    completed = by_type(harness.events.drain(), "Rendition Completed")
    assert sorted(c["jobId"] for c in completed) == [JOB_ID, "job-2"]


@pytest.mark.media
def test_upload_errors_return_the_record_to_the_queue(harness: Harness) -> None:
    # GIVEN an outputs bucket that goes away while the rendition is being encoded, so the upload is refused
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=2, audio=False)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    read_output_back = adapters.probe_file

    def bucket_gone_before_upload(path: Path, **options: Any) -> dict[str, Any]:
        boto3.client("s3", region_name=REGION).delete_bucket(Bucket=OUTPUTS)
        return read_output_back(path, **options)

    harness.monkeypatch.setattr(adapters, "probe_file", bucket_gone_before_upload)

    response = harness.invoke(message)

    # THEN the record is retried, nothing claims the rendition ended, and the encode's files are gone
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    events = harness.events.drain()
    assert {e["detail-type"] for e in events} == {"Rendition Progress"}
    assert list(harness.work.iterdir()) == []


# --- paths that never reach ffmpeg -------------------------------------------------------------------------------


def test_message_that_does_not_plan_this_rendition_is_dropped(harness: Harness) -> None:
    # GIVEN the 720p function and a message that plans only 1080p (e.g. 720p was SKIPPED: no upscaling)
    body = fixture_body()
    body["renditions"] = [r for r in body["renditions"] if r["name"] == "1080p"]

    response = harness.invoke(body)

    # THEN the record is consumed and nothing is announced or written
    assert response == {"batchItemFailures": []}
    assert harness.events.drain() == []
    assert "Contents" not in boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS)


def test_missing_source_fails_the_rendition_without_naming_where_it_was(harness: Harness) -> None:
    # GIVEN the fixture's message, whose upload is not in the bucket
    response = harness.invoke(fixture_body())

    # THEN the rendition fails, saying what happened in words a client may read: no bucket, no key
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Failed"]
    assert events[1]["detail"]["error"] == {"code": "TRANSCODE_FAILED", "message": "the upload is no longer available"}


@pytest.mark.media
def test_source_is_read_only_while_it_is_the_object_ingest_validated(harness: Harness) -> None:
    # GIVEN a message naming the ETag of the upload ingest validated
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=2, audio=True)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    s3 = boto3.client("s3", region_name=REGION)
    message["source"]["etag"] = s3.head_object(Bucket=UPLOADS, Key=message["source"]["key"])["ETag"].strip('"')

    # WHEN it is delivered while the upload is still that object
    response = harness.invoke(message)

    # THEN the rendition is made from it
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert {e["detail-type"] for e in events[:-1]} == {"Rendition Progress"}
    assert events[-1]["detail-type"] == "Rendition Completed"


def test_source_replaced_after_validation_fails_the_rendition_without_encoding_it(harness: Harness) -> None:
    # GIVEN a message naming the ETag of the upload ingest validated
    s3 = boto3.client("s3", region_name=REGION)
    body = fixture_body()
    key = body["source"]["key"]
    s3.put_object(Bucket=UPLOADS, Key=key, Body=b"the file ingest validated")
    body["source"]["etag"] = s3.head_object(Bucket=UPLOADS, Key=key)["ETag"].strip('"')
    # AND a second POST of the still valid upload form that replaced it with a file nobody validated
    s3.put_object(Bucket=UPLOADS, Key=key, Body=b"#EXTM3U\n#EXTINF:1,\nfile:///proc/self/environ\n")

    # WHEN the message is delivered
    response = harness.invoke(body)

    # THEN the unvalidated file is not encoded: the rendition fails SOURCE_REPLACED (not TRANSCODE_FAILED: the
    # upload, not the media, is at fault), in the words submit uses, naming no bucket or key; nothing is written
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Failed"]
    assert events[1]["detail"]["error"] == {
        "code": "SOURCE_REPLACED",
        "message": "the upload was replaced after it was validated",
    }
    assert "Contents" not in s3.list_objects_v2(Bucket=OUTPUTS)


def test_a_validated_source_deleted_since_fails_the_rendition_as_missing_not_replaced(harness: Harness) -> None:
    # GIVEN a message naming the ETag of the upload ingest validated, which has been deleted since
    s3 = boto3.client("s3", region_name=REGION)
    body = fixture_body()
    key = body["source"]["key"]
    s3.put_object(Bucket=UPLOADS, Key=key, Body=b"the file ingest validated")
    body["source"]["etag"] = s3.head_object(Bucket=UPLOADS, Key=key)["ETag"].strip('"')
    s3.delete_object(Bucket=UPLOADS, Key=key)

    assert harness.invoke(body) == {"batchItemFailures": []}

    # THEN the rendition fails as it always did for a missing source, in words that name no bucket or key
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {"code": "TRANSCODE_FAILED", "message": "the upload is no longer available"}


@pytest.mark.media
def test_ffmpegs_reason_reaches_the_client_without_a_local_path(harness: Harness) -> None:
    # GIVEN an ffmpeg that refuses the input, naming its working files and files of its own install
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=1, audio=False)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])

    def refusing(args: list[str], **options: Any) -> str:
        work = Path(next(arg for arg in args if arg.endswith("/source"))).parent
        stderr = (
            f"{work}/source: Invalid data found when processing input\n"
            "Unable to open /usr/share/ffmpeg/libx264-veryfast.ffpreset\n"
            f"Error opening output file {work}/720p.mp4."
        )
        raise FfmpegFailed(1, stderr)

    harness.monkeypatch.setattr(adapters, "run_process", refusing)

    # WHEN the message is handled
    assert harness.invoke(message) == {"batchItemFailures": []}

    # THEN the rendition fails with ffmpeg's reason, and no path of the function's machine
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {
        "code": "TRANSCODE_FAILED",
        "message": "source: Invalid data found when processing input\n"
        "Unable to open libx264-veryfast.ffpreset\n"
        "Error opening output file 720p.mp4.",
    }


@pytest.mark.media
def test_an_output_ffprobe_cannot_read_is_reported_without_a_local_path(harness: Harness) -> None:
    # GIVEN an encode that leaves a file ffprobe cannot read
    source = make_video(harness.tmp / "clip.mp4", width=320, height=180, seconds=1, audio=False)
    message = fan_out_message(JOB_ID, source, [planned("720p", 320, 180)])
    encode = adapters.run_process

    def encode_then_spoil(args: list[str], **options: Any) -> str:
        encode(args, **options)
        Path(next(arg for arg in args if arg.endswith("720p.mp4"))).write_bytes(b"not a video\n" * 100)
        return ""

    harness.monkeypatch.setattr(adapters, "run_process", encode_then_spoil)

    # WHEN the message is handled
    assert harness.invoke(message) == {"batchItemFailures": []}

    # THEN the rendition fails OUTPUT_INVALID, naming the file but not the folder it was made in
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"]["code"] == "OUTPUT_INVALID"
    assert "720p.mp4" in failed["error"]["message"]
    assert str(harness.tmp) not in failed["error"]["message"]
    assert "/tmp/" not in failed["error"]["message"]


class AlmostOutOfTime(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def test_too_little_time_left_returns_the_record_to_the_queue(harness: Harness) -> None:
    # GIVEN an invocation with 20 s left: less than the 30 s kept for the upload plus the shortest useful encode
    source = harness.tmp / "source.bin"
    source.write_bytes(b"\x00" * 1024)
    boto3.client("s3", region_name=REGION).upload_file(str(source), UPLOADS, f"uploads/{JOB_ID}/source")

    response = harness.invoke(fixture_body(), context=AlmostOutOfTime())

    # THEN the record is retried rather than failed, before anything was announced or downloaded
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.events.drain() == []
    assert not harness.work.exists() or list(harness.work.iterdir()) == []


def test_event_bus_errors_return_the_record_to_the_queue(harness: Harness) -> None:
    # GIVEN a bus that does not exist (as good as EventBridge refusing the put)
    harness.monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")

    response = harness.invoke(fixture_body())

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.events.drain() == []


def test_misconfigured_function_fails_the_whole_batch(harness: Harness) -> None:
    harness.monkeypatch.delenv("RENDITION")

    with pytest.raises(SettingsError, match="RENDITION is not set"):
        harness.invoke(fixture_body())
    assert harness.events.drain() == []


def test_working_directories_left_by_a_killed_invocation_are_removed(harness: Harness) -> None:
    # GIVEN a warm sandbox whose previous invocation hit the Lambda timeout mid-encode
    stale = harness.work / "transcode-k1ll3d"
    stale.mkdir(parents=True)
    (stale / "source").write_bytes(b"\x00" * 4096)
    unrelated = harness.work / "something-else"
    unrelated.mkdir()
    body = fixture_body()
    body["renditions"] = []

    harness.invoke(body)

    # THEN its working directory is gone, and nothing else was touched
    assert list(harness.work.iterdir()) == [unrelated]
