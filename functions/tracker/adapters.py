"""boto3 behind the tracker's own port: reading back the size of a rendition MediaConvert wrote.

The jobs table and the bus are the shared adapters (`functions.common.jobs_table.JobsTable`,
`functions.common.event_bus.EventPublisher`); their AWS errors propagate, so EventBridge retries the event.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.common.clients import aws_client
from functions.tracker.service import OutputReadFailed


class S3Outputs:
    """The outputs bucket, read with HEAD: MediaConvert's COMPLETE event does not say how large an output is."""

    def __init__(self, s3: Any = None) -> None:
        self._s3 = s3 or aws_client("s3")

    def size(self, bucket: str, key: str) -> int:
        try:
            head = self._s3.head_object(Bucket=bucket, Key=key)
        except (ClientError, BotoCoreError) as err:
            raise OutputReadFailed(str(err)) from err
        return int(head["ContentLength"])
