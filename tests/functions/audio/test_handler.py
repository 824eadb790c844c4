"""The audio handler end to end against moto: SQS records in, real ffmpeg and Pillow, outputs read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from functions.audio import adapters
from functions.common.settings import SettingsError
from functions.contracts.fanout import FanOutMessage, PlannedRendition
from tests.functions.audio.conftest import (
    AUDIO_UNIT,
    CONTAINERS,
    JOB_ID,
    LOUD_DB,
    OUTPUTS,
    OWNER_ID,
    QUIET_DB,
    TARGET_LUFS,
    UPLOADS,
    WAVEFORM_UNIT,
    Harness,
    add_cover_art,
    by_type,
    column_extents,
    integrated_loudness,
    job_message,
    make_tone,
    run_ffmpeg,
    upload,
)
from tests.functions.conftest import REGION, FakeLambdaContext
from tests.media_samples import is_faststart, probe

AUDIO_KEY = f"outputs/{JOB_ID}/audio.m4a"
WAVEFORM_KEY = f"outputs/{JOB_ID}/waveform.png"


def seconds_of(path: Path) -> float:
    return float(probe(path)["format"]["duration"])


def assert_is_the_aac_rendition(output: Path, source: Path, *, sample_rate: int, channels: int) -> dict[str, Any]:
    """What the audio unit promises, read back with ffprobe; returns the report."""
    report = probe(output)
    assert [s["codec_type"] for s in report["streams"]] == ["audio"], "no cover art, video or data streams"
    (audio,) = report["streams"]
    assert (audio["codec_name"], audio.get("profile")) == ("aac", "LC")
    assert (int(audio["sample_rate"]), audio["channels"]) == (sample_rate, channels)
    assert abs(float(report["format"]["duration"]) - seconds_of(source)) <= 0.1
    assert "mp4" in report["format"]["format_name"]
    assert is_faststart(output)
    return report


# --- the AAC rendition --------------------------------------------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize("level", ["loud", "quiet"])
@pytest.mark.parametrize("container", list(CONTAINERS))
def test_every_container_becomes_aac_at_the_target_loudness(harness: Harness, container: str, level: str) -> None:
    # GIVEN a 4 s tone in `container`, far above or far below the target loudness
    source = make_tone(harness.tmp / "tone", container, gain_db=LOUD_DB if level == "loud" else QUIET_DB)
    before = integrated_loudness(source)
    assert abs(before - TARGET_LUFS) > 15, before
    message = job_message(source, [AUDIO_UNIT])
    assert message.probe.formatName is not None

    # WHEN its audio unit is handled
    response = harness.invoke(*message.per_unit())

    # THEN the record succeeded, and the output is AAC in MP4 at the source's rate, duration and channels
    assert response == {"batchItemFailures": []}
    output = harness.download_output(AUDIO_KEY)
    spec = CONTAINERS[container]
    report = assert_is_the_aac_rendition(output, source, sample_rate=spec["rate"], channels=spec["channels"])
    # AND it is loudness-normalised to the target, within 1 LU
    assert abs(integrated_loudness(output) - TARGET_LUFS) <= 1.0
    # AND the bus heard Progress 0, then Completed with what a player needs to know
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Completed"]
    assert events[0]["detail"] == {"jobId": JOB_ID, "ownerId": OWNER_ID, "rendition": "audio", "percent": 0}
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=OUTPUTS, Key=AUDIO_KEY)
    assert head["ContentType"] == "audio/mp4"
    assert events[1]["detail"] == {
        "jobId": JOB_ID,
        "ownerId": OWNER_ID,
        "rendition": "audio",
        "engine": "audio",
        "bucket": OUTPUTS,
        "key": AUDIO_KEY,
        "width": None,
        "height": None,
        "durationMs": round(float(report["format"]["duration"]) * 1000),
        "bytes": head["ContentLength"],
        "contentType": "audio/mp4",
    }
    assert harness.output_keys() == [AUDIO_KEY]
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
@pytest.mark.parametrize("target", [-16.0, -30.0])
def test_the_configured_target_is_the_one_reached(harness: Harness, target: float) -> None:
    harness.monkeypatch.setenv("LOUDNESS_TARGET_LUFS", f"{target:g}")
    source = make_tone(harness.tmp / "tone", "wav")

    assert harness.invoke(*job_message(source, [AUDIO_UNIT]).per_unit()) == {"batchItemFailures": []}

    assert abs(integrated_loudness(harness.download_output(AUDIO_KEY)) - target) <= 1.0


@pytest.mark.media
def test_the_bitrate_is_the_units(harness: Harness) -> None:
    source = make_tone(harness.tmp / "tone", "wav", seconds=6)
    unit = AUDIO_UNIT.model_copy(update={"audioBitrateKbps": 64})

    assert harness.invoke(*job_message(source, [unit]).per_unit()) == {"batchItemFailures": []}

    (audio,) = probe(harness.download_output(AUDIO_KEY))["streams"]
    assert int(audio["bit_rate"]) <= 64_000 * 1.1


@pytest.mark.media
def test_cover_art_and_tags_are_left_out(harness: Harness) -> None:
    # GIVEN an MP3 with an embedded picture and a title tag
    tagged = make_tone(harness.tmp / "tone", "mp3")
    source = add_cover_art(tagged, harness.tmp)
    assert [s["codec_type"] for s in probe(source)["streams"]] == ["audio", "video"]

    assert harness.invoke(*job_message(source, [AUDIO_UNIT]).per_unit()) == {"batchItemFailures": []}

    # THEN the rendition has the audio stream only
    output = harness.download_output(AUDIO_KEY)
    assert_is_the_aac_rendition(output, source, sample_rate=44100, channels=2)


@pytest.mark.media
def test_surround_is_downmixed_to_stereo_before_it_is_measured(harness: Harness) -> None:
    # GIVEN a 5.1 WAV
    source = harness.tmp / "surround.wav"
    surround = "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0"
    tone = make_tone(harness.tmp / "mono", "flac")
    run_ffmpeg("-loglevel", "error", "-y", "-i", str(tone), "-af", surround, "-c:a", "pcm_s16le", str(source))
    assert probe(source)["streams"][0]["channels"] == 6

    assert harness.invoke(*job_message(source, [AUDIO_UNIT]).per_unit()) == {"batchItemFailures": []}

    # THEN the rendition is stereo, and it is the stereo mix that is at the target
    output = harness.download_output(AUDIO_KEY)
    assert_is_the_aac_rendition(output, source, sample_rate=44100, channels=2)
    assert abs(integrated_loudness(output) - TARGET_LUFS) <= 1.0


@pytest.mark.media
def test_silence_is_encoded_without_normalising_it(harness: Harness) -> None:
    source = make_tone(harness.tmp / "silence", "wav", silent=True)

    assert harness.invoke(*job_message(source, [AUDIO_UNIT]).per_unit()) == {"batchItemFailures": []}

    output = harness.download_output(AUDIO_KEY)
    assert_is_the_aac_rendition(output, source, sample_rate=48000, channels=2)
    assert integrated_loudness(output) <= -70
    assert [e["detail-type"] for e in harness.events.drain()] == ["Rendition Progress", "Rendition Completed"]


# --- the waveform -------------------------------------------------------------------------------------------------


def read_png(path: Path) -> tuple[str | None, tuple[int, int], str]:
    with Image.open(path) as image:
        return image.format, image.size, image.mode


@pytest.mark.media
@pytest.mark.parametrize("container", ["mp3", "opus", "flac"])
def test_a_tone_draws_a_full_waveform_of_the_planned_size(harness: Harness, container: str) -> None:
    # GIVEN a steady tone (peaking at -18 dBFS)
    source = make_tone(harness.tmp / "tone", container)

    # WHEN its waveform unit is handled
    response = harness.invoke(*job_message(source, [WAVEFORM_UNIT]).per_unit())

    # THEN the PNG has the planned size, and every column holds a bar filling nearly the whole height
    assert response == {"batchItemFailures": []}
    png = harness.download_output(WAVEFORM_KEY)
    assert read_png(png) == ("PNG", (1800, 280), "RGBA")
    extents = column_extents(png)
    assert None not in extents
    for top, bottom in filter(None, extents):
        assert bottom - top + 1 >= 0.9 * 280
        # AND the bars are symmetric about the middle
        assert abs((top + bottom) / 2 - 139.5) <= 1
    # AND the bus heard Progress 0 then Completed, with the size and the bytes
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Completed"]
    head = boto3.client("s3", region_name=REGION).head_object(Bucket=OUTPUTS, Key=WAVEFORM_KEY)
    assert head["ContentType"] == "image/png"
    assert events[1]["detail"] == {
        "jobId": JOB_ID,
        "ownerId": OWNER_ID,
        "rendition": "waveform",
        "engine": "audio",
        "bucket": OUTPUTS,
        "key": WAVEFORM_KEY,
        "width": 1800,
        "height": 280,
        "durationMs": None,
        "bytes": head["ContentLength"],
        "contentType": "image/png",
    }
    assert harness.output_keys() == [WAVEFORM_KEY]


@pytest.mark.media
def test_the_waveform_follows_the_level_of_the_samples(harness: Harness) -> None:
    # GIVEN a tone whose second half is 20 dB (a tenth in amplitude) quieter than its first
    source = make_tone(harness.tmp / "step", "wav", seconds=4, volume="if(lt(t,2),1,0.1)")

    assert harness.invoke(*job_message(source, [WAVEFORM_UNIT]).per_unit()) == {"batchItemFailures": []}

    # THEN the left half is drawn full height and the right half about a tenth of it, in the middle
    extents = column_extents(harness.download_output(WAVEFORM_KEY))
    heights = [bottom - top + 1 for top, bottom in filter(None, extents)]
    assert len(heights) == 1800
    assert min(heights[:850]) >= 0.9 * 280
    assert all(0.05 * 280 <= h <= 0.15 * 280 for h in heights[950:])


@pytest.mark.media
def test_silence_draws_a_flat_line(harness: Harness) -> None:
    source = make_tone(harness.tmp / "silence", "flac", silent=True)

    assert harness.invoke(*job_message(source, [WAVEFORM_UNIT]).per_unit()) == {"batchItemFailures": []}

    png = harness.download_output(WAVEFORM_KEY)
    assert read_png(png) == ("PNG", (1800, 280), "RGBA")
    assert set(column_extents(png)) == {(140, 140)}


@pytest.mark.media
def test_a_waveform_of_another_size_is_drawn_at_that_size(harness: Harness) -> None:
    source = make_tone(harness.tmp / "tone", "wav", seconds=1)
    unit = WAVEFORM_UNIT.model_copy(update={"width": 600, "height": 100})

    assert harness.invoke(*job_message(source, [unit]).per_unit()) == {"batchItemFailures": []}

    png = harness.download_output(WAVEFORM_KEY)
    assert read_png(png)[1] == (600, 100)
    assert all(extent is not None for extent in column_extents(png))


# --- both units, redelivery ---------------------------------------------------------------------------------------


@pytest.mark.media
def test_both_units_of_a_job_in_one_batch(harness: Harness) -> None:
    source = make_tone(harness.tmp / "tone", "m4a")
    audio, waveform = job_message(source).per_unit()

    assert harness.invoke(audio, waveform) == {"batchItemFailures": []}

    assert harness.output_keys() == [AUDIO_KEY, WAVEFORM_KEY]
    completed = by_type(harness.events.drain(), "Rendition Completed")
    assert sorted(c["rendition"] for c in completed) == ["audio", "waveform"]


@pytest.mark.media
def test_redelivered_units_reannounce_their_outputs_without_redoing_them(harness: Harness) -> None:
    # GIVEN both units handled once
    source = make_tone(harness.tmp / "tone", "mp3")
    message = job_message(source)
    assert harness.invoke(*message.per_unit()) == {"batchItemFailures": []}
    first = sorted(by_type(harness.events.drain(), "Rendition Completed"), key=lambda c: c["rendition"])
    s3 = boto3.client("s3", region_name=REGION)
    etags = [s3.head_object(Bucket=OUTPUTS, Key=key)["ETag"] for key in (AUDIO_KEY, WAVEFORM_KEY)]
    # AND the upload gone since, so doing either again would fail
    s3.delete_object(Bucket=UPLOADS, Key=message.source.key)

    # WHEN SQS delivers both again
    response = harness.invoke(*message.per_unit())

    # THEN the same Completed events are announced from the objects' metadata, and nothing else happens
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Completed", "Rendition Completed"]
    assert sorted((e["detail"] for e in events), key=lambda c: c["rendition"]) == first
    assert [s3.head_object(Bucket=OUTPUTS, Key=key)["ETag"] for key in (AUDIO_KEY, WAVEFORM_KEY)] == etags
    assert harness.output_keys() == [AUDIO_KEY, WAVEFORM_KEY]


@pytest.mark.media
def test_an_output_made_to_another_plan_is_made_again(harness: Harness) -> None:
    # GIVEN the audio unit made for a -23 LUFS target
    source = make_tone(harness.tmp / "tone", "wav")
    message = job_message(source, [AUDIO_UNIT])
    assert harness.invoke(*message.per_unit()) == {"batchItemFailures": []}
    harness.events.drain()

    # WHEN it is delivered again to a function now configured for -16
    harness.monkeypatch.setenv("LOUDNESS_TARGET_LUFS", "-16")
    assert harness.invoke(*message.per_unit()) == {"batchItemFailures": []}

    # THEN it was made again, at -16
    assert [e["detail-type"] for e in harness.events.drain()] == ["Rendition Progress", "Rendition Completed"]
    assert abs(integrated_loudness(harness.download_output(AUDIO_KEY)) + 16) <= 1.0


# --- the source, and media that cannot be processed -----------------------------------------------------------


@pytest.mark.media
@pytest.mark.parametrize("unit", [AUDIO_UNIT, WAVEFORM_UNIT], ids=["audio", "waveform"])
def test_source_replaced_after_validation_fails_the_unit_without_reading_it(harness: Harness, unit: Any) -> None:
    # GIVEN a message naming the ETag of the upload ingest validated
    source = make_tone(harness.tmp / "tone", "wav", seconds=1)
    message = job_message(source, [unit])
    # AND a second POST of the still valid upload form that replaced it with a file nobody validated
    replacement = make_tone(harness.tmp / "other", "wav", seconds=2)
    boto3.client("s3", region_name=REGION).upload_file(str(replacement), UPLOADS, message.source.key)

    response = harness.invoke(*message.per_unit())

    # THEN the unit fails SOURCE_REPLACED (a retry would fail the same way), and nothing is written
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Failed"]
    assert events[1]["detail"] == {
        "jobId": JOB_ID,
        "ownerId": OWNER_ID,
        "rendition": unit.name,
        "engine": "audio",
        "error": {"code": "SOURCE_REPLACED", "message": "the upload was replaced after it was validated"},
    }
    assert harness.output_keys() == []
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
def test_deleted_source_fails_the_unit_as_replaced(harness: Harness) -> None:
    source = make_tone(harness.tmp / "tone", "wav", seconds=1)
    message = job_message(source, [AUDIO_UNIT])
    boto3.client("s3", region_name=REGION).delete_object(Bucket=UPLOADS, Key=message.source.key)

    assert harness.invoke(*message.per_unit()) == {"batchItemFailures": []}

    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {"code": "SOURCE_REPLACED", "message": "the upload is no longer available"}


@pytest.mark.media
@pytest.mark.parametrize("unit", [AUDIO_UNIT, WAVEFORM_UNIT], ids=["audio", "waveform"])
def test_media_that_cannot_be_decoded_fails_the_unit_without_a_retry(harness: Harness, unit: Any) -> None:
    # GIVEN a message for an MP3 whose upload (the one ingest validated, by its ETag) is not audio at all
    tone = make_tone(harness.tmp / "tone", "mp3", seconds=1)
    garbage = harness.tmp / "garbage.mp3"
    garbage.write_bytes(b"this is not audio\n" * 2000)
    message = job_message(garbage, [unit], probed=tone)

    response = harness.invoke(*message.per_unit())

    # THEN the record is consumed and the unit failed with ffmpeg's reason, without the working directory's path
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [e["detail-type"] for e in events] == ["Rendition Progress", "Rendition Failed"]
    error = events[1]["detail"]["error"]
    assert error["code"] == "AUDIO_PROCESSING_FAILED"
    assert error["message"] and len(error["message"]) <= 500
    assert str(harness.work) not in error["message"]
    assert harness.output_keys() == []
    assert list(harness.work.iterdir()) == []


@pytest.mark.media
def test_the_source_is_read_only_with_the_demuxer_ingest_found(harness: Harness) -> None:
    # GIVEN an MP3 upload whose message says ingest found a WAV
    source = make_tone(harness.tmp / "tone", "mp3", seconds=1)
    message = job_message(source, [AUDIO_UNIT], probe_overrides={"formatName": "wav"})

    assert harness.invoke(*message.per_unit()) == {"batchItemFailures": []}

    # THEN ffmpeg is not allowed to read it as an MP3
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"]["code"] == "AUDIO_PROCESSING_FAILED"
    assert harness.output_keys() == []


# --- paths that never reach ffmpeg -------------------------------------------------------------------------------


def fixture_message(units: list[PlannedRendition] | None = None) -> FanOutMessage:
    """A message whose upload (this file) is in the uploads bucket; these tests never get as far as decoding it."""
    return FanOutMessage(
        jobId=JOB_ID,
        ownerId=OWNER_ID,
        source=upload(Path(__file__)),
        probe={"durationMs": 1000, "hasAudio": True, "audioCodec": "mp3", "formatName": "mp3"},
        renditions=units if units is not None else [AUDIO_UNIT],
    )


def test_units_of_other_kinds_are_dropped(harness: Harness) -> None:
    video = PlannedRendition(name="720p", width=1280, height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)

    assert harness.invoke(fixture_message([video])) == {"batchItemFailures": []}

    assert harness.events.drain() == []
    assert harness.output_keys() == []


def test_a_unit_asking_for_another_format_fails(harness: Harness) -> None:
    unit = AUDIO_UNIT.model_copy(update={"format": "mp3"})

    assert harness.invoke(fixture_message([unit])) == {"batchItemFailures": []}

    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {"code": "AUDIO_PROCESSING_FAILED", "message": "a audio unit is made as m4a, not mp3"}


def test_a_source_outside_the_uploads_bucket_is_not_read(harness: Harness) -> None:
    message = fixture_message()
    message = message.model_copy(update={"source": message.source.model_copy(update={"bucket": OUTPUTS})})

    assert harness.invoke(message) == {"batchItemFailures": []}

    # THEN the unit fails, saying why without naming the bucket it was asked to read (the log names it)
    (failed,) = by_type(harness.events.drain(), "Rendition Failed")
    assert failed["error"] == {"code": "AUDIO_PROCESSING_FAILED", "message": "the upload is not in the uploads bucket"}


def test_batch_reports_only_the_records_that_should_be_retried(harness: Harness) -> None:
    # GIVEN a body that is not a fan-out message between two that are (units of another kind: dropped)
    video = PlannedRendition(name="720p", width=1280, height=720)
    good = fixture_message([video])

    response = harness.invoke(good, '{"jobId": "job-3"}', good)

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-1"}]}


class AlmostOutOfTime(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 20_000


def test_too_little_time_left_returns_the_record_to_the_queue(harness: Harness) -> None:
    response = harness.invoke(fixture_message(), context=AlmostOutOfTime())

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.events.drain() == []
    assert not harness.work.exists() or list(harness.work.iterdir()) == []


def test_event_bus_errors_return_the_record_to_the_queue(harness: Harness) -> None:
    harness.monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")

    response = harness.invoke(fixture_message())

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.events.drain() == []


@pytest.mark.media
def test_upload_errors_return_the_record_to_the_queue(harness: Harness) -> None:
    # GIVEN an outputs bucket that goes away while the rendition is being made, so the upload is refused
    source = make_tone(harness.tmp / "tone", "wav", seconds=1)
    read_output_back = adapters.probe_file

    def bucket_gone_before_upload(path: Path, **options: Any) -> dict[str, Any]:
        boto3.client("s3", region_name=REGION).delete_bucket(Bucket=OUTPUTS)
        return read_output_back(path, **options)

    harness.monkeypatch.setattr(adapters, "probe_file", bucket_gone_before_upload)

    response = harness.invoke(*job_message(source, [AUDIO_UNIT]).per_unit())

    # THEN the record is retried, nothing claims the unit ended, and its files are gone
    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert {e["detail-type"] for e in harness.events.drain()} == {"Rendition Progress"}
    assert list(harness.work.iterdir()) == []


def test_misconfigured_function_fails_the_whole_batch(harness: Harness) -> None:
    harness.monkeypatch.setenv("LOUDNESS_TARGET_LUFS", "-3")

    with pytest.raises(SettingsError, match="LOUDNESS_TARGET_LUFS"):
        harness.invoke(fixture_message())
    assert harness.events.drain() == []


def test_working_directories_left_by_a_killed_invocation_are_removed(harness: Harness) -> None:
    stale = harness.work / "audio-k1ll3d"
    stale.mkdir(parents=True)
    (stale / "source").write_bytes(b"\x00" * 4096)
    unrelated = harness.work / "something-else"
    unrelated.mkdir()

    harness.invoke(fixture_message([]))

    assert list(harness.work.iterdir()) == [unrelated]
