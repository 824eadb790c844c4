"""What a client may read in an error: no bucket, key, ARN, URL or local path, whatever a producer passed on."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.common.client_messages import client_safe
from functions.common.ffmpeg_runner import FfmpegFailed, probe_file
from functions.common.unit_worker import ERROR_MESSAGE_CHARS, failed_event
from functions.contracts.errors import SOURCE_REPLACED_CODE, SOURCE_REPLACED_MESSAGE
from functions.contracts.fanout import FanOutMessage

LEAKS = ("s3://", "arn:", "/tmp/", "internal-uploads-bucket", "uploads/01J", "http")


def assert_client_safe(text: str) -> None:
    assert not [leak for leak in LEAKS if leak in text], text


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        (
            "s3://internal-uploads-bucket/uploads/01JJOB/source was replaced after it was validated",
            "[object] was replaced after it was validated",
        ),
        (
            "Unable to write to output file [s3://internal-outputs/outputs/01JJOB/720p.mp4]: [Failed to write data]",
            "Unable to write to output file [[object]]: [Failed to write data]",
        ),
        (
            "User: arn:aws:sts::123456789012:assumed-role/transcode-role/fn is not authorized to perform: s3:GetObject",
            "User: [resource] is not authorized to perform: s3:GetObject",
        ),
        (
            "Requested resource not found: arn:aws-us-gov:dynamodb:us-gov-west-1:1:table/media-jobs-1a2b3c",
            "Requested resource not found: [resource]",
        ),
        (
            'Could not connect to the endpoint URL: "https://internal-uploads-bucket.s3.amazonaws.com/uploads/01J/source"',
            'Could not connect to the endpoint URL: "[url]"',
        ),
        ("the key uploads/01JJOB/source is gone", "the key [object] is gone"),
        ("/tmp/transcode-k2j4/source: Invalid data found", "source: Invalid data found"),
        ("Error opening input file file:/tmp/ingest-x/source.", "Error opening input file source."),
        ("cannot identify image file '/tmp/images-abc/source'", "cannot identify image file 'source'"),
        ("[in#0 @ 0x55d1] Error opening (/var/task/functions/x.py)", "[in#0 @ 0x55d1] Error opening (x.py)"),
    ],
)
def test_client_safe_names_no_location(raw: str, safe: str) -> None:
    assert client_safe(raw) == safe
    assert_client_safe(client_safe(raw))


@pytest.mark.parametrize(
    "plain",
    [
        "the upload was replaced after it was validated",
        "display size is 640x360, expected 1280x720; frame rate 30000/1001 at 128 kb/s",
        "a audio unit is made as m4a, not mp3",
        "sample rate is N/A, expected 48000 and/or 44100",
        "moov atom not found",
        "",
    ],
)
def test_client_safe_leaves_plain_words_alone(plain: str) -> None:
    assert client_safe(plain) == plain


MESSAGE = FanOutMessage.model_validate(
    {
        "jobId": "01JJOB",
        "ownerId": "user-1",
        "source": {"bucket": "internal-uploads-bucket", "key": "uploads/01JJOB/source", "etag": "abc"},
        "probe": {"durationMs": 1000},
        "renditions": [{"name": "720p", "width": 1280, "height": 720}],
    }
)


def test_a_failed_event_never_carries_a_location_a_producer_let_through() -> None:
    # GIVEN a failure reason that names the source, an ARN and a working file, as an older producer wrote it
    reason = (
        "s3://internal-uploads-bucket/uploads/01JJOB/source: refused by arn:aws:iam::123456789012:role/transcode\n"
        "/tmp/transcode-abc/source: Invalid data found when processing input"
    )

    # WHEN the Failed event is built
    event = failed_event(MESSAGE, "720p", "lambda", "TRANSCODE_FAILED", reason)

    # THEN its message says what failed, without where
    assert event.error.code == "TRANSCODE_FAILED"
    assert event.error.message == "[object]: refused by [resource]\nsource: Invalid data found when processing input"


def test_a_failed_event_keeps_the_end_of_a_long_reason_after_redacting_it() -> None:
    reason = "x" * 1000 + " s3://internal-uploads-bucket/" + "k" * 600

    event = failed_event(MESSAGE, "720p", "lambda", "TRANSCODE_FAILED", reason)

    assert event.error.message.endswith("x [object]")
    assert len(event.error.message) == ERROR_MESSAGE_CHARS
    assert_client_safe(event.error.message)


def test_source_replaced_is_one_code_and_one_wording() -> None:
    assert (SOURCE_REPLACED_CODE, SOURCE_REPLACED_MESSAGE) == (
        "SOURCE_REPLACED",
        "the upload was replaced after it was validated",
    )


@pytest.mark.media
def test_a_file_ffprobe_cannot_read_is_named_without_its_folder(tmp_path: Path) -> None:
    # GIVEN a working file that is not media
    path = tmp_path / "transcode-abc" / "720p.mp4"
    path.parent.mkdir()
    path.write_bytes(b"not a video at all\n" * 100)

    # WHEN ffprobe is asked to read it
    with pytest.raises(FfmpegFailed) as raised:
        probe_file(path)

    # THEN the reason names the file, never the folder it is in (callers pass it on to the client)
    assert "720p.mp4" in str(raised.value)
    assert str(tmp_path) not in str(raised.value)
    assert str(tmp_path) not in raised.value.stderr_tail
