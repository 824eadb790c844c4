"""Both engines on the session's local cloud, through the public API: the e2e layer routes sources longer than
`mediaconvertThresholdSeconds` (45 s) to MediaConvert, which the local cloud's stand-in runs with ffmpeg.

The emulator is touched once, to inject a fault (a bucket policy that denies the stand-in's writes for one job). The
playback both engines end with is tests/e2e/test_playback.py's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.cli.client import download, post_form
from tests.e2e.conftest import LADDER, MEDIACONVERT_SECONDS, RunningCloud
from tests.e2e.test_pipeline import follow, renditions
from tests.media_samples import is_faststart, probe

pytestmark = pytest.mark.e2e


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
    # MediaConvert's own words, without the locations they name (an operator finds those in the tracker's log)
    assert job["error"]["message"].startswith("Unable to write to output file ["), job["error"]
    assert bucket not in json.dumps(job) and "s3://" not in json.dumps(job), job
    assert all(r["status"] == "FAILED" for r in job["renditions"]), job["renditions"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix=f"outputs/{job_id}/")["KeyCount"] == 0
