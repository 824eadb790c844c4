"""Event patterns, SNS filter policies and S3 key layout the program wires up: plain data, tested without Pulumi."""

from __future__ import annotations

from typing import Any

from functions.contracts.events import SOURCE, TRACKED_DETAIL_TYPES, DetailType
from functions.contracts.media import MediaType
from functions.contracts.webhooks import EVENT_TYPES as WEBHOOK_EVENT_TYPES

# Keys: see docs/CONTRACTS.md ("Keys"). The ingest queue hears about exactly uploads/{jobId}/source.
UPLOAD_PREFIX = "uploads/"
UPLOAD_SUFFIX = "/source"
# The copy of the validated upload MediaConvert reads (functions/submit/service.py); never announced to ingest.
VALIDATED_SUFFIX = "/validated"
OUTPUT_PREFIX = "outputs/"
SEGMENT_PARTS_SUFFIX = "/segments/*"
"""`outputs/{jobId}/segments/...`: the parts of segment-parallel renditions, until their stitch."""

MEDIACONVERT_SOURCE = "aws.mediaconvert"
MEDIACONVERT_DETAIL_TYPE = "MediaConvert Job State Change"
SWEEP_SCHEDULE = "rate(5 minutes)"


def rendition_filter_policy(rendition_name: str) -> dict[str, list[str]]:
    """Filter policy of the `transcode-{name}` queue: Lambda-engine video jobs that queued this rendition."""
    return {"mediaType": ["video"], "engine": ["lambda"], "renditions": [rendition_name]}


def mediaconvert_filter_policy() -> dict[str, list[str]]:
    """Filter policy of the `mediaconvert` queue: every video job ingest routed to MediaConvert, whatever it queued."""
    return {"mediaType": ["video"], "engine": ["mediaconvert"]}


def images_filter_policy() -> dict[str, list[str]]:
    """Filter policy of the `images` queue: every unit of an image job (ingest publishes one message per unit)."""
    return {"mediaType": [MediaType.IMAGE.value]}


def audio_filter_policy() -> dict[str, list[str]]:
    """Filter policy of the `audio` queue: every unit of an audio job (the AAC rendition and the waveform)."""
    return {"mediaType": [MediaType.AUDIO.value]}


def pipeline_events_pattern() -> dict[str, Any]:
    """The tracker's rule on the custom bus: the pipeline's own rendition events."""
    return {"source": [SOURCE], "detail-type": [str(detail_type) for detail_type in TRACKED_DETAIL_TYPES]}


def packaging_requests_pattern() -> dict[str, Any]:
    """The packager's rule on the custom bus: the tracker's `Packaging Requested`, once a video job's renditions
    all settled."""
    return {"source": [SOURCE], "detail-type": [str(DetailType.PACKAGING_REQUESTED)]}


def job_outcomes_pattern() -> dict[str, Any]:
    """The webhooks' rule on the custom bus: the job outcomes announced as webhooks (completed, failed, ...)."""
    return {"source": [SOURCE], "detail-type": [str(detail_type) for detail_type in WEBHOOK_EVENT_TYPES]}


def mediaconvert_state_change_pattern(stack: str) -> dict[str, Any]:
    """The tracker's rule on the default bus: MediaConvert job state changes of jobs this stack submitted."""
    return {
        "source": [MEDIACONVERT_SOURCE],
        "detail-type": [MEDIACONVERT_DETAIL_TYPE],
        "detail": {"userMetadata": {"pipeline": [stack]}},
    }


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """Exact-value matching as EventBridge rules and SNS filter policies apply it, for the subset used here."""
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif isinstance(actual, list):
            if not set(map(str, actual)) & set(map(str, expected)):
                return False
        elif actual not in expected:
            return False
    return True
