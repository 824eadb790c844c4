"""Builders for the packager's tests: finished renditions made with real ffmpeg, packaging requests, SQS events of
EventBridge events, a store on local folders, a spy bus, and readers of what was packaged."""

from __future__ import annotations

import copy
import json
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.contracts.events import DetailType, EventDetail, PackagingRequested
from functions.contracts.playback import PackagingSource
from functions.packager.service import PackagedFile, RenditionMissing
from functions.packager.settings import PackagerSettings

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0PK"
OWNER_ID = "user-1"
OUTPUTS = "test-outputs"
SECONDS = 6.5
BLACK_SECONDS = 1.5
FPS = 30
LADDER = {"180p": (320, 180), "360p": (640, 360)}
"""Two renditions of the same 6.5 s clip (1.5 s of black, then a test pattern), smallest first."""
SQS_FIXTURE = Path(__file__).parent / "packaging_requested_sqs_event.json"


# --- media ----------------------------------------------------------------------------------------------------------


def make_rendition(
    path: Path,
    width: int,
    height: int,
    *,
    seconds: float = SECONDS,
    black_seconds: float = BLACK_SECONDS,
    audio: bool = True,
    rate: str = str(FPS),
) -> Path:
    """A finished rendition as the transcoder makes one: H.264 (ultrafast, for speed) with a closed GOP exactly every
    2 s, AAC when `audio`, faststart. The picture is black for `black_seconds`, then ffmpeg's `testsrc`."""
    size = f"{width}x{height}"
    sources = []
    if black_seconds > 0:
        sources.append(f"color=c=black:s={size}:r={rate}:d={black_seconds}")
    if seconds > black_seconds:
        sources.append(f"testsrc=size={size}:rate={rate}:duration={seconds - black_seconds}")
    if audio:
        sources.append(f"sine=frequency=440:sample_rate=48000:duration={seconds}")
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    for lavfi in sources:
        args += ["-f", "lavfi", "-i", lavfi]
    pictures = len(sources) - audio
    video = "".join(f"[{index}:v]" for index in range(pictures)) + f"concat=n={pictures}:v=1:a=0[v]"
    args += ["-filter_complex", video, "-map", "[v]"]
    if audio:
        args += ["-map", f"{pictures}:a", "-c:a", "aac", "-b:a", "64k"]
    keyint = str(round(2 * float(Fraction(rate))))
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    args += ["-g", keyint, "-keyint_min", keyint, "-sc_threshold", "0"]
    args += ["-force_key_frames", "expr:gte(t,n_forced*2)", "-movflags", "+faststart", "-t", str(seconds), str(path)]
    subprocess.run(args, check=True, env=tool_env())
    return path


