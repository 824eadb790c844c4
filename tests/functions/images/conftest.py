"""The images function deployed against moto: its environment, fan-out messages of generated uploads, read-backs."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from PIL import Image

from functions.images import handler
from functions.images.adapters import forget_logos
from tests.functions.conftest import REGION, CapturedEvents, FakeLambdaContext
from tests.functions.conftest import sqs_event as shared_sqs_event
from tests.functions.job_gate_samples import ensure_running

JOB_ID = "01JBQ7Z8K3M4N5P6Q7R8S9T0VW"
OWNER_ID = "user-1"
UPLOADS, OUTPUTS = "test-uploads", "test-outputs"
DERIVATIVES = {"thumb": (320, False), "large": (1280, True)}
"""The stack's default derivatives: name -> (longest edge, watermark)."""
EXTENSIONS = {"webp": "webp", "jpeg": "jpg"}


def planned_size(display: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """What ingest plans: the longest edge at `long_edge`, the aspect kept, never enlarged."""
    width, height = display
    if max(width, height) <= long_edge:
        return width, height
    scale = long_edge / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def image_unit(name: str, size: tuple[int, int], image_format: str, *, watermark: bool) -> dict[str, Any]:
    return {
        "name": f"{name}-{image_format}",
        "kind": "image",
        "width": size[0],
        "height": size[1],
        "format": image_format,
        "watermark": watermark,
    }


METADATA_UNIT = {"name": "metadata", "kind": "metadata"}


def default_units(display: tuple[int, int]) -> list[dict[str, Any]]:
    """Every unit ingest plans for an image of this display size with the default derivatives."""
    units = [
        image_unit(name, planned_size(display, edge), image_format, watermark=watermark)
        for name, (edge, watermark) in DERIVATIVES.items()
        for image_format in ("webp", "jpeg")
    ]
    return [*units, METADATA_UNIT]


def output_key(job_id: str, unit: dict[str, Any]) -> str:
    if unit["kind"] == "metadata":
        return f"outputs/{job_id}/metadata.json"
    return f"outputs/{job_id}/{unit['name']}.{EXTENSIONS[unit['format']]}"


def by_type(events: list[dict[str, Any]], detail_type: str) -> list[dict[str, Any]]:
    return [event["detail"] for event in events if event["detail-type"] == detail_type]


@dataclass
class Upload:
    """A generated image where the API put it, and the one-unit messages ingest would publish for it."""

    job_id: str
    path: Path
    key: str
    etag: str
    display: tuple[int, int]

    def message(self, unit: dict[str, Any], **source: Any) -> dict[str, Any]:
        return {
            "jobId": self.job_id,
            "ownerId": OWNER_ID,
            "engine": "lambda",
            "source": {"bucket": UPLOADS, "key": self.key, "etag": self.etag} | source,
            "probe": {"durationMs": 0, "width": self.display[0], "height": self.display[1], "frames": 1},
            "renditions": [unit],
        }

    def messages(self, units: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        return [self.message(unit) for unit in units or default_units(self.display)]


@dataclass
class Harness:
    """The images function with the stack's defaults, a bus we can read back and a working directory."""

    events: CapturedEvents
    context: FakeLambdaContext
    tmp: Path
    work: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def s3(self) -> Any:
        return boto3.client("s3", region_name=REGION)

    def upload(self, path: Path, *, job_id: str = JOB_ID, display: tuple[int, int] | None = None) -> Upload:
        """Put `path` where the API would have, as uploads/{jobId}/source."""
        key = f"uploads/{job_id}/source"
        self.s3.upload_file(str(path), UPLOADS, key)
        etag = self.s3.head_object(Bucket=UPLOADS, Key=key)["ETag"].strip('"')
        if display is None:
            with Image.open(path) as image:
                display = image.size
        return Upload(job_id, path, key, etag, display)

    def invoke(self, *bodies: dict[str, Any] | str) -> dict[str, Any]:
        """Handle the bodies as one batch; each message's job runs its attempt unless the test made it otherwise."""
        for body in bodies:
            if isinstance(body, dict) and "jobId" in body:
                ensure_running(body["jobId"], attempt=body.get("attempt", 1))
        event = shared_sqs_event("transcode_sqs_event.json", *bodies)
        return handler.handler(event, self.context)

    def output_bytes(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=OUTPUTS, Key=key)["Body"].read()

    def output_image(self, key: str) -> Image.Image:
        image = Image.open(io.BytesIO(self.output_bytes(key)))
        image.load()
        return image

    def output_keys(self) -> list[str]:
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=OUTPUTS).get("Contents", []))

    def metadata_json(self, job_id: str = JOB_ID) -> dict[str, Any]:
        return json.loads(self.output_bytes(f"outputs/{job_id}/metadata.json"))

    def watermark_text(self, text: str) -> None:
        self.monkeypatch.setenv("WATERMARK_TEXT", text)

    def no_watermark(self) -> None:
        self.monkeypatch.delenv("WATERMARK_TEXT", raising=False)
        self.monkeypatch.delenv("WATERMARK_LOGO_KEY", raising=False)


@pytest.fixture(autouse=True)
def no_cached_logo() -> Iterator[None]:
    """A logo is read once per execution environment; each test is a new one."""
    forget_logos()
    yield
    forget_logos()


@pytest.fixture
def harness(
    buckets: dict[str, str],
    event_bus: CapturedEvents,
    lambda_context: FakeLambdaContext,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    jobs_table: Any,  # the job gate reads each message's job there
) -> Harness:
    """The stack's defaults (docs/CONTRACTS.md), no watermark configured."""
    work = tmp_path / "work"
    monkeypatch.setenv("MAX_IMAGE_PIXELS", "50000000")
    monkeypatch.setenv("WATERMARK_OPACITY", "0.5")
    monkeypatch.setenv("WATERMARK_SCALE", "0.25")
    monkeypatch.setenv("IMAGES_WORK_DIR", str(work))
    result = Harness(event_bus, lambda_context, tmp_path, work, monkeypatch)
    result.no_watermark()
    return result
