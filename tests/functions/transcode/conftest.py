"""Builders for the transcoder's tests: its environment, fan-out messages of real uploads, SQS events, a deployment."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.media_tools import ffmpeg_path
from functions.contracts.fanout import EncodePlan
from functions.transcode import handler
from tests.functions.conftest import FIXTURES, REGION, CapturedEvents, FakeLambdaContext
from tests.functions.conftest import sqs_event as shared_sqs_event
from tests.functions.job_gate_samples import ensure_running
from tests.media_samples import probe

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0VW"
OWNER_ID = "user-1"
UPLOADS, OUTPUTS = "test-uploads", "test-outputs"
BITRATES = {"maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128}
BASE_ENV = {
    "RENDITION": '{"name":"720p","height":720,"maxVideoBitrateKbps":3000,"audioBitrateKbps":128}',
    "OUTPUTS_BUCKET": "outputs",
    "EVENT_BUS_NAME": "bus",
    "JOBS_TABLE_NAME": "jobs",
}
PLAN = EncodePlan(name="720p", width=1280, height=720, maxVideoBitrateKbps=3000, audioBitrateKbps=128)


def ffprobe_report(**video: object) -> dict:
    """What ffprobe reports about a 2 s 1280x720 H.264/AAC rendition, `video` overriding its video stream."""
    stream = {"codec_type": "video", "codec_name": "h264", "profile": "High", "pix_fmt": "yuv420p"}
    stream |= {"width": 1280, "height": 720} | video
    audio = {"codec_type": "audio", "codec_name": "aac"}
    return {"streams": [stream, audio], "format": {"duration": "2.021333", "size": "412345"}}


def source_probe(path: Path) -> dict[str, Any]:
    """The probe ingest would put in the fan-out message (docs/CONTRACTS.md "Probe")."""
    report = probe(path)
    video = next(s for s in report["streams"] if s["codec_type"] == "video")
    audio = next((s for s in report["streams"] if s["codec_type"] == "audio"), None)
    rotation = round(next((d["rotation"] for d in video.get("side_data_list", []) if "rotation" in d), 0)) % 360
    coded_w, coded_h = video["width"], video["height"]
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    num, den = (int(x) for x in video["avg_frame_rate"].split("/"))
    return {
        "durationMs": round(float(report["format"]["duration"]) * 1000),
        "width": width,
        "height": height,
        "codedWidth": coded_w,
        "codedHeight": coded_h,
        "rotation": rotation,
        "videoCodec": video["codec_name"],
        "audioCodec": audio["codec_name"] if audio else None,
        "hasAudio": audio is not None,
        "frameRate": num / den,
        "formatName": report["format"]["format_name"],
        "bitRate": int(report["format"]["bit_rate"]),
        "sizeBytes": int(report["format"]["size"]),
    }


def fan_out_message(job_id: str, source: Path, renditions: list[dict[str, Any]]) -> dict[str, Any]:
    """Upload `source` where the API would have put it and return the message ingest would publish for it."""
    key = f"uploads/{job_id}/source"
    boto3.client("s3", region_name=REGION).upload_file(str(source), UPLOADS, key)
    return {
        "jobId": job_id,
        "ownerId": OWNER_ID,
        "engine": "lambda",
        "source": {"bucket": UPLOADS, "key": key},
        "probe": source_probe(source),
        "renditions": renditions,
    }


def planned(name: str, width: int, height: int) -> dict[str, Any]:
    return {"name": name, "width": width, "height": height, **BITRATES}


def fixture_body() -> dict[str, Any]:
    """The fan-out message of the fixture's record (its upload is not in the bucket)."""
    return json.loads(json.loads((FIXTURES / "transcode_sqs_event.json").read_text())["Records"][0]["body"])


def sqs_event(*bodies: dict[str, Any] | str) -> dict[str, Any]:
    return shared_sqs_event("transcode_sqs_event.json", *bodies)


def make_odd_sized_video(path: Path) -> Path:
    """853x479 H.264: only 4:4:4 chroma allows odd sizes (and only the RGB `testsrc` keeps them odd)."""
    subprocess.run(
        [
            *(ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc=size=853x479:rate=30:duration=2"),
            *("-f", "lavfi", "-i", "sine=frequency=440:duration=2"),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv444p", "-c:a", "aac", "-t", "2", str(path)),
        ],
        check=True,
    )
    return path


@dataclass
class Harness:
    """The 720p transcoder deployed against moto, with a working directory and a bus we can read back."""

    events: CapturedEvents
    context: FakeLambdaContext
    tmp: Path
    work: Path
    monkeypatch: pytest.MonkeyPatch

    def use_rendition(self, name: str, height: int) -> None:
        """Deploy the function for rendition `name`, as components/transcoder.py does through RENDITION."""
        self.monkeypatch.setenv("RENDITION", json.dumps({"name": name, "height": height, **BITRATES}))

    def invoke(self, *bodies: dict[str, Any] | str, context: FakeLambdaContext | None = None) -> dict[str, Any]:
        """Handle the bodies as one batch; each message's job runs its attempt unless the test made it otherwise."""
        for body in bodies:
            if isinstance(body, dict) and "jobId" in body:
                ensure_running(body["jobId"], attempt=body.get("attempt", 1))
        return handler.handler(sqs_event(*bodies), context or self.context)

    def download_output(self, key: str) -> Path:
        path = self.tmp / key.replace("/", "_")
        boto3.client("s3", region_name=REGION).download_file(OUTPUTS, key, str(path))
        return path


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
    """superfast is the quickest x264 preset that still yields High profile (ultrafast signals Baseline)."""
    work = tmp_path / "work"
    monkeypatch.setenv("FFMPEG_PRESET", "superfast")
    monkeypatch.setenv("FFMPEG_THREADS", "2")
    monkeypatch.setenv("TRANSCODE_WORK_DIR", str(work))
    result = Harness(event_bus, lambda_context, tmp_path, work, monkeypatch)
    result.use_rendition("720p", 720)
    return result
