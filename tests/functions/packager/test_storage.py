"""The packager's S3 adapter against moto: renditions read from the outputs bucket, package files written to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.exceptions import S3UploadFailedError
from botocore.exceptions import ClientError

from functions.contracts.playback import PackagingSource
from functions.packager.adapters import S3PlaybackStore
from functions.packager.service import PackagedFile, RenditionMissing
from tests.functions.conftest import REGION
from tests.functions.packager.conftest import JOB_ID, OUTPUTS, rendition_key

RENDITION = PackagingSource(rendition="180p", bucket=OUTPUTS, key=rendition_key("180p"), width=320, height=180)


def s3() -> Any:
    return boto3.client("s3", region_name=REGION)


def test_a_rendition_is_downloaded_from_the_outputs_bucket(buckets: dict[str, str], tmp_path: Path) -> None:
    s3().put_object(Bucket=OUTPUTS, Key=RENDITION.key, Body=b"an mp4")

    S3PlaybackStore(s3(), OUTPUTS).download_rendition(RENDITION, tmp_path / "180p.mp4")

    assert (tmp_path / "180p.mp4").read_bytes() == b"an mp4"


def test_a_rendition_that_is_not_there_is_missing(buckets: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(RenditionMissing) as raised:
        S3PlaybackStore(s3(), OUTPUTS).download_rendition(RENDITION, tmp_path / "180p.mp4")
    assert str(raised.value) == "rendition 180p is missing from the job's outputs"


class Refusing:
    """An S3 client whose every call is refused with `code`."""

    def __init__(self, code: str) -> None:
        self.code = code

    def download_file(self, *args: Any, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "HeadObject")


@pytest.mark.parametrize("code", ["403", "AccessDenied", "SlowDown", "InternalError"])
def test_any_other_s3_error_propagates_so_the_message_is_retried(code: str, tmp_path: Path) -> None:
    with pytest.raises(ClientError):
        S3PlaybackStore(Refusing(code), OUTPUTS).download_rendition(RENDITION, tmp_path / "180p.mp4")


@pytest.mark.parametrize(("attempt", "named"), [(1, {}), (2, {"attempt": "2"})])
def test_package_files_are_uploaded_with_their_content_type_and_the_jobs_metadata(
    buckets: dict[str, str], tmp_path: Path, attempt: int, named: dict[str, str]
) -> None:
    files = []
    for index, (name, content_type) in enumerate(
        [("hls/180p/seg_00000.m4s", "video/iso.segment"), ("hls/master.m3u8", "application/vnd.apple.mpegurl")]
    ):
        path = tmp_path / f"file-{index}"
        path.write_bytes(b"x" * (index + 10))
        files.append(PackagedFile(path, f"outputs/{JOB_ID}/{name}", content_type))

    stored = S3PlaybackStore(s3(), OUTPUTS).upload_files(files, JOB_ID, attempt=attempt)

    assert stored == 10 + 11
    for packaged in files:
        head = s3().head_object(Bucket=OUTPUTS, Key=packaged.key)
        assert head["ContentType"] == packaged.contentType
        assert head["Metadata"] == {"job-id": JOB_ID, "rendition": "playback", **named}
        assert head["ContentLength"] == packaged.path.stat().st_size


def test_nothing_to_upload_stores_nothing(buckets: dict[str, str]) -> None:
    assert S3PlaybackStore(s3(), OUTPUTS).upload_files([], JOB_ID, attempt=1) == 0


def test_a_refused_upload_propagates(buckets: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "poster.jpg"
    path.write_bytes(b"jpeg")
    store = S3PlaybackStore(s3(), "no-such-bucket")

    with pytest.raises(S3UploadFailedError, match="NoSuchBucket"):
        store.upload_files([PackagedFile(path, f"outputs/{JOB_ID}/poster.jpg", "image/jpeg")], JOB_ID, attempt=1)
