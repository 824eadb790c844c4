"""The images function's rules, its failure policy and the job gate, over fake ports (no AWS, no Pillow)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from functions.common.job_gate import JobGate, OpenGate, WorkWithdrawn
from functions.contracts.events import DetailType, EventDetail
from functions.contracts.fanout import FanOutMessage, PlannedRendition, SourceObject
from functions.contracts.jobs import ImageMetadata
from functions.images.service import (
    DerivativeSpec,
    EncodedImage,
    ImageRejected,
    ImageUnitWorker,
    LogoUnavailable,
    Outcome,
    SourceMissing,
    StoredOutput,
    display_size,
    exif_text,
    fit_size,
    output_key,
    watermark_origin,
)
from functions.images.settings import ImagesSettings
from tests.functions.job_gate_samples import WithdrawingGate

METADATA = ImageMetadata(format="PNG", width=40, height=30, mode="RGB")


# --- pure rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        ((4000, 3000), (1280, 960), (1280, 960)),  # the plan, exactly
        ((1200, 1600), (240, 320), (240, 320)),
        ((800, 600), (800, 600), (800, 600)),  # a source the size of the plan
        ((200, 150), (1280, 960), (200, 150)),  # never enlarged
        ((1000, 100), (1280, 128), (1000, 100)),  # one side larger than the source: fit, never enlarge
        ((1000, 500), (1280, 400), (800, 400)),
    ],
)
def test_fit_size_keeps_the_plan_and_never_enlarges(
    source: tuple[int, int], box: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert fit_size(source, box) == expected


def test_the_watermark_sits_bottom_right_inside_a_margin_of_3_percent_of_the_shorter_side() -> None:
    assert watermark_origin((1280, 960), (320, 160)) == (1280 - 29 - 320, 960 - 29 - 160)
    assert watermark_origin((10, 10), (50, 50)) == (0, 0)  # never off the image


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Canon\x00\x00", "Canon"),
        (b"NIKON CORPORATION ", "NIKON CORPORATION"),
        ("  ", None),
        (42, None),
        ("x" * 100, "x" * 64),
        ("bad\x07bell", "badbell"),
    ],
)
def test_exif_text_is_printable_and_bounded(value: object, expected: str | None) -> None:
    assert exif_text(value) == expected


@pytest.mark.parametrize(("orientation", "expected"), [(1, (40, 30)), (3, (40, 30)), (6, (30, 40)), (8, (30, 40))])
def test_display_size_turns_with_the_orientation(orientation: int, expected: tuple[int, int]) -> None:
    assert display_size((40, 30), orientation) == expected


def test_output_keys_are_deterministic() -> None:
    webp = PlannedRendition(name="thumb-webp", kind="image", width=320, height=240, format="webp")
    jpeg = PlannedRendition(name="large-jpeg", kind="image", width=1280, height=960, format="jpeg")
    metadata = PlannedRendition(name="metadata", kind="metadata")
    assert output_key("job", webp) == "outputs/job/thumb-webp.webp"
    assert output_key("job", jpeg) == "outputs/job/large-jpeg.jpg"
    assert output_key("job", metadata) == "outputs/job/metadata.json"


# --- the worker over fakes ----------------------------------------------------------------------------------------


@dataclass
class FakeStore:
    outputs_bucket: str = "outputs"
    stored: dict[str, tuple[bytes, StoredOutput]] = field(default_factory=dict)
    source_error: Exception | None = None
    logo_error: Exception | None = None
    downloads: int = 0

    def download_source(self, source: SourceObject, destination: Path, *, max_bytes: int) -> None:
        self.downloads += 1
        if self.source_error:
            raise self.source_error
        destination.write_bytes(b"image")

    def find_output(self, job_id: str, unit: str, key: str, *, attempt: int) -> StoredOutput | None:
        return self.stored[key][1] if key in self.stored else None

    def read_output(self, key: str) -> bytes:
        return self.stored[key][0]

    def put_output(
        self,
        key: str,
        data: bytes,
        *,
        content_type: str,
        job_id: str,
        unit: str,
        attempt: int,
        size: tuple[int, int] | None,
    ) -> StoredOutput:
        width, height = size or (None, None)
        stored = StoredOutput(self.outputs_bucket, key, len(data), content_type, width, height)
        self.stored[key] = (data, stored)
        return stored

    def read_logo(self, key: str) -> bytes:
        if self.logo_error:
            raise self.logo_error
        return b"logo"


@dataclass
class FakeCodec:
    error: Exception | None = None
    specs: list[DerivativeSpec] = field(default_factory=list)

    def read_metadata(self, path: Path, *, max_pixels: int, max_bytes: int) -> ImageMetadata:
        if self.error:
            raise self.error
        return METADATA

    def make_derivative(self, path: Path, spec: DerivativeSpec) -> EncodedImage:
        self.specs.append(spec)
        if self.error:
            raise self.error
        return EncodedImage(b"pixels", min(spec.width, 40), min(spec.height, 30))


@dataclass
class FakeBus:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: DetailType, detail: EventDetail) -> None:
        self.published.append((str(detail_type), detail.to_detail()))

    def of(self, detail_type: str) -> list[dict[str, Any]]:
        return [detail for kind, detail in self.published if kind == detail_type]


def settings(tmp_path: Path, **overrides: Any) -> ImagesSettings:
    values: dict[str, Any] = {
        "uploads_bucket": "uploads",
        "outputs_bucket": "outputs",
        "event_bus_name": "bus",
        "jobs_table_name": "jobs",
        "max_image_pixels": 1000,
        "work_root": tmp_path,
    }
    return ImagesSettings(**(values | overrides))


def message(*units: dict[str, Any], bucket: str = "uploads") -> FanOutMessage:
    return FanOutMessage.model_validate(
        {
            "jobId": "job",
            "ownerId": "owner",
            "source": {"bucket": bucket, "key": "uploads/job/source", "etag": "abc"},
            "probe": {"durationMs": 0, "width": 40, "height": 30},
            "renditions": list(units),
        }
    )


LARGE = {"name": "large-webp", "kind": "image", "width": 1280, "height": 960, "format": "webp", "watermark": True}
THUMB = {"name": "thumb-jpeg", "kind": "image", "width": 320, "height": 240, "format": "jpeg"}
META = {"name": "metadata", "kind": "metadata"}


def worker(
    tmp_path: Path, store: FakeStore, codec: FakeCodec, bus: FakeBus, gate: JobGate | None = None, **overrides: Any
) -> ImageUnitWorker:
    return ImageUnitWorker(store, codec, bus, settings(tmp_path, **overrides), gate=gate or OpenGate())


def test_units_are_made_in_order_with_the_watermark_only_where_planned_and_configured(tmp_path: Path) -> None:
    store, codec, bus = FakeStore(), FakeCodec(), FakeBus()

    results = worker(tmp_path, store, codec, bus, watermark_text="mark").process(message(LARGE, THUMB, META))

    assert [(r.unit, r.outcome) for r in results] == [
        ("large-webp", Outcome.COMPLETED),
        ("thumb-jpeg", Outcome.COMPLETED),
        ("metadata", Outcome.COMPLETED),
    ]
    assert [spec.watermark is not None for spec in codec.specs] == [True, False]
    assert codec.specs[0].watermark is not None and codec.specs[0].watermark.text == "mark"
    assert [(s.pillow_format, s.width, s.height, s.max_pixels) for s in codec.specs] == [
        ("WEBP", 1280, 960, 1000),
        ("JPEG", 320, 240, 1000),
    ]
    assert [(d["rendition"], d["width"], d["height"]) for d in bus.of("Rendition Completed")] == [
        ("large-webp", 40, 30),
        ("thumb-jpeg", 40, 30),
        ("metadata", None, None),
    ]
    assert bus.of("Rendition Completed")[2]["image"] == METADATA.model_dump()
    assert list(tmp_path.iterdir()) == []  # the working directories are removed


def test_without_text_or_logo_no_unit_is_watermarked(tmp_path: Path) -> None:
    codec = FakeCodec()

    worker(tmp_path, FakeStore(), codec, FakeBus()).process(message(LARGE))

    assert codec.specs[0].watermark is None


def test_a_logo_wins_over_the_text(tmp_path: Path) -> None:
    codec = FakeCodec()

    worker(tmp_path, FakeStore(), codec, FakeBus(), watermark_text="t", watermark_logo_key="logo.png").process(
        message(LARGE)
    )

    assert codec.specs[0].watermark is not None and codec.specs[0].watermark.logo == b"logo"


def test_an_unreadable_logo_raises_before_the_source_is_read(tmp_path: Path) -> None:
    store = FakeStore(logo_error=LogoUnavailable("gone"))

    with pytest.raises(LogoUnavailable):
        worker(tmp_path, store, FakeCodec(), FakeBus(), watermark_logo_key="logo.png").process(message(LARGE))

    assert store.downloads == 0


@pytest.mark.parametrize(
    ("store", "codec", "code"),
    [
        (FakeStore(source_error=SourceMissing("replaced")), FakeCodec(), "SOURCE_REPLACED"),
        (FakeStore(source_error=ImageRejected("too many bytes")), FakeCodec(), "IMAGE_PROCESSING_FAILED"),
        (FakeStore(), FakeCodec(error=ImageRejected("does not decode")), "IMAGE_PROCESSING_FAILED"),
    ],
)
def test_permanent_failures_are_announced_once_and_not_raised(
    tmp_path: Path, store: FakeStore, codec: FakeCodec, code: str
) -> None:
    bus = FakeBus()

    results = worker(tmp_path, store, codec, bus).process(message(THUMB, META))

    assert [r.outcome for r in results] == [Outcome.FAILED, Outcome.FAILED]
    assert [(d["rendition"], d["error"]["code"], d["engine"]) for d in bus.of("Rendition Failed")] == [
        ("thumb-jpeg", code, "images"),
        ("metadata", code, "images"),
    ]
    assert [d["rendition"] for d in bus.of("Rendition Progress")] == ["thumb-jpeg", "metadata"]
    assert store.stored == {}


def test_a_unit_with_an_unknown_format_fails(tmp_path: Path) -> None:
    bus = FakeBus()

    worker(tmp_path, FakeStore(), FakeCodec(), bus).process(message(THUMB | {"format": "tiff"}))

    assert bus.of("Rendition Failed")[0]["error"]["message"] == "unknown image format 'tiff'"


def test_a_stored_metadata_file_that_does_not_parse_is_made_again(tmp_path: Path) -> None:
    store, bus = FakeStore(), FakeBus()
    key = "outputs/job/metadata.json"
    store.stored[key] = (b"{}", StoredOutput("outputs", key, 2, "application/json"))

    (result,) = worker(tmp_path, store, FakeCodec(), bus).process(message(META))

    assert result.outcome is Outcome.COMPLETED
    assert ImageMetadata.model_validate_json(store.stored[key][0]) == METADATA


def test_a_stored_derivative_without_its_size_is_made_again(tmp_path: Path) -> None:
    store = FakeStore()
    key = "outputs/job/thumb-jpeg.jpg"
    store.stored[key] = (b"old", StoredOutput("outputs", key, 3, "image/jpeg"))

    (result,) = worker(tmp_path, store, FakeCodec(), FakeBus()).process(message(THUMB))

    assert result.outcome is Outcome.COMPLETED and store.downloads == 1


# --- the job gate ----------------------------------------------------------------------------------------


def test_a_unit_of_a_canceled_job_reads_nothing(tmp_path: Path) -> None:
    store, bus, gate = FakeStore(), FakeBus(), WithdrawingGate(open_checks=0)

    with pytest.raises(WorkWithdrawn):
        worker(tmp_path, store, FakeCodec(), bus, gate).process(message(THUMB))

    assert (store.downloads, store.stored, bus.published) == (0, {}, [])


@pytest.mark.parametrize("unit", [LARGE, META], ids=["derivative", "metadata"])
def test_a_job_canceled_while_a_unit_is_made_stores_nothing(tmp_path: Path, unit: dict[str, Any]) -> None:
    # GIVEN a gate that says yes when the unit starts, then no: the owner canceled while it was being made
    store, bus, gate = FakeStore(), FakeBus(), WithdrawingGate(open_checks=1)

    # WHEN the unit is made
    with pytest.raises(WorkWithdrawn):
        worker(tmp_path, store, FakeCodec(), bus, gate).process(message(unit))

    # THEN it was asked again before storing, and nothing was stored or announced beyond the start
    assert len(gate.checks) == 2
    assert store.stored == {}
    assert [kind for kind, _ in bus.published] == ["Rendition Progress"]
    assert list(tmp_path.iterdir()) == []


def test_a_failure_of_a_canceled_jobs_unit_is_not_announced(tmp_path: Path) -> None:
    # A job deleted meanwhile lost its upload too: what reads as "the source is missing" is the cancel.
    store, bus, gate = FakeStore(source_error=SourceMissing("gone")), FakeBus(), WithdrawingGate(open_checks=1)

    with pytest.raises(WorkWithdrawn):
        worker(tmp_path, store, FakeCodec(), bus, gate).process(message(THUMB))

    assert bus.of("Rendition Failed") == []


def test_an_output_of_the_same_attempt_is_announced_again_with_it(tmp_path: Path) -> None:
    store, bus = FakeStore(), FakeBus()
    key = "outputs/job/thumb-jpeg.jpg"
    store.stored[key] = (b"made", StoredOutput("outputs", key, 4, "image/jpeg", 40, 30))
    second = FanOutMessage.model_validate(message(THUMB).model_dump() | {"attempt": 3})

    (result,) = worker(tmp_path, store, FakeCodec(), bus).process(second)

    assert result.outcome is Outcome.REANNOUNCED
    assert [(kind, detail["attempt"]) for kind, detail in bus.published] == [
        ("Rendition Progress", 3),
        ("Rendition Completed", 3),
    ]
