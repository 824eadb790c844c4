"""The S3 adapter: an output's facts as object metadata, the conditional read of the source, HEAD errors, and a
waveform that does not read back."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.response import StreamingBody
from botocore.stub import Stubber
from PIL import Image

from functions.audio.adapters import PillowWaveform, S3MediaStore, output_metadata, stored_output_from_head
from functions.audio.service import OutputFacts
from functions.common.unit_worker import OutputUnreadable, SourceMissing, SourceReplaced
from functions.contracts.fanout import SourceObject

AUDIO_FACTS = OutputFacts(contentType="audio/mp4", plan="aac 128k loudnorm I=-23:TP=-1.5:LRA=11", durationMs=4010)
WAVEFORM_FACTS = OutputFacts(contentType="image/png", plan="png 1800x280", width=1800, height=280)
KEY = "outputs/job-1/audio.m4a"


@pytest.mark.parametrize("facts", [AUDIO_FACTS, WAVEFORM_FACTS])
def test_facts_round_trip_through_head(facts: OutputFacts) -> None:
    metadata = output_metadata("job-1", "u", facts, attempt=1)
    head = {"ContentLength": 4321, "ContentType": facts.contentType, "Metadata": metadata}
    stored = stored_output_from_head(head, "outputs", KEY, "job-1", "u", attempt=1)
    assert stored is not None
    assert (stored.bucket, stored.key, stored.bytes, stored.facts) == ("outputs", KEY, 4321, facts)


def test_audio_metadata_names_the_job_the_unit_and_the_plan() -> None:
    assert output_metadata("job-1", "audio", AUDIO_FACTS, attempt=1) == {
        "job-id": "job-1",
        "rendition": "audio",
        "plan": "aac 128k loudnorm I=-23:TP=-1.5:LRA=11",
        "duration-ms": "4010",
    }


def test_a_later_attempts_output_names_its_attempt_and_is_reused_by_it_alone() -> None:
    metadata = output_metadata("job-1", "audio", AUDIO_FACTS, attempt=2)
    head = {"ContentLength": 4321, "ContentType": "audio/mp4", "Metadata": metadata}

    assert metadata["attempt"] == "2"
    assert stored_output_from_head(head, "outputs", KEY, "job-1", "audio", attempt=2) is not None
    assert stored_output_from_head(head, "outputs", KEY, "job-1", "audio", attempt=1) is None


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"job-id": "job-2", "rendition": "audio", "plan": "p"},
        {"job-id": "job-1", "rendition": "waveform", "plan": "p"},
        {"job-id": "job-1", "rendition": "audio"},
        {"job-id": "job-1", "rendition": "audio", "plan": "p", "duration-ms": "4.5"},
    ],
)
def test_head_of_another_jobs_or_incomplete_object_is_not_reused(metadata: dict[str, str]) -> None:
    head = {"ContentLength": 10, "Metadata": metadata}
    assert stored_output_from_head(head, "outputs", KEY, "job-1", "audio", attempt=1) is None


def stubbed_s3() -> tuple[Any, Stubber]:
    client = boto3.client("s3", region_name="us-east-1")
    return client, Stubber(client)


@pytest.mark.parametrize("code", ["404", "403"])
def test_missing_or_forbidden_head_means_nothing_to_reuse(code: str) -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code=code, http_status_code=int(code))
    with stubber:
        assert S3MediaStore(client, "outputs").find_output("job-1", "audio", KEY, attempt=1) is None
    stubber.assert_no_pending_responses()


def test_other_head_errors_propagate_for_a_retry() -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
    with stubber, pytest.raises(ClientError):
        S3MediaStore(client, "outputs").find_output("job-1", "audio", KEY, attempt=1)


SOURCE = SourceObject(bucket="uploads", key="uploads/job-1/source", etag="abc123")


def test_the_source_is_read_only_while_it_has_the_validated_etag(tmp_path: Path) -> None:
    client, stubber = stubbed_s3()
    body = StreamingBody(BytesIO(b"RIFF...."), 8)
    expected = {"Bucket": "uploads", "Key": SOURCE.key, "IfMatch": '"abc123"'}
    stubber.add_response("get_object", {"Body": body}, expected)
    with stubber:
        S3MediaStore(client, "outputs").download_source(SOURCE, tmp_path / "source")
    assert (tmp_path / "source").read_bytes() == b"RIFF...."


@pytest.mark.parametrize(
    ("code", "status", "error", "reason"),
    [
        ("PreconditionFailed", 412, SourceReplaced, "the upload was replaced after it was validated"),
        ("NoSuchKey", 404, SourceMissing, "the upload is no longer available"),
    ],
)
def test_a_replaced_or_deleted_source_is_missing_and_says_so_without_naming_it(
    tmp_path: Path, code: str, status: int, error: type[SourceMissing], reason: str
) -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error(
        "get_object",
        service_error_code=code,
        service_message=f"At least one of the pre-conditions you specified did not hold: s3://uploads/{SOURCE.key}",
        http_status_code=status,
    )
    with stubber, pytest.raises(error) as raised:
        S3MediaStore(client, "outputs").download_source(SOURCE, tmp_path / "source")
    assert type(raised.value) is error
    assert str(raised.value) == reason


def test_other_read_errors_propagate_for_a_retry(tmp_path: Path) -> None:
    client, stubber = stubbed_s3()
    stubber.add_client_error("get_object", service_error_code="InternalError", http_status_code=500)
    with stubber, pytest.raises(ClientError):
        S3MediaStore(client, "outputs").download_source(SOURCE, tmp_path / "source")


def test_a_waveform_that_does_not_read_back_is_reported_without_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a PNG encoder that writes something Pillow cannot read back
    def spoiled_save(image: Image.Image, destination: Path, **options: Any) -> None:
        Path(destination).write_bytes(b"not a png")

    monkeypatch.setattr(Image.Image, "save", spoiled_save)
    destination = tmp_path / "audio-abc" / "waveform.png"
    destination.parent.mkdir()

    # WHEN the waveform is drawn
    with pytest.raises(OutputUnreadable) as raised:
        PillowWaveform().render([0.5] * 10, width=10, height=4, destination=destination)

    # THEN the reason (which the client reads) names the file, not the working directory
    assert "waveform.png" in str(raised.value)
    assert str(tmp_path) not in str(raised.value)
