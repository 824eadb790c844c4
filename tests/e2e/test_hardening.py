"""Attacks on the local cloud, made through the public API and the presigned upload form only, and what they get.

Issue 12, weaknesses 1 and 2: the upload form stays valid after its file was validated, so a client can POST it again
while the job is PROCESSING. The transcoders read the upload only while it is the object ingest validated (IfMatch on
its ETag), so the job must fail SOURCE_REPLACED, and nothing the client reads about it may name a bucket, a key, an
ARN or a path of the machine that made it.

The race, and how the test wins it without depending on the machine's speed: a transcoder reads the upload as soon as
it takes the job's message, a fraction of a second after the job turns PROCESSING, much sooner than a client can
notice the status and POST again. So before the job is created, two long encodes ("blockers") occupy every execution
environment of both transcode functions; the job's messages then wait in their queues while the form is POSTed again.
Whether they really waited is not assumed: the local cloud's own invocation counts (`workers.json`, written by the
cloud, read only) say whether either transcoder had been invoked for the job when the second POST had landed. If
neither had, the job can only end FAILED SOURCE_REPLACED, and the test holds it to exactly that. If one had (a blocker
finished early), it may have read the file ingest validated, and COMPLETED is a legitimate end too; the attempt is
repeated with fresh blockers, a bounded number of times.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from functions.contracts.errors import SOURCE_REPLACED_CODE, SOURCE_REPLACED_MESSAGE
from local.cli.client import FINAL_STATUSES, ApiClient, ApiError, post_form
from tests.e2e.conftest import RunningCloud, wait_for
from tests.e2e.test_pipeline import follow, renditions, start_upload
from tests.media_samples import make_video

pytestmark = pytest.mark.e2e

ATTEMPTS = 3
BLOCKERS = 2
"""One per execution environment of each transcode function (the local cloud runs two of each)."""
TRANSCODERS = ("transcode-240p", "transcode-360p")
SNAPSHOT_MARGIN_SECONDS = 1.0
"""How much later than the second POST a `workers.json` must have been written for its counts to speak for that
moment: the cloud takes its counts just before it stamps `updatedAt`, microseconds apart, never a whole second."""
BLOCKER_TIMEOUT_SECONDS = 300
JOB_TIMEOUT_SECONDS = 300
"""The attacked job waits for the blockers' encodes before its own transcoders take it."""


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hardening")
    return {
        # Long encodes: 40 s of 720p is seconds of work per rendition even on a fast machine (and under the e2e
        # layer's MediaConvert threshold, so they stay in the transcode functions).
        "blocker": make_video(folder / "blocker.mp4", width=1280, height=720, seconds=40.0),
        "clip": make_video(folder / "clip.mp4", width=640, height=360, seconds=3.0),
    }


@dataclass
class Attempt:
    job: dict[str, Any]
    """The attacked job's view, once final."""
    waited: bool
    """Neither transcoder had been invoked for the job when the second POST had landed."""


def transcoder_invocations(cloud: RunningCloud, *, counted_after: float) -> dict[str, int]:
    """Each transcode function's invocations, from a `workers.json` the cloud wrote after `counted_after`."""

    def fresh() -> dict[str, int] | None:
        try:
            snapshot = cloud.workers()
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if float(snapshot["updatedAt"]) <= counted_after:
            return None
        counts = {
            fragment: sum(f["stats"]["invocations"] for name, f in snapshot["functions"].items() if fragment in name)
            for fragment in TRANSCODERS
        }
        return counts

    return wait_for(fresh, 30, interval=0.1, message="a workers.json written after the second POST")


def encoding_started(client: ApiClient, job_id: str) -> bool:
    """Every rendition of the job has been taken by its transcoder (it announced the start, or already ended)."""
    job = client.job(job_id)
    if job["status"] in FINAL_STATUSES:
        return True
    return job["status"] == "PROCESSING" and all(r["status"] != "QUEUED" for r in job["renditions"])


