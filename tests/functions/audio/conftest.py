"""Builders for the audio function's tests: tones in the accepted containers, the messages ingest would publish for
them, SQS events, and readers of the outputs (ffprobe, ebur128, Pillow)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from functions.audio import handler
from functions.common.media_tools import ffmpeg_path, tool_env
from functions.contracts.fanout import FanOutMessage, PlannedRendition, SourceObject
from functions.contracts.jobs import Probe
from functions.contracts.media import UnitKind
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.job_gate_samples import ensure_running
from tests.media_samples import probe

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0AU"
OWNER_ID = "user-1"
UPLOADS, OUTPUTS = "test-uploads", "test-outputs"
TARGET_LUFS = -23.0
AUDIO_UNIT = PlannedRendition(name="audio", kind=UnitKind.AUDIO, format="m4a", audioBitrateKbps=128)
WAVEFORM_UNIT = PlannedRendition(name="waveform", kind=UnitKind.WAVEFORM, format="png", width=1800, height=280)
BASE_ENV = {
    "UPLOADS_BUCKET": "uploads",
    "OUTPUTS_BUCKET": "outputs",
    "EVENT_BUS_NAME": "bus",
    "JOBS_TABLE_NAME": "jobs",
    "LOUDNESS_TARGET_LUFS": "-23",
}

# The containers an audio upload may come in (contracts/media.py ACCEPTED_AUDIO_DEMUXERS), each with the encoder,
# sample rate and channel count its tone is made with.
CONTAINERS: dict[str, dict[str, Any]] = {
    "mp3": {"suffix": ".mp3", "codec": ["-c:a", "libmp3lame", "-b:a", "128k"], "rate": 44100, "channels": 2},
    "m4a": {"suffix": ".m4a", "codec": ["-c:a", "aac", "-b:a", "96k"], "rate": 48000, "channels": 1},
    "adts": {"suffix": ".aac", "codec": ["-c:a", "aac", "-f", "adts"], "rate": 22050, "channels": 2},
    "wav": {"suffix": ".wav", "codec": ["-c:a", "pcm_s16le"], "rate": 48000, "channels": 2},
    "flac": {"suffix": ".flac", "codec": ["-c:a", "flac"], "rate": 44100, "channels": 1},
    "opus": {"suffix": ".opus.ogg", "codec": ["-c:a", "libopus", "-b:a", "96k"], "rate": 48000, "channels": 2},
    "vorbis": {"suffix": ".ogg", "codec": ["-c:a", "libvorbis"], "rate": 44100, "channels": 2},
}

# A sine from ffmpeg's `sine` source peaks at 1/8 of full scale (-18 dBFS): +15 dB makes a loud tone (about
# -7 LUFS), -25 dB a quiet one (about -47 LUFS).
LOUD_DB, QUIET_DB = 15.0, -25.0


def run_ffmpeg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ffmpeg_path(), "-hide_banner", "-nostdin", *args], capture_output=True, text=True, check=True, env=tool_env()
    )


def make_tone(
    path: Path,
    container: str,
    *,
    gain_db: float = 0.0,
    seconds: float = 4.0,
    volume: str | None = None,
    silent: bool = False,
) -> Path:
    """A 440 Hz tone (or digital silence) in `container`, `gain_db` above ffmpeg's default sine level; `volume` is
    a `volume` filter expression evaluated per frame (e.g. a step in level)."""
    spec = CONTAINERS[container]
    rate, channels = spec["rate"], spec["channels"]
    if silent:
        source = f"anullsrc=r={rate}:cl=mono,atrim=duration={seconds}"
    else:
        source = f"sine=frequency=440:sample_rate={rate}:duration={seconds},volume={gain_db}dB"
    if volume is not None:
        source += f",volume='{volume}':eval=frame"
    output = path.with_suffix(spec["suffix"])
    run_ffmpeg(
        "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-ac", str(channels), *spec["codec"], str(output)
    )
    return output


def add_cover_art(source: Path, tmp: Path) -> Path:
    """The MP3 with an attached picture (ID3 APIC), which ffprobe lists as a video stream."""
    cover = tmp / "cover.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(cover)
    output = tmp / "with-cover.mp3"
    run_ffmpeg(
        *("-loglevel", "error", "-y", "-i", str(source), "-i", str(cover), "-map", "0", "-map", "1"),
        *("-c:a", "copy", "-c:v", "png", "-disposition:v", "attached_pic", "-id3v2_version", "3", str(output)),
    )
    return output


def source_probe(path: Path) -> dict[str, Any]:
    """The probe ingest puts in an audio job's fan-out message (docs/CONTRACTS.md "Probe")."""
    report = probe(path)
    audio = next(s for s in report["streams"] if s["codec_type"] == "audio")
    return {
        "durationMs": round(float(report["format"]["duration"]) * 1000),
        "audioCodec": audio["codec_name"],
        "hasAudio": True,
        "formatName": report["format"]["format_name"],
        "bitRate": int(report["format"].get("bit_rate") or 0) or None,
        "sizeBytes": int(report["format"]["size"]),
        "channels": int(audio["channels"]),
        "sampleRate": int(audio["sample_rate"]),
    }


