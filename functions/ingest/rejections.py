"""Why an upload is refused: the codes of docs/CONTRACTS.md ("Error codes on jobs") and the error that carries one."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class RejectionCode(StrEnum):
    EMPTY_UPLOAD = "EMPTY_UPLOAD"
    UPLOAD_TOO_LARGE = "UPLOAD_TOO_LARGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    CORRUPT_MEDIA = "CORRUPT_MEDIA"
    NO_VIDEO_STREAM = "NO_VIDEO_STREAM"
    DURATION_TOO_LONG = "DURATION_TOO_LONG"
    RESOLUTION_TOO_HIGH = "RESOLUTION_TOO_HIGH"
    UPLOAD_MISSING = "UPLOAD_MISSING"


class UploadRejected(Exception):
    """The upload breaks a rule. Final: the job is REJECTED with this code and message, and nothing is retried.

    `message` is shown to the client on the job, so it says what is wrong in plain words and never names
    local paths or internals; `detail` is for the logs only.
    """

    def __init__(self, code: RejectionCode, message: str, *, probe: dict[str, Any] | None = None, detail: str = ""):
        super().__init__(f"{code}: {message}" + (f" [{detail}]" if detail else ""))
        self.code = code
        self.message = message
        self.probe = probe
        self.detail = detail
