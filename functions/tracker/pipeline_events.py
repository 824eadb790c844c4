"""Rendition events from the pipeline's own transcoders (source `media-pipeline`) mapped to state-machine calls.

Pure: a detail (plain dict) in, a typed event out; a typed event and a time in, a job transition out.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from functions.common import job_state
from functions.common.events import DetailType
from functions.common.job_state import Transition

NonNegative = Annotated[int, Field(ge=0)]


class _Detail(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    job_id: str = Field(min_length=1)
    rendition: str = Field(min_length=1)


class RenditionProgress(_Detail):
    """`Rendition Progress`: a transcoder is working on a rendition (0 when it starts)."""

    percent: Annotated[int, Field(ge=0, le=100)]


class RenditionCompleted(_Detail):
    """`Rendition Completed`: the output exists and was read back."""

    engine: str
    bucket: str
    key: str
    width: NonNegative | None = None
    height: NonNegative | None = None
    duration_ms: NonNegative | None = None
    bytes: NonNegative | None = None
    content_type: str | None = None

    def output(self) -> dict[str, Any]:
        """The rendition fields the job record keeps (docs/CONTRACTS.md, `renditions`)."""
        return {
            "width": self.width,
            "height": self.height,
            "durationMs": self.duration_ms,
            "bytes": self.bytes,
            "contentType": self.content_type,
            "bucket": self.bucket,
            "key": self.key,
            "engine": self.engine,
        }


class ErrorDetail(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    code: str = Field(min_length=1)
    message: str


class RenditionFailed(_Detail):
    """`Rendition Failed`: the transcoder gave up on a rendition."""

    engine: str | None = None
    error: ErrorDetail


PipelineEvent = RenditionProgress | RenditionCompleted | RenditionFailed

_MODELS: dict[str, type[PipelineEvent]] = {
    DetailType.RENDITION_PROGRESS: RenditionProgress,
    DetailType.RENDITION_COMPLETED: RenditionCompleted,
    DetailType.RENDITION_FAILED: RenditionFailed,
}


def parse_pipeline_event(detail_type: str, detail: dict[str, Any]) -> PipelineEvent | None:
    """The typed event, or None for a detail type the tracker does not apply.

    Raises pydantic.ValidationError when the detail does not have the documented shape.
    """
    model = _MODELS.get(detail_type)
    return model.model_validate(detail) if model else None


def pipeline_transition(event: PipelineEvent, *, now: int) -> Transition:
    """The state-machine call an event stands for."""
    if isinstance(event, RenditionProgress):
        return partial(job_state.record_progress, name=event.rendition, percent=event.percent, now=now)
    if isinstance(event, RenditionCompleted):
        return partial(job_state.complete_rendition, name=event.rendition, output=event.output(), now=now)
    return partial(
        job_state.fail_rendition, name=event.rendition, code=event.error.code, message=event.error.message, now=now
    )
