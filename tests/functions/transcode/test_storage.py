"""The S3 adapter: a rendition's facts as object metadata, and which HEAD errors mean "nothing to reuse"."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from functions.transcode.adapters import (
    S3MediaStore,
    output_key,
    output_metadata,
    parse_output_probe,
    stored_rendition_from_head,
)
from tests.functions.transcode.conftest import ffprobe_report


def test_metadata_round_trips_through_head() -> None:
    media = parse_output_probe(ffprobe_report())
    head = {"ContentLength": 412345, "Metadata": output_metadata("job-1", "720p", media, attempt=1)}
    stored = stored_rendition_from_head(head, "outputs", output_key("job-1", "720p"), "job-1", "720p", attempt=1)
    assert stored is not None
    assert (stored.key, stored.width, stored.height, stored.durationMs, stored.bytes) == (
        "outputs/job-1/720p.mp4",
        1280,
        720,
        2021,
        412345,
    )


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"job-id": "job-2", "rendition": "720p", "width": "1280", "height": "720", "duration-ms": "2000"},
        {"job-id": "job-1", "rendition": "1080p", "width": "1280", "height": "720", "duration-ms": "2000"},
        {"job-id": "job-1", "rendition": "720p", "width": "1280", "height": "720"},
    ],
)
def test_head_of_another_jobs_or_incomplete_object_is_not_reused(metadata: dict[str, str]) -> None:
    head = {"ContentLength": 10, "Metadata": metadata}
    assert stored_rendition_from_head(head, "outputs", "outputs/job-1/720p.mp4", "job-1", "720p", attempt=1) is None


def test_only_the_attempt_that_made_a_rendition_reuses_it() -> None:
    # GIVEN a rendition the first attempt stored (no `attempt` in its metadata) and one the second stored
    media = parse_output_probe(ffprobe_report())
    first = {"ContentLength": 10, "Metadata": output_metadata("job-1", "720p", media, attempt=1)}
    second = {"ContentLength": 10, "Metadata": output_metadata("job-1", "720p", media, attempt=2)}
    key = output_key("job-1", "720p")

    # THEN each is reused by its own attempt only: a reprocess may have changed the ladder
    assert "attempt" not in first["Metadata"] and second["Metadata"]["attempt"] == "2"
    reused = {
        (made, asking): stored_rendition_from_head(head, "outputs", key, "job-1", "720p", attempt=asking) is not None
        for made, head in ((1, first), (2, second))
        for asking in (1, 2, 3)
    }
    assert [pair for pair, found in reused.items() if found] == [(1, 1), (2, 2)]


def stubbed_s3() -> tuple[Any, Stubber]:
    client = boto3.client("s3", region_name="us-east-1")
    return client, Stubber(client)


@pytest.mark.parametrize("code", ["404", "403"])
def test_missing_or_forbidden_head_means_nothing_to_reuse(code: str) -> None:
    # A 403 is what S3 answers for a missing key without s3:ListBucket; encoding again is correct, only slower.
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=int(code))
    with stubber:
        assert S3MediaStore(client, "outputs").find_output("job-1", "720p", attempt=1) is None
    stubber.assert_no_pending_responses()


def test_other_head_errors_propagate_for_a_retry() -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
    with stubber, pytest.raises(ClientError):
        S3MediaStore(client, "outputs").find_output("job-1", "720p", attempt=1)
