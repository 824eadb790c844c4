"""Segment-parallel encoding end to end: a long source through the local cloud is planned in segments, encoded by many
invocations, stitched, and comes out as one continuous encode would (docs/CONTRACTS.md "Segment-parallel encoding").

The cloud runs with its own layer (Pulumi.segments.yaml): a segment target of 1 s makes a 20 s 360p source four 6 s
segments per rendition. The reference is the transcoder's own unsegmented command, run here on the same source.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.contracts.fanout import EncodePlan
from functions.contracts.jobs import Probe
from functions.transcode.service import EncoderSettings, transcode_args
from local.cli.client import download, post_form
from tests.e2e.conftest import REPO, RunningCloud, start_cloud, stop_cloud
from tests.media_samples import is_faststart, make_video

pytestmark = pytest.mark.e2e

SEGMENTS_LAYER = Path(__file__).resolve().parent / "Pulumi.segments.yaml"
SOURCE_SECONDS, FPS = 20, 30
LADDER = {"240p": (400, 64), "360p": (800, 96)}  # the layer's (maxVideoBitrateKbps, audioBitrateKbps)
JOB_TIMEOUT_SECONDS = 900  # generous: a loaded machine may be slow, never wrong
MAX_VMAF_DIFFERENCE = 0.5


@pytest.fixture(scope="module")
def segments_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningCloud]:
    cloud = start_cloud(REPO, tmp_path_factory.mktemp("segments-cloud"), [SEGMENTS_LAYER])
    yield cloud
    stop_cloud(cloud.process)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(
        tmp_path_factory.mktemp("segments-media") / "long.mp4", width=640, height=360, seconds=SOURCE_SECONDS
    )


@pytest.fixture(scope="module")
def finished(segments_cloud: RunningCloud, source: Path) -> dict[str, Any]:
    client = segments_cloud.client("segment-user")
    created = client.create_upload(source, "video/mp4")
    assert post_form(created["upload"]["url"], created["upload"]["fields"], source) in (200, 201, 204)
    job = client.follow(created["jobId"], timeout_seconds=JOB_TIMEOUT_SECONDS)
    assert job["status"] == "COMPLETED", job
    return job


def packets(path: Path, stream: str) -> list[dict[str, Any]]:
    report = subprocess.run(
        [
            *(ffprobe_path(), "-v", "error", "-select_streams", stream),
            *("-show_entries", "packet=pts,dts,duration,flags,pts_time", "-of", "json", str(path)),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    return json.loads(report.stdout)["packets"]


def duration_seconds(path: Path) -> float:
    report = subprocess.run(
        [ffprobe_path(), "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    return float(report.stdout.strip())


def vmaf(distorted: Path, reference_source: Path, width: int, height: int) -> float:
    """VMAF of `distorted` against the source scaled to its size (bicubic), with the bundled libvmaf."""
    graph = f"[1:v]scale={width}:{height}:flags=bicubic,setsar=1[ref];[0:v][ref]libvmaf=n_threads=2"
    result = subprocess.run(
        [
            ffmpeg_path(),
            "-hide_banner",
            "-i",
            str(distorted),
            "-i",
            str(reference_source),
            "-lavfi",
            graph,
            "-f",
            "null",
            "-",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=tool_env(),
    )
    match = re.search(r"VMAF score: ([0-9.]+)", result.stderr)
    assert match, result.stderr[-2000:]
    return float(match.group(1))


def unsegmented(source: Path, destination: Path, job: dict[str, Any], name: str) -> Path:
    """The transcoder's own command for the whole rendition, with the function's default encoder settings."""
    rendition = next(r for r in job["renditions"] if r["name"] == name)
    video_kbps, audio_kbps = LADDER[name]
    plan = EncodePlan(name, rendition["width"], rendition["height"], video_kbps, audio_kbps)
    args = transcode_args(
        ffmpeg_path(),
        source,
        destination,
        plan=plan,
        probe=Probe.model_validate(job["probe"]),
        encoder=EncoderSettings(),
    )
    subprocess.run(args, check=True, capture_output=True, env=tool_env())
    return destination


def test_the_job_was_planned_in_segments_and_its_parts_are_gone(
    segments_cloud: RunningCloud, finished: dict[str, Any]
) -> None:
    table = segments_cloud.outputs["jobsTable"]
    item = (
        segments_cloud.emulator()
        .client("dynamodb")
        .get_item(TableName=table, Key={"jobId": {"S": finished["jobId"]}}, ConsistentRead=True)["Item"]
    )
    for name in LADDER:
        segments = item["renditions"]["M"][name]["M"]["segments"]["M"]
        assert (int(segments["count"]["N"]), int(segments["seconds"]["N"])) == (4, 6)
        assert sorted(int(i["N"]) for i in segments["done"]["L"]) == [0, 1, 2, 3]
        assert segments["audioDone"]["BOOL"] is True
        assert "requestPublishedAt" in segments["stitch"]["M"]
    s3 = segments_cloud.emulator().client("s3")
    prefix = f"outputs/{finished['jobId']}/segments/"
    listing = s3.list_objects_v2(Bucket=segments_cloud.outputs["outputsBucket"], Prefix=prefix)
    assert listing.get("KeyCount", 0) == 0
    assert finished["playback"]["hls"]


@pytest.mark.parametrize("name", sorted(LADDER))
def test_a_stitched_rendition_equals_one_continuous_encode(
    finished: dict[str, Any], source: Path, tmp_path: Path, name: str
) -> None:
    rendition = next(r for r in finished["renditions"] if r["name"] == name)
    stitched = download(rendition["url"], tmp_path / f"{name}-stitched.mp4")
    reference = unsegmented(source, tmp_path / f"{name}-whole.mp4", finished, name)
    assert is_faststart(stitched)

    # the same frames, strictly increasing timestamps, keyframes on the 2 s grid and nowhere else
    video, whole = packets(stitched, "v:0"), packets(reference, "v:0")
    assert len(video) == len(whole) == SOURCE_SECONDS * FPS
    decode_order = [int(p["dts"]) for p in video]
    assert all(a < b for a, b in itertools.pairwise(decode_order))
    assert sorted(int(p["pts"]) for p in video) == sorted(int(p["pts"]) for p in whole)
    keyframes = sorted(round(float(p["pts_time"]), 3) for p in video if "K" in p["flags"])
    assert keyframes == [float(t) for t in range(0, SOURCE_SECONDS, 2)]
    # the same duration, within one frame
    assert abs(duration_seconds(stitched) - duration_seconds(reference)) <= 1 / FPS
    # one continuous AAC stream: every packet starts where the previous one ended
    audio = packets(stitched, "a:0")
    assert all(int(b["pts"]) == int(a["pts"]) + int(a["duration"]) for a, b in itertools.pairwise(audio))
    assert abs(len(audio) - len(packets(reference, "a:0"))) <= 1
    # and the same quality as the unsegmented encode
    width, height = rendition["width"], rendition["height"]
    assert abs(vmaf(stitched, source, width, height) - vmaf(reference, source, width, height)) <= MAX_VMAF_DIFFERENCE
