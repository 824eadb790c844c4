"""Per-user quotas on the local cloud (issue 12, weakness 4): one user's burst of POST /uploads past the open-upload
limit gets exactly the limit's forms and 429 with Retry-After for the rest; another user is not affected."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from local.cli.client import HttpResponse
from tests.e2e.conftest import RunningCloud

LIMIT = 20  # maxOpenUploadsPerUser: Pulumi.yaml's default, which neither the dev stack nor the e2e layer changes
FORM_TTL_SECONDS = 900  # uploadUrlTtlSeconds
UPLOAD = {"filename": "clip.mp4", "contentType": "video/mp4", "size": 1_000_000}


def test_a_burst_of_uploads_past_the_open_upload_limit_is_refused_with_retry_after(
    pipeline_cloud: RunningCloud,
) -> None:
    client = pipeline_cloud.client("quota-attacker")

    def create(_: int) -> HttpResponse | None:
        """The answer, or None when the connection was reset (the local gateway's listen queue is short under a burst
        of connections; such a request may or may not have reached the API)."""
        try:
            return client.call("POST", "uploads", UPLOAD)
        except ConnectionResetError:
            return None

    # WHEN one user fires twice the limit of upload requests at once
    with ThreadPoolExecutor(max_workers=2 * LIMIT) as pool:
        answers = list(pool.map(create, range(2 * LIMIT)))

    # THEN no answer is a fault: each is a form or a 429 QUOTA_EXCEEDED with a Retry-After within the form's lifetime
    answered = [answer for answer in answers if answer is not None]
    created = {answer.body["jobId"] for answer in answered if answer.status == 201}
    refused = [answer for answer in answered if answer.status != 201]
    assert all((a.status, a.body["error"]["code"]) == (429, "QUOTA_EXCEEDED") for a in refused), refused
    assert all(0 < int(a.headers["retry-after"]) <= FORM_TTL_SECONDS for a in refused), refused
    # AND the limit was reached, never passed: the user's jobs and usage say the same
    jobs = {job["jobId"] for job in client.call("GET", "jobs?limit=100").body["jobs"]}
    assert len(jobs) <= LIMIT and created <= jobs and len(jobs - created) <= answers.count(None)
    assert len(answered) < LIMIT or len(jobs) == LIMIT  # with the limit's worth answered, it was reached
    assert client.call("GET", "usage").body["openUploads"] == {"used": len(jobs), "limit": LIMIT}
    # AND once at the limit (topped up, should resets have kept requests away), one more is refused in plain words
    for _ in range(LIMIT - len(jobs)):
        assert client.call("POST", "uploads", UPLOAD).status == 201
    again = client.call("POST", "uploads", UPLOAD)
    assert again.status == 429, again
    assert again.body["error"]["message"].startswith(f"open uploads: you have {LIMIT} upload forms open")
    assert 0 < int(again.headers["retry-after"]) <= FORM_TTL_SECONDS

    # AND another user still gets a form
    other = pipeline_cloud.client("quota-bystander")
    assert other.call("POST", "uploads", UPLOAD).status == 201
    assert other.call("GET", "usage").body["openUploads"] == {"used": 1, "limit": LIMIT}