def upload(source: Path, job_id: str = JOB_ID) -> SourceObject:
    """Put `source` where the API would have, and name it (with its ETag) as ingest would."""
    key = f"uploads/{job_id}/source"
    s3 = boto3.client("s3", region_name=REGION)
    s3.upload_file(str(source), UPLOADS, key)
    etag = s3.head_object(Bucket=UPLOADS, Key=key)["ETag"].strip('"')
    return SourceObject(bucket=UPLOADS, key=key, etag=etag)


def job_message(
    source: Path,
    units: list[PlannedRendition] | None = None,
    *,
    job_id: str = JOB_ID,
    probed: Path | None = None,
    probe_overrides: dict[str, Any] | None = None,
) -> FanOutMessage:
    """The audio job's fan-out message, before ingest splits it per unit (`.per_unit()`); its probe is `probed`'s
    (by default the source's), with `probe_overrides`."""
    return FanOutMessage(
        jobId=job_id,
        ownerId=OWNER_ID,
        engine="lambda",
        source=upload(source, job_id),
        probe=Probe(**(source_probe(probed or source) | (probe_overrides or {}))),
        renditions=units if units is not None else [AUDIO_UNIT, WAVEFORM_UNIT],
    )


SQS_RECORD: dict[str, Any] = {
    "messageId": "template",
    "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a/audio/1",
    "body": "{}",
    "attributes": {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": "1730000000000",
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": "1730000000100",
    },
    "messageAttributes": {
        "mediaType": {"stringValue": "audio", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
        "engine": {"stringValue": "lambda", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
    },
    "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
    "eventSource": "aws:sqs",
    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:dev-audio",
    "awsRegion": "us-east-1",
}


def sqs_event(*bodies: str | FanOutMessage) -> dict[str, Any]:
    """An SQS event of the audio queue, one record per body (a message's `.body()`, or raw text)."""
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(SQS_RECORD)
        record["messageId"] = f"message-{index}"
        record["body"] = body.body() if isinstance(body, FanOutMessage) else body
        records.append(record)
    return {"Records": records}


# --- reading outputs back -----------------------------------------------------------------------------------------


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in events if event["detail-type"] == detail_type]


def integrated_loudness(path: Path) -> float:
    """EBU R128 integrated loudness (LUFS) of a file, as ffmpeg's `ebur128` filter measures it."""
    result = run_ffmpeg(
        "-nostats", "-i", str(path), "-map", "0:a:0", "-af", "ebur128=framelog=quiet", "-f", "null", "-"
    )
    summary = result.stderr[result.stderr.rindex("Summary:") :]
    match = re.search(r"I:\s+(-?[\d.]+|-inf) LUFS", summary)
    assert match, summary
    return float(match.group(1))


def column_extents(png: Path) -> list[tuple[int, int] | None]:
    """For each column of the PNG, the first and last row that is drawn (not transparent); None for an empty one."""
    with Image.open(png) as image:
        alpha = image.getchannel("A")
    extents: list[tuple[int, int] | None] = []
    for x in range(alpha.width):
        box = alpha.crop((x, 0, x + 1, alpha.height)).getbbox()
        extents.append((box[1], box[3] - 1) if box else None)
    return extents


@dataclass
class Harness:
    """The audio function deployed against moto, with a working directory and a bus we can read back."""

    events: CapturedEvents
    context: FakeLambdaContext
    tmp: Path
    work: Path
    monkeypatch: pytest.MonkeyPatch

    def invoke(self, *bodies: str | FanOutMessage, context: FakeLambdaContext | None = None) -> dict[str, Any]:
        """Handle the bodies as one batch; each message's job runs its attempt unless the test made it otherwise."""
        for body in bodies:
            if isinstance(body, FanOutMessage):
                ensure_running(body.jobId, attempt=body.attempt)
        return handler.handler(sqs_event(*bodies), context or self.context)

    def download_output(self, key: str) -> Path:
        path = self.tmp / key.replace("/", "_")
        boto3.client("s3", region_name=REGION).download_file(OUTPUTS, key, str(path))
        return path

    def output_keys(self) -> list[str]:
        listing = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=OUTPUTS)
        return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.fixture
def harness(
    buckets: dict[str, str],
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    jobs_table: Any,  # the job gate reads each message's job there
) -> Harness:
    work = tmp_path / "work"
    monkeypatch.setenv("AUDIO_WORK_DIR", str(work))
    monkeypatch.setenv("LOUDNESS_TARGET_LUFS", str(TARGET_LUFS))
    return Harness(event_bus, lambda_context, tmp_path, work, monkeypatch)


def body_of(message: FanOutMessage) -> dict[str, Any]:
    return json.loads(message.body())
