"""Both engines on the session's local cloud, through the public API: the e2e layer routes sources longer than
`mediaconvertThresholdSeconds` (45 s) to MediaConvert, which the local cloud's stand-in runs with ffmpeg.

The emulator is read for what the API does not expose (the HLS package and thumbnails in the outputs bucket), and
touched once to inject a fault (a bucket policy that denies the stand-in's writes for one job).
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from functions.common.media_tools import ffprobe_path, tool_env
from local.cli.client import download, post_form
from tests.e2e.conftest import RunningCloud
from tests.e2e.test_pipeline import follow, renditions, start_upload
from tests.media_samples import is_faststart, make_video, probe

pytestmark = pytest.mark.e2e

MEDIACONVERT_SECONDS = 48.0  # over the e2e layer's 45 s threshold; 10 fps keeps the encodes short
LADDER = {"240p": (426, 240), "360p": (640, 360)}
SHOW = ("-show_format", "-show_streams")


@pytest.fixture(scope="module")
def long_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mediaconvert")
    return make_video(folder / "long.mp4", width=640, height=360, seconds=MEDIACONVERT_SECONDS, fps=10)


@pytest.fixture(scope="module")
def engine_jobs(pipeline_cloud: RunningCloud, long_source: Path) -> dict[str, dict[str, Any]]:
    """A short clip and a long one uploaded side by side by one user, followed to their final states."""
    short = make_video(long_source.with_name("short.mp4"), width=640, height=360, seconds=2.0)
    client = pipeline_cloud.client("engines")

    def run(path: Path) -> dict[str, Any]:
        return follow(client, start_upload(client, path))

    with ThreadPoolExecutor(max_workers=2) as pool:
        short_job, long_job = pool.map(run, [short, long_source])
    return {"short": short_job, "long": long_job}


def test_a_job_runs_through_each_engine(engine_jobs: dict[str, dict[str, Any]], tmp_path: Path) -> None:
    short, long = engine_jobs["short"], engine_jobs["long"]

    assert (short["status"], short["engine"]) == ("COMPLETED", "lambda"), short
    assert (long["status"], long["engine"], long["progress"], long["error"]) == ("COMPLETED", "mediaconvert", 100, None)
    by_name = renditions(long)
    assert sorted(by_name) == sorted(LADDER)
    for name, (width, height) in LADDER.items():
        rendition = by_name[name]
        assert (rendition["status"], rendition["width"], rendition["height"]) == ("COMPLETED", width, height)
        local_copy = download(rendition["url"], tmp_path / f"{name}.mp4")
        info = probe(local_copy)
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        audio = next(s for s in info["streams"] if s["codec_type"] == "audio")
        seconds = float(info["format"]["duration"])
        assert (video["codec_name"], video["profile"], video["width"], video["height"]) == (
            "h264",
            "High",
            width,
            height,
        )
        assert audio["codec_name"] == "aac"
        assert abs(seconds - MEDIACONVERT_SECONDS) < 0.1
        assert abs(seconds - rendition["durationMs"] / 1000) < 0.1
        assert rendition["bytes"] == local_copy.stat().st_size
        assert is_faststart(local_copy)


def _stream_inf(master: str) -> list[tuple[dict[str, str], str]]:
    lines = [line.strip() for line in master.splitlines() if line.strip()]
    variants = []
    for line, uri in itertools.pairwise(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attributes = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            variants.append(({k: v.strip('"') for k, v in attributes.items()}, uri))
    return variants


def test_mediaconvert_packages_an_hls_ladder_and_thumbnails(
    pipeline_cloud: RunningCloud, engine_jobs: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    job_id = engine_jobs["long"]["jobId"]
    s3 = pipeline_cloud.emulator().client("s3")
    bucket, folder = pipeline_cloud.outputs["outputsBucket"], f"outputs/{job_id}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]]
    hls_keys = [k for k in keys if k.startswith(f"{folder}hls/")]
    for key in hls_keys:
        s3.download_file(bucket, key, str(tmp_path / key.rsplit("/", 1)[1]))

    variants = _stream_inf((tmp_path / "index.m3u8").read_text())
    assert [uri for _, uri in variants] == ["index_240p.m3u8", "index_360p.m3u8"]
    for (attributes, uri), (width, height) in zip(variants, LADDER.values(), strict=True):
        assert attributes["RESOLUTION"] == f"{width}x{height}"
        assert re.fullmatch(r"avc1\.6400[0-9a-f]{2},mp4a\.40\.2", attributes["CODECS"]), attributes
        assert 0 < int(attributes["AVERAGE-BANDWIDTH"]) <= int(attributes["BANDWIDTH"])
        playlist = str(tmp_path / uri)
        result = subprocess.run(
            [ffprobe_path(), "-v", "error", "-protocol_whitelist", "file,crypto,data", "-of", "json", *SHOW, playlist],
            capture_output=True,
            text=True,
            check=True,
            env=tool_env(),
        )
        info = json.loads(result.stdout)
        video = next(s for s in info["streams"] if s["codec_type"] == "video")
        assert (video["codec_name"], video["width"], video["height"]) == ("h264", width, height)
        assert any(s["codec_type"] == "audio" for s in info["streams"])
        assert abs(float(info["format"]["duration"]) - MEDIACONVERT_SECONDS) < 0.5
        segments = [k for k in hls_keys if re.fullmatch(rf"{folder}hls/index_{height}p_\d{{5}}\.ts", k)]
        assert len(segments) == 8  # 48 s in 6 s segments
    thumbnails = sorted(k.removeprefix(folder) for k in keys if k.startswith(f"{folder}thumbnails/"))
    assert thumbnails == [f"thumbnails/thumb.{i:07d}.jpg" for i in range(5)]  # a frame every 10 s of 48 s


def test_a_mediaconvert_error_fails_the_job_with_its_code(pipeline_cloud: RunningCloud, long_source: Path) -> None:
    """The stand-in cannot write this job's outputs (a Deny on its output folder): MediaConvert's ERROR 1401."""
    client = pipeline_cloud.client("engines")
    created = client.create_upload(long_source, "video/mp4")
    job_id = created["jobId"]
    s3 = pipeline_cloud.emulator().client("s3")
    bucket = pipeline_cloud.outputs["outputsBucket"]
    original = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    policy = json.loads(original)
    policy["Statement"].append(
        {
            "Sid": "E2eDenyOneJobsOutputs",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": f"arn:aws:s3:::{bucket}/outputs/{job_id}/*",
        }
    )
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        assert post_form(created["upload"]["url"], created["upload"]["fields"], long_source) in (200, 201, 204)
        job = follow(client, job_id)
    finally:
        s3.put_bucket_policy(Bucket=bucket, Policy=original)

    assert (job["status"], job["engine"]) == ("FAILED", "mediaconvert"), job
    assert job["error"]["code"] == "MEDIACONVERT_1401"
    assert job["error"]["message"].startswith(f"Unable to write to output file [s3://{bucket}/outputs/{job_id}/")
    assert all(r["status"] == "FAILED" for r in job["renditions"]), job["renditions"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"outputs/{job_id}/")["KeyCount"] == 0
