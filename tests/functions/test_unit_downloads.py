"""The unit functions' source download (`S3UnitStore.download_source`): a small source on one GET, a larger one in
parallel ranged parts written at their offsets, every part only of the object the first GET read (moto's S3)."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from functions.common.unit_adapters import S3UnitStore
from functions.common.unit_worker import SourceMissing, SourceReplaced
from functions.contracts.fanout import SourceObject
from tests.functions.conftest import REGION

PART = 1024
KEY = "uploads/job-1/source"


class RecordingS3:
    """The S3 client, recording every get_object's arguments; `after_first_get` runs once the first one answered."""

    def __init__(self, client: Any, after_first_get: Any = None) -> None:
        self._client = client
        self._after_first_get = after_first_get
        self._lock = threading.Lock()
        self.gets: list[dict[str, Any]] = []

    def get_object(self, **kwargs: Any) -> dict[str, Any]:
        response = self._client.get_object(**kwargs)
        with self._lock:
            self.gets.append(kwargs)
            first = len(self.gets) == 1
        if first and self._after_first_get is not None:
            self._after_first_get()
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def put_source(data: bytes) -> SourceObject:
    response = boto3.client("s3", region_name=REGION).put_object(Bucket="test-uploads", Key=KEY, Body=data)
    return SourceObject(bucket="test-uploads", key=KEY, etag=response["ETag"].strip('"'))


def store(client: Any) -> S3UnitStore:
    return S3UnitStore(client, "test-outputs", part_bytes=PART, download_threads=4)


@pytest.mark.parametrize("size", [PART - 1, PART, PART + 1, 5 * PART + 17])
def test_the_download_is_exactly_the_object_below_at_and_above_one_part(
    buckets: dict[str, str], tmp_path: Path, size: int
) -> None:
    # GIVEN a source of `size` random bytes, validated by ingest (its ETag)
    data = os.urandom(size)
    source = put_source(data)
    client = RecordingS3(boto3.client("s3", region_name=REGION))

    # WHEN it is downloaded with 1 KiB parts
    store(client).download_source(source, tmp_path / "source")

    # THEN the file is the object, byte for byte
    assert hashlib.sha256((tmp_path / "source").read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    # AND one GET reads a source of at most one part, one GET per part a larger one, each only of the validated object
    parts = -(-size // PART)
    assert len(client.gets) == parts
    assert all(get["IfMatch"] == f'"{source.etag}"' for get in client.gets)
    ranges = sorted(get["Range"] for get in client.gets[1:])
    assert ranges == sorted(f"bytes={i * PART}-{min((i + 1) * PART, size) - 1}" for i in range(1, parts))


def test_without_an_etag_the_parts_read_the_object_the_first_get_read(buckets: dict[str, str], tmp_path: Path) -> None:
    data = os.urandom(3 * PART)
    source = put_source(data).model_copy(update={"etag": None})
    client = RecordingS3(boto3.client("s3", region_name=REGION))

    store(client).download_source(source, tmp_path / "source")

    assert (tmp_path / "source").read_bytes() == data
    assert "IfMatch" not in client.gets[0]
    assert {get["IfMatch"] for get in client.gets[1:]} == {f'"{hashlib.md5(data).hexdigest()}"'}


@pytest.mark.parametrize("size", [PART // 2, 4 * PART])
def test_a_source_replaced_since_it_was_validated_is_source_replaced(
    buckets: dict[str, str], tmp_path: Path, size: int
) -> None:
    source = put_source(os.urandom(size))
    put_source(os.urandom(size))  # the upload form POSTed again

    with pytest.raises(SourceReplaced, match="replaced after it was validated"):
        store(boto3.client("s3", region_name=REGION)).download_source(source, tmp_path / "source")


def test_a_source_replaced_during_the_download_is_source_replaced(buckets: dict[str, str], tmp_path: Path) -> None:
    # GIVEN a source of several parts, replaced once the first GET has answered
    source = put_source(os.urandom(4 * PART))
    client = RecordingS3(boto3.client("s3", region_name=REGION), lambda: put_source(os.urandom(4 * PART)))

    # WHEN it is downloaded THEN the parts' IfMatch fails: the file would mix two uploads
    with pytest.raises(SourceReplaced):
        store(client).download_source(source, tmp_path / "source")


@pytest.mark.parametrize("etag", ["abc123", None])
def test_a_deleted_source_is_source_missing(buckets: dict[str, str], tmp_path: Path, etag: str | None) -> None:
    source = SourceObject(bucket="test-uploads", key=KEY, etag=etag)

    with pytest.raises(SourceMissing) as raised:
        store(boto3.client("s3", region_name=REGION)).download_source(source, tmp_path / "source")
    assert type(raised.value) is SourceMissing
