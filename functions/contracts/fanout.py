"""The fan-out message (docs/CONTRACTS.md "Fan-out message"): ingest builds it, transcode and submit parse it.

SNS delivers it raw to each consumer's queue, so an SQS body is the JSON ingest published. A body that does not
match fails validation in the consumer's batch processor, is retried and ends in the DLQ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from pydantic import BaseModel, ConfigDict, Field, Json, model_validator

from functions.common.renditions import Rendition
from functions.contracts.jobs import JobRecord, Probe, SegmentPlan
from functions.contracts.media import MediaType, SegmentPart, UnitKind


class SourceObject(BaseModel):
    """Where the upload is."""

    bucket: str = Field(min_length=1)
    key: str = Field(min_length=1)
    etag: str | None = None
    """The ETag ingest validated (unquoted): the source is read only while it is still that object."""


SIZED_KINDS = frozenset({UnitKind.VIDEO, UnitKind.IMAGE, UnitKind.WAVEFORM})
"""Units whose output has a planned width and height."""


class PlannedRendition(BaseModel):
    """One unit of work as ingest planned it for this source: what it makes, at what display size and bitrates."""

    name: str = Field(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9-]+$")
    kind: UnitKind = UnitKind.VIDEO
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    maxVideoBitrateKbps: int | None = Field(default=None, gt=0)
    audioBitrateKbps: int | None = Field(default=None, gt=0)
    format: str | None = Field(default=None, pattern=r"^[a-z0-9]+$")
    """The output's format: `webp` or `jpeg` for an image derivative, `m4a` for audio, `png` for a waveform."""
    watermark: bool = False
    """An image derivative carries the stack's watermark."""

    @model_validator(mode="after")
    def _sized(self) -> PlannedRendition:
        if self.kind in SIZED_KINDS and (self.width is None or self.height is None):
            raise ValueError(f"a {self.kind} unit needs its width and height")
        return self


UNIT_DEFAULTS = {"kind": UnitKind.VIDEO.value, "format": None, "watermark": False}


class Segment(BaseModel):
    """Which part of a segment-parallel rendition a message asks for."""

    part: SegmentPart
    index: int = Field(default=0, ge=0)
    """The video segment (0-based); 0 for the audio and the stitch."""
    count: int = Field(ge=2)
    """Video segments of the rendition."""
    seconds: int = Field(gt=0)
    """Length of every segment but the last, a multiple of the 2 s GOP: segments start on the keyframe grid."""

    @model_validator(mode="after")
    def _within(self) -> Segment:
        if self.index >= self.count:
            raise ValueError(f"segment {self.index} of {self.count} does not exist")
        return self

    @property
    def start_seconds(self) -> int:
        return self.index * self.seconds


