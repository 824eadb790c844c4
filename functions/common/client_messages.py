"""What a client may read in an error: what failed, in plain words, never where anything is kept.

A job's `error.message` and its renditions' reach the client through `GET /jobs/{id}` and every webhook. They must
not name the deployment's buckets, object keys, ARNs (roles, tables, queues) or endpoints, nor the paths of a
function's working files: none of it helps the client, and all of it maps the deployment for an attacker. Producers
write their reasons that way at the source and log the details for operators (the Powertools logger, with the
jobId). `client_safe` is the net under them, applied where a reason leaves a function for the job: unit failure
events (`unit_worker.failed_event`) and ingest's rejections.

It cannot know every name (a bucket named in plain words is invisible to it), so it is a defence in depth, not a
licence to pass a tool's or an SDK's message on unread.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_STOP = r"\s'\"<>()\[\]{},;"
"""Characters that end a location inside a sentence: whitespace, quotes, brackets, separators."""
_TRAILING = ".:"
"""Punctuation after a location that belongs to the sentence, not to the location."""
_S3_URI = re.compile(rf"s3://[^{_STOP}]*")
_ARN = re.compile(rf"\barn:aws[a-z-]*:[^{_STOP}]*")
_URL = re.compile(rf"\bhttps?://[^{_STOP}]*")
_OBJECT_KEY = re.compile(rf"\b(?:uploads|outputs)/[^{_STOP}]+")
"""Keys under the pipeline's two prefixes (docs/CONTRACTS.md "Keys"), with or without their bucket."""
_PATH = re.compile(rf"(?:\bfile:|(?<![\w.:/~-]))(/[^{_STOP}:]+)")
"""An absolute path (or a `file:` URL), not a ratio or a unit: `30000/1001`, `kb/s` and `N/A` are not paths."""

OBJECT = "[object]"
RESOURCE = "[resource]"
URL = "[url]"


def _placeholder(text: str) -> Callable[[re.Match[str]], str]:
    """Replaces a match with `text`, keeping the punctuation that ended the sentence around it (`…/source: Invalid`)."""

    def replace(match: re.Match[str]) -> str:
        location = match.group(0)
        return text + location[len(location.rstrip(_TRAILING)) :]

    return replace


def _file_name(match: re.Match[str]) -> str:
    """A path's last part: `/tmp/transcode-k2j4/source` says `source`, which is what the client uploaded."""
    return match.group(1).rstrip("/").rsplit("/", 1)[-1] or "[path]"


def client_safe(message: str) -> str:
    """`message` with every S3 URI and pipeline object key (`[object]`), ARN (`[resource]`) and URL (`[url]`)
    replaced, and every absolute path cut to its file name; everything else as it was."""
    message = _S3_URI.sub(_placeholder(OBJECT), message)
    message = _ARN.sub(_placeholder(RESOURCE), message)
    message = _URL.sub(_placeholder(URL), message)
    message = _OBJECT_KEY.sub(_placeholder(OBJECT), message)
    return _PATH.sub(_file_name, message)
