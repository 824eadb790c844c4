"""Download links into the outputs bucket: the `download_url` of the job view, which the api and webhooks render."""

from __future__ import annotations

from typing import Any

from functions.common.clients import presigning_s3_client


class DownloadLinks:
    """Presigned GET links, only ever for the outputs bucket, whatever a record says."""

    def __init__(self, bucket: str, ttl_seconds: int, s3: Any = None) -> None:
        self._bucket = bucket
        self._ttl_seconds = ttl_seconds
        self._s3 = s3 or presigning_s3_client()

    def url(self, key: str) -> str:
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=self._ttl_seconds
        )
