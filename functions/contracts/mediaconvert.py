"""What the pipeline tells MediaConvert about a job, and reads back from its events.

submit puts `UserMetadata` on CreateJob; MediaConvert copies it into every "Job State Change" event, where the
tracker's rule matches `pipeline` and the tracker finds the pipeline's job by `jobId` (not MediaConvert's own id).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class UserMetadata(BaseModel):
    """`UserMetadata` of a MediaConvert job: string to string, as MediaConvert requires."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    jobId: str | None = None
    """The pipeline's job this MediaConvert job encodes."""
    pipeline: str | None = None
    """The stack that submitted it: the tracker's rule matches only its own stack's events."""
    attempt: str | None = None
    """The job's attempt it encodes, from the second on (`"2"`, ...); absent for the first."""

    @property
    def attempt_number(self) -> int:
        """The attempt as a number: 1 when absent (jobs of earlier releases) or unreadable."""
        return int(self.attempt) if self.attempt is not None and self.attempt.isdigit() and int(self.attempt) else 1

    def to_metadata(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}
