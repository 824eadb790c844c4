"""The fan-out message (docs/CONTRACTS.md "Fan-out message") built from the job as written, and its SNS adapter.

Built from the stored job rather than from the validation in hand, so a retried publish sends the same plan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from functions.common.job_state import Job, RenditionStatus, renditions_in_order

MEDIA_TYPE_VIDEO = "video"
RENDITION_FIELDS = ("name", "width", "height", "maxVideoBitrateKbps", "audioBitrateKbps")


@dataclass(frozen=True)
class FanoutMessage:
    body: dict[str, Any]
    attributes: dict[str, dict[str, str]]
    """SNS `MessageAttributes`: what the consumers' filter policies match."""


def queued_renditions(job: Job) -> list[dict[str, Any]]:
    return [r for r in renditions_in_order(job) if r["status"] == RenditionStatus.QUEUED]


def fanout_message(job: Job, *, bucket: str, key: str, etag: str | None) -> FanoutMessage:
    """One message for every consumer; the `transcode-{name}` queues pick theirs by the `renditions` attribute.

    `source.etag` (beyond the contract's bucket and key) names the exact object that was validated, so a
    consumer can read it with `If-Match` and never transcode a file re-posted after validation.
    """
    queued = queued_renditions(job)
    source: dict[str, Any] = {"bucket": bucket, "key": key}
    if etag:
        source["etag"] = etag
    body = {
        "jobId": job["jobId"],
        "ownerId": job["ownerId"],
        "engine": job["engine"],
        "source": source,
        "probe": job["probe"],
        "renditions": [{field: r[field] for field in RENDITION_FIELDS} for r in queued],
    }
    attributes = {
        "mediaType": {"DataType": "String", "StringValue": job.get("mediaType") or MEDIA_TYPE_VIDEO},
        "engine": {"DataType": "String", "StringValue": job["engine"]},
        "renditions": {"DataType": "String.Array", "StringValue": json.dumps([r["name"] for r in queued])},
    }
    return FanoutMessage(body=body, attributes=attributes)


def accepted_detail(job: Job) -> dict[str, Any]:
    """Detail of `Job Accepted`: `{jobId, ownerId, engine, renditions: [QUEUED names]}`."""
    return {
        "jobId": job["jobId"],
        "ownerId": job["ownerId"],
        "engine": job["engine"],
        "renditions": [r["name"] for r in queued_renditions(job)],
    }


class FanoutPublisher:
    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self._topic_arn = topic_arn
        self._sns = sns_client

    def publish(self, message: FanoutMessage) -> str:
        """Publish to the validated topic; returns the SNS message ID. Errors propagate (the record is retried)."""
        response = self._sns.publish(
            TopicArn=self._topic_arn,
            Message=json.dumps(message.body, separators=(",", ":"), default=str),
            MessageAttributes=message.attributes,
        )
        return str(response["MessageId"])
