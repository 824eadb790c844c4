"""The fan-out message as the `mediaconvert` queue delivers it, and the encode plans MediaConvert gets from it.

The body is the message ingest publishes (docs/CONTRACTS.md "Fan-out message", the model the transcoders parse too):
only QUEUED renditions, each with its display-oriented size and bitrate caps. A body that does not match fails
validation in the batch processor, is retried, and ends in the DLQ.
"""

from __future__ import annotations

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import Json

from functions.transcode.messages import EncodePlan, FanOutMessage


class MalformedMessage(ValueError):
    """The message parses but cannot be encoded (a rendition without its bitrates); retrying will not help."""


class SubmitQueueRecord(SqsRecordModel):
    """An SQS record of the `mediaconvert` queue: the body is the raw-delivered fan-out message."""

    body: Json[FanOutMessage]  # type: ignore[assignment]


def encode_plans(message: FanOutMessage) -> list[EncodePlan]:
    """Every rendition of the message, sizes rounded down to even (H.264 4:2:0), in the message's order."""
    plans = []
    for entry in message.renditions:
        if entry.maxVideoBitrateKbps is None or entry.audioBitrateKbps is None:
            raise MalformedMessage(f"rendition {entry.name} has no bitrates")
        plans.append(
            EncodePlan(
                name=entry.name,
                width=max(2, entry.width - entry.width % 2),
                height=max(2, entry.height - entry.height % 2),
                maxVideoBitrateKbps=entry.maxVideoBitrateKbps,
                audioBitrateKbps=entry.audioBitrateKbps,
            )
        )
    return plans