@pytest.fixture
def blockers(pipeline_cloud: RunningCloud, media: dict[str, Path]) -> Iterator[Callable[[int], None]]:
    """Starts blockers on demand; afterwards waits for them to end, so that the next test finds the cloud idle."""
    started: list[tuple[ApiClient, str]] = []

    def occupy_every_transcoder(attempt: int) -> None:
        client = pipeline_cloud.client(f"hardening-blockers-{attempt}")
        jobs = [start_upload(client, media["blocker"]) for _ in range(BLOCKERS)]
        started.extend((client, job_id) for job_id in jobs)
        for job_id in jobs:
            started_encoding = partial(encoding_started, client, job_id)
            wait_for(started_encoding, BLOCKER_TIMEOUT_SECONDS, message=f"blocker {job_id} to be encoded")

    yield occupy_every_transcoder
    # Best effort, so that the next test finds the transcoders idle; how the blockers end is not this test's question.
    for client, job_id in started:
        with suppress(ApiError):
            client.follow(job_id, timeout_seconds=BLOCKER_TIMEOUT_SECONDS)


def repost_while_processing(cloud: RunningCloud, client: ApiClient, *, clip: Path, replacement: Path) -> Attempt:
    """The attack: upload a clip, wait for PROCESSING, POST the same form again with another file, follow the job."""
    before = transcoder_invocations(cloud, counted_after=time.time())
    created = client.create_upload(clip, "video/mp4")
    form = created["upload"]
    assert post_form(form["url"], form["fields"], clip) in (200, 201, 204)
    job_id = created["jobId"]

    def processing_or_done() -> str | None:
        status = str(client.job(job_id)["status"])
        return status if status == "PROCESSING" or status in FINAL_STATUSES else None

    status = wait_for(processing_or_done, 120, interval=0.05, message=f"job {job_id} to be PROCESSING")
    if status != "PROCESSING":
        # Its transcoders were free and it ended before a poll saw it PROCESSING: nothing left to attack.
        assert status == "COMPLETED", client.job(job_id)
        return Attempt(job=client.job(job_id), waited=False)
    # The form is still valid: the same fields, another file.
    assert post_form(form["url"], form["fields"], replacement) in (200, 201, 204)
    landed = time.time()
    after = transcoder_invocations(cloud, counted_after=landed + SNAPSHOT_MARGIN_SECONDS)
    return Attempt(job=follow(client, job_id, timeout=JOB_TIMEOUT_SECONDS), waited=after == before)


def test_an_upload_posted_again_while_processing_fails_source_replaced_naming_nothing_internal(
    pipeline_cloud: RunningCloud, media: dict[str, Path], blockers: Callable[[int], None], tmp_path: Path
) -> None:
    uploads_bucket = pipeline_cloud.outputs["uploadsBucket"]
    # Not media at all, and smaller than the declared size the form allows.
    replacement = tmp_path / "replacement.mp4"
    replacement.write_bytes(b"#EXTM3U\n#EXTINF:1,\nfile:///proc/self/environ\n")
    client = pipeline_cloud.client("hardening-attacker")

    attempts: list[Attempt] = []
    for attempt in range(1, ATTEMPTS + 1):
        blockers(attempt)
        result = repost_while_processing(pipeline_cloud, client, clip=media["clip"], replacement=replacement)
        attempts.append(result)
        job = result.job

        # Whatever the outcome, nothing the client reads names where anything is kept.
        view = json.dumps(job)
        leaks = [leak for leak in (uploads_bucket, "s3://", "arn:", "/tmp/") if leak in view]
        assert leaks == [], f"the job view names {leaks}: {job}"

        if result.waited:
            # Both transcoders took the job's message after the second POST: neither can have read the validated
            # file, so the job fails SOURCE_REPLACED, in submit's words, not TRANSCODE_FAILED.
            assert job["status"] == "FAILED", job
            assert job["error"] == {"code": SOURCE_REPLACED_CODE, "message": f"240p: {SOURCE_REPLACED_MESSAGE}"}, job
            assert {name: r["status"] for name, r in renditions(job).items()} == {"240p": "FAILED", "360p": "FAILED"}
            assert all(
                r["error"] == {"code": SOURCE_REPLACED_CODE, "message": SOURCE_REPLACED_MESSAGE}
                for r in job["renditions"]
            ), job
            return
        # A transcoder was invoked before the second POST landed and may have read the validated file: the job may
        # have completed from it, or failed SOURCE_REPLACED on the rendition that read too late. Nothing else.
        if job["status"] == "COMPLETED":
            continue
        assert job["status"] == "FAILED", job
        assert job["error"]["code"] == SOURCE_REPLACED_CODE, job
        assert job["error"]["message"].endswith(f": {SOURCE_REPLACED_MESSAGE}"), job
        return

    pytest.fail(f"in {ATTEMPTS} attempts no second POST landed before a transcoder read the upload: {attempts}")
