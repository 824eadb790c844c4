"""Images through the handler: recognised by their content alone, checked before decoding, decoded whole, planned as
one unit per (derivative, format) plus `metadata`, and fanned out one SNS message per unit."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFile

from functions.ingest.adapters import PillowImages, image_signature
from functions.ingest.service import ImageHeader, RejectionCode, UploadRejected
from tests import media_samples as samples
from tests.functions.ingest.conftest import (
    IMAGE_PIXEL_LIMIT,
    JOB_ID,
    NO_FAILURES,
    OWNER,
    MediaLibrary,
    Pipeline,
    assert_rejected,
)

UNITS = ["thumb-webp", "thumb-jpeg", "large-webp", "large-jpeg", "metadata"]


@dataclass(frozen=True)
class AcceptedImage:
    clip: str
    """A MediaLibrary property."""
    probe: dict[str, Any]
    """The probe without sizeBytes (checked against the file)."""
    thumb: tuple[int, int]
    large: tuple[int, int]
    filename: str = "photo"
    content_type: str = "image/jpeg"


def _probe(format_name: str, width: int, height: int, mode: str, frames: int = 1) -> dict[str, Any]:
    return {
        "durationMs": 0,
        "width": width,
        "height": height,
        "frames": frames,
        "mode": mode,
        "formatName": format_name,
    }


ACCEPTED = [
    pytest.param(
        # Stored 1200x800, EXIF orientation 6: upright it is 800x1200, and the units are planned upright.
        AcceptedImage("rotated_jpeg", _probe("jpeg", 800, 1200, "RGB"), (213, 320), (800, 1200), "portrait.jpg"),
        id="exif-rotated-jpeg-with-gps",
    ),
    pytest.param(
        AcceptedImage("cmyk_jpeg", _probe("jpeg", 640, 480, "CMYK"), (320, 240), (640, 480), "print.jpg"),
        id="cmyk-jpeg",
    ),
    pytest.param(
        AcceptedImage("rgba_png", _probe("png", 800, 600, "RGBA"), (320, 240), (800, 600), "overlay.png", "image/png"),
        id="rgba-png",
    ),
    pytest.param(
        AcceptedImage("palette_png", _probe("png", 400, 300, "P"), (320, 240), (400, 300), "icon.png", "image/png"),
        id="palette-png-with-transparency",
    ),
    pytest.param(
        AcceptedImage("png_16bit", _probe("png", 320, 240, "I;16"), (320, 240), (320, 240), "scan.png", "image/png"),
        id="16-bit-png",
    ),
    pytest.param(
        AcceptedImage("animated_gif", _probe("gif", 320, 240, "P", 6), (320, 240), (320, 240), "a.gif", "image/gif"),
        id="animated-gif",
    ),
    pytest.param(
        AcceptedImage("large_webp", _probe("webp", 6000, 4000, "RGB"), (320, 213), (1280, 853), "pano.webp"),
        id="large-webp",
    ),
    pytest.param(
        AcceptedImage("avif", _probe("avif", 640, 480, "RGB"), (320, 240), (640, 480), "photo.avif", "image/avif"),
        id="avif",
    ),
    pytest.param(
        # Its name and declared type say video; its content is a PNG, so it is processed as one.
        AcceptedImage(
            "png_named_mp4", _probe("png", 800, 600, "RGBA"), (320, 240), (800, 600), "movie.mp4", "video/mp4"
        ),
        id="png-named-mp4-declared-video",
    ),
]


@pytest.mark.media
@pytest.mark.parametrize("case", ACCEPTED)
def test_an_image_is_accepted_with_its_units_one_message_each(
    pipeline: Pipeline, media: MediaLibrary, case: AcceptedImage
) -> None:
    # GIVEN a job for an upload declared as the client saw fit, and the image uploaded to its key
    pipeline.create_job(filename=case.filename, content_type=case.content_type)
    path = getattr(media, case.clip)

    # WHEN the notification arrives
    response = pipeline.upload(path, content_type=case.content_type)

    # THEN the job is a PROCESSING image job in Lambda, with the probe ingest read and nothing else
    assert response == NO_FAILURES
    job = pipeline.job()
    assert (job.status, job.mediaType, job.engine, job.error) == ("PROCESSING", "image", "lambda", None)
    assert job.probe is not None
    assert job.probe.model_dump(exclude_unset=True) == {**case.probe, "sizeBytes": path.stat().st_size}
    # AND every derivative in both formats, at its size (upright, never upscaled), then the metadata unit
    planned = {
        name: (r.status, r.kind, r.width, r.height, r.format, r.watermark, r.order)
        for name, r in job.renditions.items()
    }
    assert planned == {
        "thumb-webp": ("QUEUED", "image", *case.thumb, "webp", False, 0),
        "thumb-jpeg": ("QUEUED", "image", *case.thumb, "jpeg", False, 1),
        "large-webp": ("QUEUED", "image", *case.large, "webp", True, 2),
        "large-jpeg": ("QUEUED", "image", *case.large, "jpeg", True, 3),
        "metadata": ("QUEUED", "metadata", None, None, None, None, 4),
    }

    # AND one message per unit, each naming just its unit, routed to the images queue only
    messages = pipeline.fanout.drain()
    assert [m.attributes for m in messages] == [
        {"mediaType": "image", "engine": "lambda", "renditions": [name]} for name in UNITS
    ]
    assert [[r["name"] for r in m.body["renditions"]] for m in messages] == [[name] for name in UNITS]
    assert len(pipeline.fanout.drain(pipeline.fanout.images_url)) == len(UNITS)
    assert pipeline.fanout.drain(pipeline.fanout.audio_url) == []
    assert pipeline.fanout.drain(pipeline.fanout.transcode_1080p_url) == []

    # AND Job Accepted lists every unit
    events = pipeline.bus.drain()
    assert [(e["detail-type"], e["detail"]) for e in events] == [
        ("Job Accepted", {"jobId": JOB_ID, "ownerId": OWNER, "engine": "lambda", "renditions": UNITS})
    ]


@pytest.mark.media
def test_accepted_uploads_are_counted_by_media_type(
    pipeline: Pipeline, media: MediaLibrary, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline.create_job()

    pipeline.upload(media.palette_png)

    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [m["mediaType"] for m in emitted if "UploadsAcceptedByMediaType" in m] == ["image"]
    assert not [m for m in emitted if "SourceDurationSeconds" in m]  # a still has no duration to count


@pytest.mark.media
def test_each_unit_message_is_the_contract_body(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job(filename="portrait.jpg", content_type="image/jpeg")
    etag = pipeline.put(media.rotated_jpeg, content_type="image/jpeg")

    pipeline.deliver(pipeline.record(etag=etag, size=media.rotated_jpeg.stat().st_size))

    probe = {**_probe("jpeg", 800, 1200, "RGB"), "sizeBytes": media.rotated_jpeg.stat().st_size}
    no_bitrates = {"maxVideoBitrateKbps": None, "audioBitrateKbps": None}  # how the contract's body() writes a unit
    common = {
        "jobId": JOB_ID,
        "ownerId": OWNER,
        "engine": "lambda",
        "source": {"bucket": "test-uploads", "key": f"uploads/{JOB_ID}/source", "etag": etag},
        "probe": probe,
    }
    assert [m.body for m in pipeline.fanout.drain()] == [
        {**common, "renditions": [{**unit, **no_bitrates}]}
        for unit in (
            {"name": "thumb-webp", "kind": "image", "width": 213, "height": 320, "format": "webp"},
            {"name": "thumb-jpeg", "kind": "image", "width": 213, "height": 320, "format": "jpeg"},
            {"name": "large-webp", "kind": "image", "width": 800, "height": 1200, "format": "webp", "watermark": True},
            {"name": "large-jpeg", "kind": "image", "width": 800, "height": 1200, "format": "jpeg", "watermark": True},
            {"name": "metadata", "kind": "metadata", "width": None, "height": None},
        )
    ]


@pytest.mark.media
def test_a_smaller_image_keeps_its_size_and_says_why(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()

    pipeline.upload(media.cmyk_jpeg)

    large = pipeline.job().renditions["large-jpeg"]
    assert (large.width, large.height) == (640, 480)
    assert large.reason == "source's longest edge is 640 px, below 1280; no upscaling"
    assert pipeline.job().renditions["thumb-jpeg"].reason is None


@pytest.mark.media
def test_a_jpeg_with_a_multi_picture_index_is_a_jpeg_still(pipeline: Pipeline, tmp_path: Path) -> None:
    """Phones append previews and depth maps to a photo (the Multi-Picture Format, Pillow's MPO)."""
    path = tmp_path / "phone.jpg"
    photo, depth_map = Image.new("RGB", (640, 480), (200, 30, 30)), Image.new("L", (160, 120), 128)
    photo.save(path, "MPO", save_all=True, append_images=[depth_map])
    pipeline.create_job(filename="phone.jpg", content_type="image/jpeg")

    response = pipeline.upload(path, content_type="image/jpeg")

    assert response == NO_FAILURES
    job = pipeline.job()
    assert (job.status, job.mediaType) == ("PROCESSING", "image")
    assert job.probe is not None
    assert job.probe.model_dump(exclude_unset=True) == {
        **_probe("jpeg", 640, 480, "RGB"),
        "sizeBytes": path.stat().st_size,
    }


@pytest.mark.media
def test_configured_derivatives_are_the_units(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    ingest_env(IMAGE_DERIVATIVES='[{"name": "square", "longEdge": 100, "formats": ["jpeg"]}]')
    pipeline.create_job()

    pipeline.upload(media.rgba_png)

    job = pipeline.job()
    assert {n: (r.kind, r.width, r.height, r.format, r.watermark) for n, r in job.renditions.items()} == {
        "square-jpeg": ("image", 100, 75, "jpeg", False),
        "metadata": ("metadata", None, None, None, None),
    }
    assert [m.attributes["renditions"] for m in pipeline.fanout.drain()] == [["square-jpeg"], ["metadata"]]


@pytest.mark.media
def test_the_image_limit_is_the_images_not_the_videos(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None]
) -> None:
    """Declared video/mp4, a PNG over the video limit but within the image limit: the detected kind's limit holds."""
    ingest_env(MAX_UPLOAD_BYTES="1000")
    pipeline.create_job()

    response = pipeline.upload(media.png_named_mp4)

    assert response == NO_FAILURES
    assert (pipeline.job().status, pipeline.job().mediaType) == ("PROCESSING", "image")


@pytest.mark.media
def test_a_redelivery_while_processing_publishes_every_unit_again(pipeline: Pipeline, media: MediaLibrary) -> None:
    pipeline.create_job()
    etag = pipeline.put(media.rgba_png)
    size = media.rgba_png.stat().st_size
    pipeline.deliver(pipeline.record(etag=etag, size=size))
    first = pipeline.fanout.drain()
    pipeline.bus.drain()

    response = pipeline.deliver(pipeline.record(etag=etag, size=size, receive_count=2))

    assert response == NO_FAILURES
    again = pipeline.fanout.drain()
    assert [(m.body, m.attributes) for m in again] == [(m.body, m.attributes) for m in first]
    assert [e["detail-type"] for e in pipeline.bus.drain()] == ["Job Accepted"]


# --------------------------------------------------------------------------------------------------------------
# Rejected images
# --------------------------------------------------------------------------------------------------------------


@dataclass
class PillowCalls:
    """What Pillow was asked to do: pixel decoders made, `load` calls, and the adapter's decode step."""

    decoders: list[str]
    loads: int = 0
    decodes: int = 0


@pytest.fixture
def pillow_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[PillowCalls]:
    calls = PillowCalls(decoders=[])
    make_decoder, load, decode = Image._getdecoder, ImageFile.ImageFile.load, PillowImages.decode

    def recording_decoder(mode: str, decoder_name: str, *args: Any, **kwargs: Any) -> Any:
        calls.decoders.append(decoder_name)
        return make_decoder(mode, decoder_name, *args, **kwargs)

    def recording_load(self: ImageFile.ImageFile) -> Any:
        calls.loads += 1
        return load(self)

    def recording_decode(self: PillowImages, *args: Any, **kwargs: Any) -> Any:
        calls.decodes += 1
        return decode(self, *args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", recording_decoder)
    monkeypatch.setattr(ImageFile.ImageFile, "load", recording_load)
    monkeypatch.setattr(PillowImages, "decode", recording_decode)
    yield calls


@pytest.mark.media
def test_a_png_claiming_enormous_dimensions_is_refused_before_any_decoding(
    pipeline: Pipeline, media: MediaLibrary, pillow_calls: PillowCalls
) -> None:
    # GIVEN a few hundred bytes whose header claims 100000x100000 pixels
    pipeline.create_job(filename="bomb.png", content_type="image/png")

    # WHEN it is uploaded
    response = pipeline.upload(media.png_bomb, content_type="image/png")

    # THEN it is REJECTED for its resolution, with the numbers the header gave
    job = assert_rejected(pipeline, response, RejectionCode.RESOLUTION_TOO_HIGH)
    assert job.error is not None
    assert job.error.message == (
        f"the image is 100000x100000 (10000000000 pixels); the limit is {IMAGE_PIXEL_LIMIT} pixels"
    )
    assert job.probe is not None
    assert (job.probe.width, job.probe.height, job.probe.formatName) == (100_000, 100_000, "png")
    # AND not one pixel was decoded: no decoder made, no load, the decode step never reached
    assert pillow_calls == PillowCalls(decoders=[], loads=0, decodes=0)


@pytest.mark.media
def test_the_decoder_spy_sees_a_normal_decode(
    pipeline: Pipeline, media: MediaLibrary, pillow_calls: PillowCalls
) -> None:
    """The control for the test above: an image that is accepted is decoded through the spied paths."""
    pipeline.create_job()

    pipeline.upload(media.rgba_png)

    assert pipeline.job().status == "PROCESSING"
    assert (pillow_calls.decoders, pillow_calls.decodes) == (["zip"], 1)
    assert pillow_calls.loads >= 1


@pytest.mark.media
def test_an_animation_of_too_many_pixels_in_all_is_refused_before_decoding(
    pipeline: Pipeline, tmp_path: Path, ingest_env: Callable[..., None], pillow_calls: PillowCalls
) -> None:
    # Each 40x30 frame is within a 1200-pixel limit; 25 of them are more than 20 times it.
    ingest_env(MAX_IMAGE_PIXELS="1200")
    pipeline.create_job()

    response = pipeline.upload(samples.animated_gif(tmp_path / "many.gif", width=40, height=30, frames=25))

    job = assert_rejected(pipeline, response, RejectionCode.RESOLUTION_TOO_HIGH)
    assert job.error is not None
    assert "25 frames of 40x30" in job.error.message
    assert pillow_calls.decodes == 0


@dataclass(frozen=True)
class BadImage:
    clip: str
    code: RejectionCode
    says: str
    env: tuple[tuple[str, str], ...] = ()
    filename: str = "photo.jpg"
    content_type: str = "image/jpeg"


BAD_IMAGES = [
    pytest.param(
        BadImage("truncated_jpeg", RejectionCode.CORRUPT_MEDIA, "the JPEG image is truncated or damaged"),
        id="truncated-jpeg",
    ),
    pytest.param(
        BadImage(
            "text_named_png",
            RejectionCode.UNSUPPORTED_FORMAT,
            "not an image, audio or video",
            filename="notes.png",
            content_type="image/png",
        ),
        id="text-named-png-declared-png",
    ),
    pytest.param(
        BadImage(
            "large_webp",
            RejectionCode.UPLOAD_TOO_LARGE,
            "the limit for images is 50000 bytes",
            (("MAX_IMAGE_UPLOAD_BYTES", "50000"),),
        ),
        id="image-over-its-byte-limit",
    ),
    pytest.param(
        BadImage(
            "rgba_png",
            RejectionCode.RESOLUTION_TOO_HIGH,
            "the image is 800x600 (480000 pixels); the limit is 479999 pixels",
            (("MAX_IMAGE_PIXELS", "479999"),),
        ),
        id="one-pixel-over-the-limit",
    ),
]


@pytest.mark.media
@pytest.mark.parametrize("case", BAD_IMAGES)
def test_a_bad_image_is_rejected_with_its_code(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None], case: BadImage
) -> None:
    ingest_env(**dict(case.env))
    pipeline.create_job(filename=case.filename, content_type=case.content_type)

    response = pipeline.upload(getattr(media, case.clip), content_type=case.content_type)

    job = assert_rejected(pipeline, response, case.code)
    assert job.error is not None
    assert case.says in job.error.message


HEIC_START = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic\x00\x00\x00\x22meta"


def test_a_heic_photo_is_refused_by_its_signature(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """ffprobe would take a HEIC photo (HEIF, no `moov`) for a damaged MP4: its signature says what it is."""
    opened: list[Any] = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args))
    pipeline.create_job(filename="IMG_0001.HEIC", content_type="image/heic")

    response = pipeline.upload(HEIC_START + b"\x00" * 2000, content_type="image/heic")

    job = assert_rejected(pipeline, response, RejectionCode.UNSUPPORTED_FORMAT)
    assert job.error is not None
    assert job.error.message == (
        "the file is a HEIF image, which is not accepted; images must be JPEG, PNG, WEBP, GIF or AVIF"
    )
    assert opened == []


