"""The MediaConvert adapter: CreateJob, with the service's refusal turned into a domain error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

# The one CreateJob error that says "these settings, for this input, will never work"; every other error
# (throttling, 5xx, a missing queue or role permission) is worth retrying and, if it persists, ends in the DLQ.
SETTINGS_REFUSED = "BadRequestException"


class SettingsRefused(RuntimeError):
    """MediaConvert answered BadRequest: the job settings are invalid, and would be on every retry."""


@dataclass(frozen=True)
class CreatedJob:
    """The MediaConvert job CreateJob answered with (a new one, or the one an earlier request with the token made)."""

    id: str
    arn: str
    status: str


class MediaConvertJobs:
    def __init__(self, client: Any) -> None:
        self._client = client

    def create_job(self, request: dict[str, Any]) -> CreatedJob:
        """`CreateJob(**request)`; raises SettingsRefused for a BadRequest, ClientError for anything else."""
        try:
            response = self._client.create_job(**request)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == SETTINGS_REFUSED:
                raise SettingsRefused(err.response["Error"].get("Message", "")) from err
            raise
        job = response["Job"]
        return CreatedJob(id=job["Id"], arn=job.get("Arn", ""), status=job.get("Status", ""))