class FanOutMessage(BaseModel):
    """The body ingest publishes to the validated topic, listing the QUEUED renditions."""

    model_config = ConfigDict(extra="allow")

    jobId: str = Field(min_length=1)
    ownerId: str = Field(min_length=1)
    engine: str = "lambda"
    attempt: int = Field(default=1, ge=1)
    """The job's attempt this work belongs to (`job.attempt`); a worker drops work of an attempt no longer current."""
    source: SourceObject
    probe: Probe
    renditions: list[PlannedRendition]
    segment: Segment | None = None
    """Set on the units of a segment-parallel rendition (one rendition per message): which part to make."""

    @classmethod
    def for_job(cls, job: JobRecord, *, bucket: str, key: str, etag: str | None) -> FanOutMessage:
        """The message for a job as written (not the validation in hand), so a retried publish sends the same plan."""
        if job.probe is None:
            raise ValueError(f"job {job.jobId} has no probe: it was not validated")
        return cls(
            jobId=job.jobId,
            ownerId=job.ownerId,
            engine=job.engine or "lambda",
            attempt=job.attempt,
            source=SourceObject(bucket=bucket, key=key, etag=etag or None),
            probe=job.probe,
            renditions=[
                PlannedRendition.model_validate(r.model_dump(exclude_none=True)) for r in job.queued_renditions()
            ],
        )

    def per_segment(self, job: JobRecord) -> list[FanOutMessage]:
        """The fan-out of a video job: one message per part of each segment-parallel rendition (every video segment,
        then its audio when the source has one), and one message listing the renditions encoded whole, if any."""
        whole = [unit for unit in self.renditions if _segments_of(job, unit.name) is None]
        messages = [self.model_copy(update={"renditions": whole})] if whole else []
        for unit in self.renditions:
            plan = _segments_of(job, unit.name)
            if plan is None:
                continue
            parts = [
                Segment(part=SegmentPart.VIDEO, index=i, count=plan.count, seconds=plan.seconds)
                for i in range(plan.count)
            ]
            if plan.audio:
                parts.append(Segment(part=SegmentPart.AUDIO, count=plan.count, seconds=plan.seconds))
            messages.extend(self.model_copy(update={"renditions": [unit], "segment": part}) for part in parts)
        return messages

    def stitch_unit(self, job: JobRecord, rendition: str) -> FanOutMessage:
        """The message that asks the rendition's function to join its segments (the tracker's fan-in sends it)."""
        plan = _segments_of(job, rendition)
        if plan is None:
            raise ValueError(f"job {job.jobId}: rendition {rendition} is not encoded in segments")
        unit = PlannedRendition.model_validate(job.renditions[rendition].model_dump(exclude_none=True))
        stitch = Segment(part=SegmentPart.STITCH, count=plan.count, seconds=plan.seconds)
        return self.model_copy(update={"renditions": [unit], "segment": stitch})

    def per_unit(self) -> list[FanOutMessage]:
        """One message per planned unit: how image and audio jobs fan out to their one queue, so that every unit is
        received, retried and dead-lettered on its own and the units run in parallel."""
        return [self.model_copy(update={"renditions": [unit]}) for unit in self.renditions]

    def body(self) -> str:
        """The compact JSON published (no `etag` when ingest had none), ASCII-escaped as `json.dumps` writes it.

        A unit's `kind`, `format` and `watermark` are left out at their defaults, so a video rendition reads exactly as
        it did before images and audio existed (and a consumer of that time still parses it)."""
        exclude: dict[str, Any] = {"source": {"etag"}} if not self.source.etag else {}
        if self.attempt == 1:
            exclude["attempt"] = True  # a first attempt reads exactly as before attempts existed
        if self.segment is None:
            exclude["segment"] = True  # a rendition encoded whole reads exactly as before segments existed
        body = self.model_dump(mode="json", exclude=exclude or None)
        body["probe"] = self.probe.model_dump(mode="json", exclude_unset=True)  # the probe as ingest stored it
        for unit in body["renditions"]:
            for name, default in UNIT_DEFAULTS.items():
                if unit.get(name) == default:
                    del unit[name]
        return json.dumps(body, separators=(",", ":"))

    def attributes(self, media_type: str | None) -> dict[str, dict[str, str]]:
        """SNS `MessageAttributes`: what the consumers' filter policies match."""
        return {
            "mediaType": {"DataType": "String", "StringValue": media_type or MediaType.VIDEO},
            "engine": {"DataType": "String", "StringValue": self.engine},
            "renditions": {"DataType": "String.Array", "StringValue": json.dumps([r.name for r in self.renditions])},
        }


def _segments_of(job: JobRecord, rendition: str) -> SegmentPlan | None:
    record = job.renditions.get(rendition)
    return record.segments if record is not None else None


class FanOutQueueRecord(SqsRecordModel):
    """An SQS record of a consumer's queue: the body is the raw-delivered fan-out message."""

    body: Json[FanOutMessage]  # type: ignore[assignment]


TRANSCODE_RESERVE_SECONDS = 30.0
"""What a Lambda transcoder keeps back from its timeout to read its output back, upload it and announce it.

Ingest sends Lambda only the jobs whose estimated encode fits the rest of the timeout, so both read it here."""


@dataclass(frozen=True)
class EncodePlan:
    """A rendition to encode, with the bitrates settled (the message's, else the ladder's)."""

    name: str
    width: int
    """Display width of the output, even."""
    height: int
    """Display height of the output, even."""
    maxVideoBitrateKbps: int
    audioBitrateKbps: int


def plan_for(message: FanOutMessage, rendition: Rendition) -> EncodePlan | None:
    """The message's entry for a rendition, or None when ingest did not plan it (e.g. skipped: no upscaling).

    Odd planned sizes are rounded down to even ones: H.264 4:2:0 cannot code odd dimensions.
    """
    entry = next((r for r in message.renditions if r.name == rendition.name), None)
    if entry is None or entry.width is None or entry.height is None:
        return None
    return EncodePlan(
        name=entry.name,
        width=max(2, entry.width - entry.width % 2),
        height=max(2, entry.height - entry.height % 2),
        maxVideoBitrateKbps=entry.maxVideoBitrateKbps or rendition.maxVideoBitrateKbps,
        audioBitrateKbps=entry.audioBitrateKbps or rendition.audioBitrateKbps,
    )