@pytest.mark.media
def test_an_image_over_its_byte_limit_is_refused_before_pillow_reads_it(
    pipeline: Pipeline, media: MediaLibrary, ingest_env: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow reads a whole WebP when it opens one: the byte limit comes first, from the signature alone."""
    opened: list[Any] = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args))
    ingest_env(MAX_IMAGE_UPLOAD_BYTES="1000")
    pipeline.create_job()

    response = pipeline.upload(media.large_webp)

    job = assert_rejected(pipeline, response, RejectionCode.UPLOAD_TOO_LARGE)
    assert opened == []
    assert job.error is not None
    assert (
        job.error.message == f"the image is {media.large_webp.stat().st_size} bytes; the limit for images is 1000 bytes"
    )


# --------------------------------------------------------------------------------------------------------------
# The Pillow adapter on its own
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("clip", "expected"),
    [
        ("rotated_jpeg", "JPEG"),
        ("cmyk_jpeg", "JPEG"),
        ("rgba_png", "PNG"),
        ("png_bomb", "PNG"),
        ("animated_gif", "GIF"),
        ("avif", "AVIF"),
        ("truncated_jpeg", "JPEG"),
        ("text_named_png", None),
        ("small", None),
        ("subtitles_only", None),
    ],
)
@pytest.mark.media
def test_the_signature_is_read_from_the_content(media: MediaLibrary, clip: str, expected: str | None) -> None:
    assert PillowImages().signature(getattr(media, clip)) == expected


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", None),
        (b"GIF87a", "GIF"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "AVIF"),
        (b"\x00\x00\x00\x1cftypmif1\x00\x00\x00\x00mif1avifmiaf", "AVIF"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "HEIF"),  # a HEIC photo
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", None),  # an MP4
        (b"ID3\x03\x00\x00\x00\x00\x00\x00", None),  # an MP3
        (b"", None),
    ],
    ids=["webp", "wav", "gif87a", "avif", "avif-in-mif1", "heic-in-mif1", "heic", "mp4", "mp3", "empty"],
)
def test_signatures(head: bytes, expected: str | None) -> None:
    assert image_signature(head) == expected


@pytest.mark.media
def test_the_header_is_read_without_decoding_and_without_pillows_own_guard(
    media: MediaLibrary, pillow_calls: PillowCalls
) -> None:
    header = PillowImages().read_header(media.png_bomb)

    assert header == ImageHeader(format="PNG", width=100_000, height=100_000, mode="RGB", frames=1, orientation=1)
    assert pillow_calls == PillowCalls(decoders=[], loads=0, decodes=0)


@pytest.mark.media
def test_the_header_gives_the_exif_orientation_and_the_frames(media: MediaLibrary) -> None:
    images = PillowImages()

    assert images.read_header(media.rotated_jpeg).orientation == 6
    assert images.read_header(media.animated_gif).frames == 6
    assert images.read_header(media.rgba_png).orientation == 1


@pytest.mark.media
def test_a_damaged_header_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "damaged.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not chunks at all" * 4)

    with pytest.raises(UploadRejected) as rejected:
        PillowImages().read_header(path)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert rejected.value.message.startswith("the file looks like an image (PNG) but its header cannot be read")


def _cut(source: Path, destination: Path, fraction: float) -> Path:
    data = source.read_bytes()
    destination.write_bytes(data[: int(len(data) * fraction)])
    return destination


@pytest.mark.media
@pytest.mark.parametrize(("clip", "fraction"), [("rgba_png", 0.5), ("animated_gif", 0.7), ("truncated_jpeg", 1.0)])
def test_a_file_that_stops_early_does_not_decode_whole(
    media: MediaLibrary, tmp_path: Path, clip: str, fraction: float
) -> None:
    path = _cut(getattr(media, clip), tmp_path / "cut", fraction)
    images = PillowImages()
    header = images.read_header(path)  # the header is intact

    with pytest.raises(UploadRejected) as rejected:
        images.decode(path, header, max_pixels=IMAGE_PIXEL_LIMIT)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert "truncated" in rejected.value.detail


@pytest.mark.media
def test_truncated_images_are_refused_even_where_pillow_was_told_to_tolerate_them(
    media: MediaLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 123)
    images = PillowImages()

    with pytest.raises(UploadRejected) as rejected:
        images.decode(media.truncated_jpeg, images.read_header(media.truncated_jpeg), max_pixels=IMAGE_PIXEL_LIMIT)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == (True, 123)  # restored


@pytest.mark.media
@pytest.mark.parametrize("max_pixels", [400_000, 200_000], ids=["guard-warning", "guard-error"])
def test_the_decode_runs_with_pillows_bomb_guard_at_the_limit(media: MediaLibrary, max_pixels: int) -> None:
    """Past the limit Pillow warns, past twice the limit it raises: both are a rejection, never a warning."""
    images = PillowImages()
    header = images.read_header(media.rgba_png)  # 800x600 = 480,000 pixels

    with pytest.raises(UploadRejected) as rejected:
        images.decode(media.rgba_png, header, max_pixels=max_pixels)

    assert rejected.value.code is RejectionCode.RESOLUTION_TOO_HIGH
    assert max_pixels != Image.MAX_IMAGE_PIXELS  # restored


@pytest.mark.media
@pytest.mark.parametrize(
    ("clip", "orientation"),
    [("rotated_jpeg", 6), ("cmyk_jpeg", 1), ("palette_png", 1), ("png_16bit", 1), ("animated_gif", 1), ("avif", 1)],
)
def test_every_accepted_image_decodes_whole(media: MediaLibrary, clip: str, orientation: int) -> None:
    images = PillowImages()
    path = getattr(media, clip)

    decoded = images.decode(path, images.read_header(path), max_pixels=IMAGE_PIXEL_LIMIT)

    assert decoded.orientation == orientation


@pytest.mark.media
def test_exif_after_the_pixels_is_found_by_the_full_read(tmp_path: Path) -> None:
    """A PNG may put its eXIf chunk after the image data: only the decode reads it, and the probe follows it."""
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "late-exif.png"
    Image.new("RGB", (60, 40), (10, 20, 30)).save(path, "PNG", exif=exif)
    data = path.read_bytes()
    exif_at = data.find(b"eXIf")
    assert 0 < exif_at < data.find(b"IDAT")  # Pillow writes it first; move it (length, type, data, CRC) to the end
    length = int.from_bytes(data[exif_at - 4 : exif_at], "big")
    chunk = data[exif_at - 4 : exif_at + 8 + length]
    rest = data[: exif_at - 4] + data[exif_at + 8 + length :]
    end = rest.find(b"IEND") - 4
    path.write_bytes(rest[:end] + chunk + rest[end:])
    images = PillowImages()
    header = images.read_header(path)
    assert header.orientation == 1  # not in the header

    assert images.decode(path, header, max_pixels=IMAGE_PIXEL_LIMIT).orientation == 8
