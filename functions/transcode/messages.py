"""The fan-out message a transcoder receives (docs/CONTRACTS.md "Fan-out message"), as typed models.

SNS delivers it raw to the `transcode-{name}` queue, so the SQS body is the JSON the ingest function published.
A record whose body does not match fails validation in the batch processor, is retried and ends in the DLQ.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_lambda_powertools.utilities.parser import BaseModel
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import ConfigDict, Field, Json

from functions.common.renditions import Rendition


class SourceObject(BaseModel):
    """Where the upload is."""

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    etag: str | None = None
    """The ETag ingest validated (unquoted): the source is read only while it is still that object."""


class SourceProbe(BaseModel):
    """What ingest learnt about the source; only the fields the encoder needs are declared, the rest are kept."""

    model_config = ConfigDict(extra="allow")

    durationMs: int = Field(ge=0)
    hasAudio: bool
    rotation: int = 0
    frameRate: float | None = Field(default=None, ge=0)
    width: int | None = None
    height: int | None = None
    formatName: str | None = Field(default=None, pattern=r"^[a-z0-9_]+(,[a-z0-9_]+)*$")
    """The demuxer ffprobe chose at ingest (e.g. `mov,mp4,m4a,3gp,3g2,mj2`); the encode may use only that one."""


class PlannedRendition(BaseModel):
    """One rendition as ingest planned it for this source: display-oriented size and bitrate caps."""

    name: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9-]+$")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    maxVideoBitrateKbps: int | None = Field(default=None, gt=0)
    audioBitrateKbps: int | None = Field(default=None, gt=0)


class FanOutMessage(BaseModel):
    """The body ingest publishes to the validated topic, listing the QUEUED renditions."""

    model_config = ConfigDict(extra="allow")

    jobId: str = Field(min_length=1)
    ownerId: str = Field(min_length=1)
    engine: str = "lambda"
    source: SourceObject
    probe: SourceProbe
    renditions: list[PlannedRendition]


class TranscodeQueueRecord(SqsRecordModel):
    """An SQS record of a `transcode-{name}` queue: the body is the raw-delivered fan-out message."""

    body: Json[FanOutMessage]  # type: ignore[assignment]


@dataclass(frozen=True)
class EncodePlan:
    """The rendition to encode, with the bitrates settled (the message's, else the function's own rendition)."""

    name: str
    width: int
    """Display width of the output, even."""
    height: int
    """Display height of the output, even."""
    maxVideoBitrateKbps: int
    audioBitrateKbps: int


def plan_for(message: FanOutMessage, rendition: Rendition) -> EncodePlan | None:
    """This function's entry of the message, or None when ingest did not plan it (e.g. skipped: no upscaling).

    Odd planned sizes are rounded down to even ones: H.264 4:2:0 cannot code odd dimensions.
    """
    entry = next((r for r in message.renditions if r.name == rendition.name), None)
    if entry is None:
        return None
    return EncodePlan(
        name=entry.name,
        width=max(2, entry.width - entry.width % 2),
        height=max(2, entry.height - entry.height % 2),
        maxVideoBitrateKbps=entry.maxVideoBitrateKbps or rendition.maxVideoBitrateKbps,
        audioBitrateKbps=entry.audioBitrateKbps or rendition.audioBitrateKbps,
    )