@pytest.fixture(scope="session")
def ladder(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two renditions, made once per test process."""
    folder = tmp_path_factory.mktemp("ladder")
    return {name: make_rendition(folder / f"{name}.mp4", *size) for name, size in LADDER.items()}


# --- requests and events --------------------------------------------------------------------------------------------


def rendition_key(name: str, job_id: str = JOB_ID) -> str:
    return f"outputs/{job_id}/{name}.mp4"


def source(name: str, *, bucket: str = OUTPUTS, key: str | None = None) -> dict[str, Any]:
    width, height = LADDER.get(name, (320, 180))
    return {"rendition": name, "bucket": bucket, "key": key or rendition_key(name), "width": width, "height": height}


def request_detail(*sources: dict[str, Any], job_id: str = JOB_ID) -> dict[str, Any]:
    """A `Packaging Requested` detail as the tracker puts it (`PackagingRequested.to_detail()`)."""
    renditions = [PackagingSource.model_validate(s) for s in sources or [source(name) for name in LADDER]]
    request = PackagingRequested(
        job_id=job_id, owner_id=OWNER_ID, engine="lambda", duration_ms=round(SECONDS * 1000), renditions=renditions
    )
    return request.to_detail()


def packaging_request(*sources: dict[str, Any]) -> PackagingRequested:
    return PackagingRequested.model_validate(request_detail(*sources))


def eventbridge_event(
    detail: dict[str, Any], *, detail_type: str = DetailType.PACKAGING_REQUESTED, source_name: str = "media-pipeline"
) -> dict[str, Any]:
    """The EventBridge event the rule delivers to the queue, as the SQS body carries it."""
    body = json.loads(json.loads(SQS_FIXTURE.read_text())["Records"][0]["body"])
    return {**body, "detail-type": str(detail_type), "source": source_name, "detail": detail}


def sqs_event(*bodies: dict[str, Any] | str, receive_count: int = 1) -> dict[str, Any]:
    """The fixture's SQS record once per body, each with its own message id."""
    template = json.loads(SQS_FIXTURE.read_text())["Records"][0]
    records = []
    for index, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"message-{index}"
        record["body"] = body if isinstance(body, str) else json.dumps(body)
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def settings_for(work_root: Path, **overrides: Any) -> PackagerSettings:
    return PackagerSettings(
        outputs_bucket=OUTPUTS, event_bus_name="bus", jobs_table_name="jobs", work_root=work_root, **overrides
    )


# --- fakes for the service tests ------------------------------------------------------------------------------------


@dataclass
class FolderStore:
    """The outputs bucket as a dict of local files to read and a folder to write, remembering each upload batch."""

    root: Path
    objects: dict[tuple[str, str], Path] = field(default_factory=dict)
    batches: list[list[str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    attempts: set[int] = field(default_factory=set)
    """The attempts the uploads named."""

    def download_rendition(self, source: PackagingSource, destination: Path) -> None:
        found = self.objects.get((source.bucket, source.key))
        if found is None:
            raise RenditionMissing(f"rendition {source.rendition} is missing from the job's outputs")
        shutil.copyfile(found, destination)

    def upload_files(self, files: Sequence[PackagedFile], job_id: str, *, attempt: int) -> int:
        self.batches.append([packaged.key for packaged in files])
        self.attempts.add(attempt)
        total = 0
        for packaged in files:
            target = self.root / packaged.key
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(packaged.path, target)
            self.metadata[packaged.key] = packaged.contentType
            total += target.stat().st_size
        return total

    def uploaded(self) -> list[str]:
        return [key for batch in self.batches for key in batch]


@dataclass
class SpyEvents:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: DetailType, detail: EventDetail) -> None:
        self.published.append((str(detail_type), detail.to_detail()))


# --- reading the package back ---------------------------------------------------------------------------------------


def ffprobe(*args: str) -> str:
    command = [ffprobe_path(), "-v", "error", *args]
    result = subprocess.run(command, check=False, capture_output=True, text=True, env=tool_env())
    assert result.returncode == 0, result.stderr
    return result.stdout


def keyframe_times(playlist: Path) -> list[float]:
    """Presentation times of the video keyframes of a media playlist, read through its segments."""
    out = ffprobe("-select_streams", "v:0", "-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", str(playlist))
    rows = [line.split(",") for line in out.split()]
    return [round(float(time), 3) for time, flags in rows if "K" in flags]


def avc_codec_of(path: Path) -> str:
    """`avc1.PPCCLL` from the first bytes of the H.264 stream's extradata (its avcC record), as ffprobe dumps it."""
    report = json.loads(ffprobe("-show_data", "-show_streams", "-select_streams", "v:0", "-of", "json", str(path)))
    dump = report["streams"][0]["extradata"]
    first_line = next(line for line in dump.splitlines() if line.strip())
    hex_bytes = "".join(first_line.split(":", 1)[1].split()[:2])  # "0142 c00d" -> version, profile, flags, level
    return f"avc1.{hex_bytes[2:8]}"


def mean_luma(path: Path) -> float:
    with Image.open(path) as image:
        return ImageStat.Stat(image.convert("L")).mean[0]


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def playlist_segments(playlist: Path) -> list[tuple[str, Fraction]]:
    """(URI, EXTINF) of every segment, read here independently of the service's parser."""
    lines = playlist.read_text().splitlines()
    return [
        (lines[index + 1], Fraction(line.removeprefix("#EXTINF:").rstrip(",")))
        for index, line in enumerate(lines)
        if line.startswith("#EXTINF:")
    ]


def rfc_peak_bitrate(sizes: list[int], durations: list[Fraction], target: int) -> float:
    """RFC 8216 4.1's peak segment bit rate, by brute force: every run of consecutive segments lasting 0.5 to 1.5 x
    the target duration."""
    rates = [
        sum(sizes[i : j + 1]) * 8 / sum(durations[i : j + 1])
        for i in range(len(sizes))
        for j in range(i, len(sizes))
        if target / 2 <= sum(durations[i : j + 1]) <= target * 3 / 2
    ]
    return float(max(rates))


def vtt_cues(text: str) -> list[tuple[str, str, str]]:
    """(start, end, payload) of every cue of a WebVTT file."""
    blocks = [block.splitlines() for block in text.strip().split("\n\n")]
    assert blocks[0] == ["WEBVTT"]
    cues = []
    for block in blocks[1:]:
        start, _, end = block[0].partition(" --> ")
        cues.append((start, end, block[1]))
    return cues


def vtt_ms(stamp: str) -> int:
    hours, minutes, seconds = stamp.split(":")
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


def expected_tiles(duration_ms: int, interval_seconds: int) -> int:
    return math.ceil(duration_ms / (interval_seconds * 1000))


def metrics_in(output: str) -> dict[str, float]:
    """Metric name -> value of every EMF document printed (Powertools writes them to stdout)."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return found
