"""MediaConvert as the tests hold the program to it: the API model botocore ships, the service's output naming rules,
and a fake service behind a real boto3 client.

moto 5.2 has no MediaConvert backend, so `FakeMediaConvert` answers on botocore's `before-send` hook: the client
still validates and serializes every request against the real API model (rest-json, `POST /2017-08-29/jobs`), and
the fake reads the wire body, as a stand-in service would.
"""

from __future__ import annotations

import json
import posixpath
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.model import Shape
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("mediaconvert")
CREATE_JOB_INPUT = MODEL.operation_model("CreateJob").input_shape
ACCOUNT = "123456789012"
REGION = "us-east-1"
TOKEN_WINDOW_MS = 60_000  # MediaConvert returns the first job for a repeated ClientRequestToken within a minute
NUMBERS = ("integer", "long", "double", "float")


# --- the API model ---------------------------------------------------------------------------------------------


def constraint_errors(value: Any, shape: Shape, path: str) -> list[str]:
    """min/max/enum/pattern of the model, which botocore's ParamValidator leaves to the service (it checks types)."""
    errors: list[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for required in meta.get("required", []):
            if required not in value:
                errors.append(f"{path}: missing required {required}")
        for key, item in value.items():
            member = shape.members.get(key)
            if member is None:
                errors.append(f"{path}.{key}: not in the model")
                continue
            errors += constraint_errors(item, member, f"{path}.{key}")
    elif kind == "list" and isinstance(value, list):
        errors += _bounds(len(value), meta, f"{path} (length)")
        for index, item in enumerate(value):
            errors += constraint_errors(item, shape.member, f"{path}[{index}]")
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors += constraint_errors(key, shape.key, f"{path} key {key!r}")
            errors += constraint_errors(item, shape.value, f"{path}[{key!r}]")
    elif kind == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.enum}")
        errors += _bounds(len(value), meta, f"{path} (length)")
        if "pattern" in meta and not re.match(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind in NUMBERS and isinstance(value, int | float) and not isinstance(value, bool):
        errors += _bounds(value, meta, path)
    return errors


def _bounds(value: float, meta: dict[str, Any], path: str) -> list[str]:
    errors = []
    if "min" in meta and value < meta["min"]:
        errors.append(f"{path}: {value} < min {meta['min']}")
    if "max" in meta and value > meta["max"]:
        errors.append(f"{path}: {value} > max {meta['max']}")
    return errors


def create_job_errors(request: dict[str, Any]) -> list[str]:
    """Everything wrong with a CreateJob request: botocore's type/shape report plus the model's constraints."""
    report = ParamValidator().validate(request, CREATE_JOB_INPUT)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + constraint_errors(request, CREATE_JOB_INPUT, "CreateJob")


# --- where MediaConvert writes ---------------------------------------------------------------------------------

CONTAINER_EXTENSIONS = {"MP4": "mp4", "M3U8": "m3u8", "RAW": "jpg"}


def _base(destination: str, input_uri: str) -> str:
    """A destination ending in '/' takes the input's file name (without extension) as the base name."""
    if destination.endswith("/"):
        return destination + posixpath.splitext(posixpath.basename(urlsplit(input_uri).path))[0]
    return destination


def _video_details(output: dict[str, Any]) -> dict[str, int]:
    video = output.get("VideoDescription") or {}
    return {"widthInPx": video.get("Width", 0), "heightInPx": video.get("Height", 0)}


def output_group_details(settings: dict[str, Any], duration_ms: int) -> list[dict[str, Any]]:
    """`outputGroupDetails` of a COMPLETE event for these job settings, by MediaConvert's naming rules:
    file group outputs are `<base><NameModifier>.<extension>` (frame captures add `.NNNNNNN` before it); an HLS
    group's master playlist is `<base>.m3u8` and each variant's `<base><NameModifier>.m3u8`."""
    input_uri = settings["Inputs"][0]["FileInput"]
    groups: list[dict[str, Any]] = []
    for group in settings["OutputGroups"]:
        group_settings = group["OutputGroupSettings"]
        if group_settings["Type"] == "FILE_GROUP_SETTINGS":
            base = _base(group_settings["FileGroupSettings"]["Destination"], input_uri)
            details = []
            for output in group["Outputs"]:
                name = base + output.get("NameModifier", "")
                extension = output.get("Extension") or CONTAINER_EXTENSIONS[output["ContainerSettings"]["Container"]]
                codec = output["VideoDescription"]["CodecSettings"]["Codec"]
                path = f"{name}.0000000.{extension}" if codec == "FRAME_CAPTURE" else f"{name}.{extension}"
                details.append(
                    {"outputFilePaths": [path], "durationInMs": duration_ms, "videoDetails": _video_details(output)}
                )
            groups.append({"type": "FILE_GROUP", "outputDetails": details})
        elif group_settings["Type"] == "HLS_GROUP_SETTINGS":
            base = _base(group_settings["HlsGroupSettings"]["Destination"], input_uri)
            details = [
                {
                    "outputFilePaths": [f"{base}{output.get('NameModifier', '')}.m3u8"],
                    "durationInMs": duration_ms,
                    "videoDetails": _video_details(output),
                }
                for output in group["Outputs"]
            ]
            groups.append({"type": "HLS_GROUP", "playlistFilePaths": [f"{base}.m3u8"], "outputDetails": details})
    return groups


def state_change_event(
    request: dict[str, Any], status: str, *, mediaconvert_job_id: str, duration_ms: int = 10_000
) -> dict[str, Any]:
    """A "MediaConvert Job State Change" event, shaped like the fixtures, for a job submitted with `request`."""
    detail: dict[str, Any] = {
        "timestamp": 1_795_000_130_000,
        "accountId": ACCOUNT,
        "queue": request["Queue"],
        "jobId": mediaconvert_job_id,
        "status": status,
        "userMetadata": dict(request["UserMetadata"]),
    }
    if status == "COMPLETE":
        detail["outputGroupDetails"] = output_group_details(request["Settings"], duration_ms)
    return {
        "version": "0",
        "id": secrets.token_hex(8),
        "detail-type": "MediaConvert Job State Change",
        "source": "aws.mediaconvert",
        "account": ACCOUNT,
        "time": "2026-11-22T10:02:10Z",
        "region": REGION,
        "resources": [f"arn:aws:mediaconvert:{REGION}:{ACCOUNT}:jobs/{mediaconvert_job_id}"],
        "detail": detail,
    }


# --- a fake service --------------------------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


@dataclass
class FakeMediaConvert:
    """CreateJob (with ClientRequestToken idempotency), GetJob and ListJobs, in memory, on a real client's wire."""

    now_ms: int = 1_795_000_000_000
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    create_requests: list[dict[str, Any]] = field(default_factory=list)
    """Every CreateJob body received, as sent on the wire (camelCase member names)."""
    next_errors: list[tuple[int, str, str]] = field(default_factory=list)
    """(status, error type, message) answered to the next CreateJobs, first in first out."""
    endpoints: list[str] = field(default_factory=list)
    _tokens: dict[str, tuple[str, int]] = field(default_factory=dict)

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-send.mediaconvert", self._handle)
        return client

    def _handle(self, request: Any, **_: Any) -> AWSResponse:
        url = urlsplit(request.url)
        self.endpoints.append(f"{url.scheme}://{url.netloc}")
        if request.method == "POST" and url.path == "/2017-08-29/jobs":
            return self._create(request.url, json.loads(request.body))
        if request.method == "GET" and url.path.startswith("/2017-08-29/jobs/"):
            job = self.jobs.get(url.path.rsplit("/", 1)[-1])
            if job is None:
                return _error(request.url, 404, "NotFoundException", "job not found")
            return _answer(request.url, 200, {"job": job})
        if request.method == "GET" and url.path == "/2017-08-29/jobs":
            return _answer(request.url, 200, {"jobs": list(reversed(self.jobs.values()))})
        return _error(request.url, 400, "BadRequestException", f"the fake does not serve {request.method} {url.path}")

    def _create(self, url: str, body: dict[str, Any]) -> AWSResponse:
        self.create_requests.append(body)
        if self.next_errors:
            status, kind, message = self.next_errors.pop(0)
            return _error(url, status, kind, message)
        token = body.get("clientRequestToken")
        if token in self._tokens and self.now_ms - self._tokens[token][1] < TOKEN_WINDOW_MS:
            return _answer(url, 201, {"job": self.jobs[self._tokens[token][0]]})
        job_id = f"{self.now_ms}-{secrets.token_hex(3)}"
        job = {
            "id": job_id,
            "arn": f"arn:aws:mediaconvert:{REGION}:{ACCOUNT}:jobs/{job_id}",
            "status": "SUBMITTED",
            "role": body["role"],
            "queue": body.get("queue"),
            "settings": body["settings"],
            "userMetadata": body.get("userMetadata", {}),
            "statusUpdateInterval": body.get("statusUpdateInterval"),
            "clientRequestToken": token,
            "createdAt": self.now_ms // 1000,
        }
        self.jobs[job_id] = job
        if token:
            self._tokens[token] = (job_id, self.now_ms)
        return _answer(url, 201, {"job": job})


def _answer(url: str, status: int, body: dict[str, Any]) -> AWSResponse:
    headers = {"Content-Type": "application/json", "x-amzn-RequestId": secrets.token_hex(8)}
    return AWSResponse(url, status, headers, _Body(json.dumps(body).encode()))


def _error(url: str, status: int, kind: str, message: str) -> AWSResponse:
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": kind, "x-amzn-RequestId": secrets.token_hex(8)}
    return AWSResponse(url, status, headers, _Body(json.dumps({"message": message}).encode()))
