"""The images handler end to end against moto: generated uploads in, SQS records of one unit each, every output
reopened with Pillow (size, orientation, colours, transparency, metadata stripped, watermark) and every event read."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops

from tests.functions.images import media
from tests.functions.images.conftest import (
    JOB_ID,
    METADATA_UNIT,
    OUTPUTS,
    OWNER_ID,
    UPLOADS,
    Harness,
    Upload,
    by_type,
    default_units,
    image_unit,
    output_key,
    planned_size,
)

IMAGE_FIELDS = {
    "format",
    "width",
    "height",
    "frames",
    "mode",
    "hasIccProfile",
    "cameraMake",
    "cameraModel",
    "capturedAt",
}


# --- reading the results back -----------------------------------------------------------------------------------


def assert_no_metadata(data: bytes) -> None:
    """Nothing but pixels: no EXIF (so no GPS, no device), no XMP, no ICC profile, no comment."""
    assert media.metadata_carriers(data) == []
    image = Image.open(io.BytesIO(data))
    assert dict(image.getexif()) == {}
    assert not {"exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment"} & set(image.info)
    for needle in (b"Exif\x00", b"GPS", b"Canon", b"xmpmeta", b"ICC_PROFILE"):
        assert needle not in data, needle


def corner_boxes(size: tuple[int, int], fraction: float = 0.08) -> dict[str, tuple[int, int, int, int]]:
    """Small boxes inside each corner of an image of `size`."""
    width, height = size
    dx, dy = max(1, round(width * fraction)), max(1, round(height * fraction))
    return {
        "top-left": (0, 0, dx, dy),
        "top-right": (width - dx, 0, width, dy),
        "bottom-left": (0, height - dy, dx, height),
        "bottom-right": (width - dx, height - dy, width, height),
    }


def is_red(mean: tuple[float, ...]) -> bool:
    return mean[0] > 190 and mean[1] < 70 and mean[2] < 70


def is_grey(mean: tuple[float, ...]) -> bool:
    return all(abs(value - 128) < 20 for value in mean[:3])


def marker_corner(image: Image.Image) -> str:
    """The one corner where the source's red marker is; every other corner is the grey ground."""
    means = {name: media.region_mean(image.convert("RGB"), box) for name, box in corner_boxes(image.size).items()}
    red = [name for name, mean in means.items() if is_red(mean)]
    assert len(red) == 1, means
    assert all(is_grey(mean) for name, mean in means.items() if name != red[0]), means
    return red[0]


def completed_for(events: list[dict[str, Any]], unit: str) -> dict[str, Any]:
    (completed,) = [d for d in by_type(events, "Rendition Completed") if d["rendition"] == unit]
    return completed


def run_all_units(harness: Harness, upload: Upload) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response = harness.invoke(*upload.messages())
    return response, harness.events.drain()


# --- the phone photo: orientation, metadata stripped, sizes, events ----------------------------------------------


def test_a_rotated_phone_photo_gives_upright_metadata_free_derivatives_at_the_planned_sizes(harness: Harness) -> None:
    # GIVEN a 1600x1200 JPEG whose EXIF says "turn 90 degrees clockwise" (display 1200x1600), with GPS, make, model,
    # an ICC profile and XMP, its red marker in the stored top-left corner
    upload = harness.upload(media.rotated_phone_jpeg(harness.tmp / "phone.jpg"), display=(1200, 1600))
    units = default_units(upload.display)

    # WHEN the five one-unit messages ingest publishes are handled
    response, events = run_all_units(harness, upload)

    # THEN every record succeeded, and exactly the five outputs exist
    assert response == {"batchItemFailures": []}
    assert harness.output_keys() == sorted(output_key(JOB_ID, unit) for unit in units)
    for unit in units[:-1]:
        data = harness.output_bytes(output_key(JOB_ID, unit))
        image = Image.open(io.BytesIO(data))
        # AND each derivative is the planned portrait size, upright (the marker turned into the top-right corner)
        assert image.size == (unit["width"], unit["height"]) == planned_size((1200, 1600), max(image.size))
        assert image.format == {"webp": "WEBP", "jpeg": "JPEG"}[unit["format"]]
        assert image.mode == "RGB"
        assert marker_corner(image) == "top-right"
        # AND carries no EXIF, GPS, device, XMP or ICC profile
        assert_no_metadata(data)
        # AND its Completed event describes the object as stored
        head = harness.s3.head_object(Bucket=OUTPUTS, Key=output_key(JOB_ID, unit))
        assert head["ContentLength"] == len(data)
        assert head["ContentType"] == {"webp": "image/webp", "jpeg": "image/jpeg"}[unit["format"]]
        assert completed_for(events, unit["name"]) == {
            "jobId": JOB_ID,
            "ownerId": OWNER_ID,
            "rendition": unit["name"],
            "engine": "images",
            "bucket": OUTPUTS,
            "key": output_key(JOB_ID, unit),
            "width": unit["width"],
            "height": unit["height"],
            "durationMs": None,
            "bytes": len(data),
            "contentType": head["ContentType"],
        }
    assert {(u["name"], u["width"], u["height"]) for u in units[:-1]} == {
        ("thumb-webp", 240, 320),
        ("thumb-jpeg", 240, 320),
        ("large-webp", 960, 1280),
        ("large-jpeg", 960, 1280),
    }
    # AND every unit announced Progress 0 and exactly one Completed, and nothing failed
    assert sorted(d["rendition"] for d in by_type(events, "Rendition Progress")) == sorted(u["name"] for u in units)
    assert all(d["percent"] == 0 for d in by_type(events, "Rendition Progress"))
    assert len(by_type(events, "Rendition Completed")) == len(units)
    assert by_type(events, "Rendition Failed") == []
    # AND the working directories are gone
    assert list(harness.work.iterdir()) == []


def test_the_metadata_unit_keeps_camera_and_capture_time_and_never_the_location(harness: Harness) -> None:
    upload = harness.upload(media.rotated_phone_jpeg(harness.tmp / "phone.jpg"), display=(1200, 1600))

    response = harness.invoke(upload.message(METADATA_UNIT))

    assert response == {"batchItemFailures": []}
    key = f"outputs/{JOB_ID}/metadata.json"
    raw = harness.output_bytes(key)
    stored = harness.metadata_json()
    assert stored == {
        "format": "JPEG",
        "width": 1200,
        "height": 1600,
        "frames": 1,
        "mode": "RGB",
        "hasIccProfile": True,
        "cameraMake": "Canon",
        "cameraModel": "Canon EOS R5",
        "capturedAt": media.CAPTURED_AT,
    }
    for secret in (b"GPS", b"gps", b"atitude", b"ongitude", b"48", b"Firmware", b"xmp"):
        assert secret not in raw, secret
    head = harness.s3.head_object(Bucket=OUTPUTS, Key=key)
    assert head["ContentType"] == "application/json"
    events = harness.events.drain()
    assert by_type(events, "Rendition Progress") == [
        {"jobId": JOB_ID, "ownerId": OWNER_ID, "rendition": "metadata", "percent": 0}
    ]
    assert by_type(events, "Rendition Completed") == [
        {
            "jobId": JOB_ID,
            "ownerId": OWNER_ID,
            "rendition": "metadata",
            "engine": "images",
            "bucket": OUTPUTS,
            "key": key,
            "width": None,
            "height": None,
            "durationMs": None,
            "bytes": len(raw),
            "contentType": "application/json",
            "image": stored,
        }
    ]
    assert set(stored) == IMAGE_FIELDS


# --- the watermark ------------------------------------------------------------------------------------------------


def derivatives_of(harness: Harness, path: Path, job_id: str) -> dict[str, bytes]:
    upload = harness.upload(path, job_id=job_id)
    units = default_units(upload.display)[:-1]
    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}
    return {unit["name"]: harness.output_bytes(output_key(job_id, unit)) for unit in units}


def mark_region(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a mark spanning a quarter of the width sits: the bottom-right, inside a 3% margin."""
    width, height = size
    return round(width * 0.70), round(height * 0.80), width, height


def test_the_text_watermark_marks_the_large_derivative_bottom_right_and_not_the_thumbnail(harness: Harness) -> None:
    # GIVEN the same 4000x3000 photo, once with no watermark configured and once with the text
    source = media.large_webp(harness.tmp / "photo.webp")
    plain = derivatives_of(harness, source, "job-plain")
    harness.watermark_text("media-pipeline")
    marked = derivatives_of(harness, source, "job-marked")

    for name in ("large-jpeg", "large-webp"):
        with_mark, without = (Image.open(io.BytesIO(d[name])).convert("RGB") for d in (marked, plain))
        assert with_mark.size == without.size == (1280, 960)
        # THEN the large derivative differs bottom-right, where the mark is
        assert media.mean_difference(with_mark, without, mark_region(with_mark.size)) > 3
        # AND nowhere else: not its top-left, not its bottom-left, not the band above the mark
        for box in ((0, 0, 640, 480), (0, 480, 640, 960), (640, 0, 1280, 600)):
            assert media.mean_difference(with_mark, without, box) < 0.5, (name, box)
        # AND the mark is no wider than a quarter of the image plus the margin
        changed = ImageChops.difference(with_mark, without).convert("L").point(lambda v: 255 if v > 24 else 0)
        left, top, right, bottom = changed.getbbox()
        assert right <= 1280 - round(960 * 0.03) + 1 and bottom <= 960 - round(960 * 0.03) + 1
        assert left > 1280 / 2 and top > 960 * 0.8, (left, top)
        assert 0.18 * 1280 <= right - left <= 0.26 * 1280, (left, right)
        assert_no_metadata(marked[name])
    # AND the thumbnails, planned without a watermark, are byte for byte the unmarked ones
    assert marked["thumb-jpeg"] == plain["thumb-jpeg"]
    assert marked["thumb-webp"] == plain["thumb-webp"]


def test_the_logo_watermark_is_blended_bottom_right_and_read_once_per_environment(harness: Harness) -> None:
    # GIVEN an opaque blue 200x100 logo in the outputs bucket, at half opacity and a quarter of the width
    harness.s3.put_object(Bucket=OUTPUTS, Key="branding/logo.png", Body=media.logo_png())
    harness.monkeypatch.setenv("WATERMARK_LOGO_KEY", "branding/logo.png")
    grey = media.small_png(harness.tmp / "grey.png", size=(2000, 1500))

    # WHEN the large derivative of a grey 2000x1500 image is made
    derivatives = derivatives_of(harness, grey, "job-logo")

    # THEN the logo, 320x160, sits bottom-right inside the 29 px margin, half blue over the grey
    image = Image.open(io.BytesIO(derivatives["large-webp"])).convert("RGB")
    assert image.size == (1280, 960)
    left, top = 1280 - 29 - 320, 960 - 29 - 160
    inside = media.region_mean(image, (left + 20, top + 20, left + 300, top + 140))
    assert all(abs(got - want) < 10 for got, want in zip(inside, (64, 64, 191.5), strict=True)), inside
    for outside in ((left - 30, top + 20, left - 5, top + 140), (left + 20, top - 30, left + 300, top - 5)):
        assert is_grey(media.region_mean(image, outside)), outside
    assert is_grey(media.region_mean(image, (1280 - 25, 960 - 25, 1280, 960)))  # the margin stays clear
    jpeg = Image.open(io.BytesIO(derivatives["large-jpeg"])).convert("RGB")
    inside_jpeg = media.region_mean(jpeg, (left + 20, top + 20, left + 300, top + 140))
    assert all(abs(got - want) < 10 for got, want in zip(inside_jpeg, (64, 64, 191.5), strict=True)), inside_jpeg
    thumb = Image.open(io.BytesIO(derivatives["thumb-webp"])).convert("RGB")
    assert is_grey(media.region_mean(thumb, mark_region(thumb.size)))

    # AND with the logo gone from the bucket, the same execution environment still marks the next image with it
    harness.s3.delete_object(Bucket=OUTPUTS, Key="branding/logo.png")
    again = Image.open(io.BytesIO(derivatives_of(harness, grey, "job-logo-2")["large-webp"])).convert("RGB")
    assert media.mean_difference(again, image, (0, 0, 1280, 960)) < 0.5


def test_a_missing_logo_retries_the_unit_instead_of_publishing_it_unmarked(harness: Harness) -> None:
    harness.monkeypatch.setenv("WATERMARK_LOGO_KEY", "branding/missing.png")
    upload = harness.upload(media.small_png(harness.tmp / "grey.png", size=(2000, 1500)))
    large = image_unit("large", (1280, 960), "jpeg", watermark=True)
    thumb = image_unit("thumb", (320, 240), "jpeg", watermark=False)

    response = harness.invoke(upload.message(large), upload.message(thumb))

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.output_keys() == [output_key(JOB_ID, thumb)]
    assert by_type(harness.events.drain(), "Rendition Failed") == []


# --- colour modes -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("with_profile", "expected"),
    [
        # With its profile, the odd press's cyan ink prints red: the conversion used the profile.
        (True, lambda mean: mean[0] > 200 and mean[1] < 70 and mean[2] < 70),
        # Without one, the plain conversion: full cyan ink is cyan.
        (False, lambda mean: mean[0] < 50 and mean[1] > 205 and mean[2] > 205),
    ],
    ids=["with-icc-profile", "without-profile"],
)
def test_a_cmyk_jpeg_becomes_rgb_converted_with_its_profile_when_it_has_one(
    harness: Harness, with_profile: bool, expected: Any
) -> None:
    profile = media.cmyk_icc_profile() if with_profile else None
    upload = harness.upload(media.cmyk_jpeg(harness.tmp / "cmyk.jpg", icc_profile=profile))
    units = [image_unit("large", (800, 600), fmt, watermark=False) for fmt in ("webp", "jpeg")]
    units.append(METADATA_UNIT)

    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}

    for unit in units[:2]:
        data = harness.output_bytes(output_key(JOB_ID, unit))
        image = Image.open(io.BytesIO(data))
        assert (image.mode, image.size) == ("RGB", (800, 600))
        assert expected(media.region_mean(image, (20, 20, 380, 280))), media.region_mean(image, (20, 20, 380, 280))
        assert all(v > 240 for v in media.region_mean(image, (420, 320, 780, 580)))  # no ink is white
        assert_no_metadata(data)
    metadata = harness.metadata_json()
    assert (metadata["mode"], metadata["hasIccProfile"], metadata["format"]) == ("CMYK", with_profile, "JPEG")


def test_an_rgba_png_keeps_its_transparency_in_webp_and_is_flattened_on_white_in_jpeg(harness: Harness) -> None:
    upload = harness.upload(media.rgba_png(harness.tmp / "alpha.png"))
    units = default_units(upload.display)[:-1]

    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}

    webp = harness.output_image(output_key(JOB_ID, units[0]))  # thumb-webp, 320x240
    assert (webp.mode, webp.size) == ("RGBA", (320, 240))
    alpha = webp.getchannel("A")
    assert alpha.crop((0, 0, 150, 240)).getextrema() == (255, 255)
    assert alpha.crop((170, 0, 320, 240)).getextrema() == (0, 0)
    assert marker_corner(webp.crop((0, 0, 160, 240))) == "top-left"
    jpeg = harness.output_image(output_key(JOB_ID, units[1]))  # thumb-jpeg
    assert (jpeg.mode, jpeg.size) == ("RGB", (320, 240))
    assert all(v > 245 for v in media.region_mean(jpeg, (175, 5, 315, 235)))
    assert is_grey(media.region_mean(jpeg, (60, 100, 150, 235)))
    large = harness.output_image(output_key(JOB_ID, units[2]))  # large-webp: never enlarged past 640x480
    assert (large.mode, large.size) == ("RGBA", (640, 480))


def test_a_palette_png_with_a_transparent_index_becomes_rgba(harness: Harness) -> None:
    upload = harness.upload(media.palette_png(harness.tmp / "palette.png"))
    units = [image_unit("thumb", (320, 213), fmt, watermark=False) for fmt in ("webp", "jpeg")]
    assert planned_size(upload.display, 320) == (320, 213)

    assert harness.invoke(*upload.messages([*units, METADATA_UNIT])) == {"batchItemFailures": []}

    webp = harness.output_image(output_key(JOB_ID, units[0]))
    assert (webp.mode, webp.size) == ("RGBA", (320, 213))
    assert webp.getchannel("A").crop((0, 0, 320, 100)).getextrema() == (255, 255)
    assert webp.getchannel("A").crop((0, 112, 320, 213)).getextrema() == (0, 0)
    assert is_red(media.region_mean(webp.convert("RGB"), (0, 0, 25, 25)))
    jpeg = harness.output_image(output_key(JOB_ID, units[1]))
    assert jpeg.mode == "RGB"
    assert all(v > 245 for v in media.region_mean(jpeg, (0, 115, 320, 213)))
    assert is_grey(media.region_mean(jpeg, (100, 10, 320, 95)))
    assert harness.metadata_json()["mode"] == "P"


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped(harness: Harness) -> None:
    upload = harness.upload(media.sixteen_bit_png(harness.tmp / "ramp16.png"))
    units = [image_unit("large", (1024, 256), fmt, watermark=False) for fmt in ("webp", "jpeg")]

    assert harness.invoke(*upload.messages([*units, METADATA_UNIT])) == {"batchItemFailures": []}

    for unit in units:
        image = harness.output_image(output_key(JOB_ID, unit))
        assert (image.mode, image.size) == ("RGB", (1024, 256))
        for x, expected in ((10, 2.5), (256, 64), (512, 128), (768, 191), (1013, 252.5)):
            mean = media.region_mean(image, (x - 8, 100, x + 8, 156))
            assert all(abs(value - expected) < 6 for value in mean), (unit["name"], x, mean)
    assert harness.metadata_json()["mode"] == "I;16"


@pytest.mark.parametrize("maker", [media.animated_gif, media.animated_webp], ids=["gif", "webp"])
def test_an_animated_image_gives_a_still_of_its_first_frame(harness: Harness, maker: Any) -> None:
    path = maker(harness.tmp / f"anim.{maker.__name__.split('_')[1]}")
    upload = harness.upload(path)
    units = default_units(upload.display)

    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}

    for unit in units[:-1]:
        data = harness.output_bytes(output_key(JOB_ID, unit))
        image = Image.open(io.BytesIO(data))
        assert getattr(image, "n_frames", 1) == 1
        assert image.size == (unit["width"], unit["height"]) == planned_size((400, 300), max(image.size))
        assert is_red(media.region_mean(image.convert("RGB"), (0, 0, image.width, image.height)))
    metadata = harness.metadata_json()
    assert (metadata["frames"], metadata["width"], metadata["height"]) == (3, 400, 300)
    assert metadata["format"] == ("GIF" if maker is media.animated_gif else "WEBP")


def test_a_large_webp_is_reduced_to_each_planned_size(harness: Harness) -> None:
    upload = harness.upload(media.large_webp(harness.tmp / "large.webp"))
    units = default_units(upload.display)

    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}

    sizes = {u["name"]: harness.output_image(output_key(JOB_ID, u)).size for u in units[:-1]}
    assert sizes == {
        "thumb-webp": (320, 240),
        "thumb-jpeg": (320, 240),
        "large-webp": (1280, 960),
        "large-jpeg": (1280, 960),
    }
    assert marker_corner(harness.output_image(output_key(JOB_ID, units[2]))) == "top-left"
    assert harness.metadata_json()["format"] == "WEBP"


def test_an_avif_smaller_than_the_large_derivative_is_not_enlarged(harness: Harness) -> None:
    upload = harness.upload(media.avif(harness.tmp / "photo.avif"))
    units = default_units(upload.display)

    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}

    sizes = {u["name"]: harness.output_image(output_key(JOB_ID, u)).size for u in units[:-1]}
    assert sizes == {
        "thumb-webp": (320, 240),
        "thumb-jpeg": (320, 240),
        "large-webp": (800, 600),
        "large-jpeg": (800, 600),
    }
    assert marker_corner(harness.output_image(output_key(JOB_ID, units[3]))) == "top-left"
    assert harness.metadata_json()["format"] == "AVIF"


def test_a_plan_larger_than_the_source_never_enlarges_it(harness: Harness) -> None:
    upload = harness.upload(media.small_png(harness.tmp / "small.png", size=(200, 150)))
    unit = image_unit("large", (1280, 960), "jpeg", watermark=False)

    assert harness.invoke(upload.message(unit)) == {"batchItemFailures": []}

    assert harness.output_image(output_key(JOB_ID, unit)).size == (200, 150)
    (completed,) = by_type(harness.events.drain(), "Rendition Completed")
    assert (completed["width"], completed["height"]) == (200, 150)


# --- bad images ---------------------------------------------------------------------------------------------------


def failures(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["rendition"]: d["error"] for d in by_type(events, "Rendition Failed")}


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (media.truncated_jpeg, "cannot be decoded"),
        (lambda path: media.png_claiming(path, 100_000, 100_000), "pixels"),
    ],
    ids=["truncated-jpeg", "png-claiming-10-gigapixels"],
)
def test_an_image_that_cannot_be_decoded_fails_each_unit_without_retry(
    harness: Harness, maker: Any, reason: str
) -> None:
    upload = harness.upload(maker(harness.tmp / "bad"), display=(1200, 900))
    units = default_units(upload.display)

    response = harness.invoke(*upload.messages(units))

    assert response == {"batchItemFailures": []}  # a retry would fail the same way
    assert harness.output_keys() == []
    events = harness.events.drain()
    failed = failures(events)
    assert set(failed) == {u["name"] for u in units}
    assert {error["code"] for error in failed.values()} == {"IMAGE_PROCESSING_FAILED"}
    assert all(reason in error["message"] for error in failed.values()), failed
    assert all(str(harness.tmp) not in error["message"] for error in failed.values()), failed
    assert by_type(events, "Rendition Completed") == []


def test_an_image_over_the_pixel_limit_is_not_decoded(harness: Harness) -> None:
    harness.monkeypatch.setenv("MAX_IMAGE_PIXELS", "1000000")
    upload = harness.upload(media.large_webp(harness.tmp / "large.webp", size=(1200, 900)))

    assert harness.invoke(*upload.messages()) == {"batchItemFailures": []}

    failed = failures(harness.events.drain())
    assert len(failed) == 5
    assert all(e["code"] == "IMAGE_PROCESSING_FAILED" and "1080000" in e["message"] for e in failed.values()), failed
    assert harness.output_keys() == []


# --- redelivery, replaced sources, transient errors ---------------------------------------------------------------


def test_a_second_delivery_reannounces_the_outputs_without_writing_them_again(harness: Harness) -> None:
    # GIVEN a versioned outputs bucket, and the units of an image made once
    harness.s3.put_bucket_versioning(Bucket=OUTPUTS, VersioningConfiguration={"Status": "Enabled"})
    upload = harness.upload(media.rotated_phone_jpeg(harness.tmp / "phone.jpg"), display=(1200, 1600))
    units = [image_unit("large", (960, 1280), "jpeg", watermark=True), METADATA_UNIT]
    assert harness.invoke(*upload.messages(units)) == {"batchItemFailures": []}
    first = by_type(harness.events.drain(), "Rendition Completed")

    # WHEN the same messages arrive again, after the upload is gone (a redo would fail SOURCE_REPLACED)
    harness.s3.delete_object(Bucket=UPLOADS, Key=upload.key)
    response = harness.invoke(*upload.messages(units))

    # THEN each unit announces Progress 0 and the same Completed again, metadata included
    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert by_type(events, "Rendition Completed") == first
    assert completed_for(events, "metadata")["image"]["cameraMake"] == "Canon"
    assert [d["percent"] for d in by_type(events, "Rendition Progress")] == [0, 0]
    assert by_type(events, "Rendition Failed") == []
    # AND no output was written twice
    versions = harness.s3.list_object_versions(Bucket=OUTPUTS)["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted(output_key(JOB_ID, u) for u in units)


@pytest.mark.parametrize("change", ["replaced", "deleted"])
def test_a_source_changed_since_ingest_fails_source_replaced(harness: Harness, change: str) -> None:
    upload = harness.upload(media.small_png(harness.tmp / "small.png"))
    if change == "replaced":
        harness.s3.put_object(Bucket=UPLOADS, Key=upload.key, Body=b"not the image ingest validated")
    else:
        harness.s3.delete_object(Bucket=UPLOADS, Key=upload.key)
    unit = image_unit("thumb", (200, 150), "webp", watermark=False)

    response = harness.invoke(upload.message(unit))

    assert response == {"batchItemFailures": []}
    reason = {
        "replaced": "the upload was replaced after it was validated",
        "deleted": "the upload is no longer available",
    }
    assert failures(harness.events.drain())["thumb-webp"] == {"code": "SOURCE_REPLACED", "message": reason[change]}
    assert harness.output_keys() == []


def test_aws_errors_leave_the_record_to_be_delivered_again(harness: Harness) -> None:
    upload = harness.upload(media.small_png(harness.tmp / "small.png"))
    unit = image_unit("thumb", (200, 150), "webp", watermark=False)
    harness.monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")

    response = harness.invoke(upload.message(unit))

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}


def test_a_record_that_is_not_a_fan_out_message_fails_alone(harness: Harness) -> None:
    upload = harness.upload(media.small_png(harness.tmp / "small.png"))
    unit = image_unit("thumb", (200, 150), "jpeg", watermark=False)

    response = harness.invoke("{not json", upload.message(unit))

    assert response == {"batchItemFailures": [{"itemIdentifier": "message-0"}]}
    assert harness.output_keys() == [output_key(JOB_ID, unit)]


def test_units_it_does_not_make_are_dropped_and_foreign_sources_refused(harness: Harness) -> None:
    upload = harness.upload(media.small_png(harness.tmp / "small.png"))
    video = {"name": "720p", "width": 200, "height": 150, "maxVideoBitrateKbps": 3000, "audioBitrateKbps": 128}
    foreign = upload.message(image_unit("thumb", (200, 150), "jpeg", watermark=False), bucket=OUTPUTS)

    response = harness.invoke(upload.message(video), foreign)

    assert response == {"batchItemFailures": []}
    events = harness.events.drain()
    assert [d["rendition"] for d in by_type(events, "Rendition Progress")] == ["thumb-jpeg"]
    failed = failures(events)
    assert failed["thumb-jpeg"] == {
        "code": "IMAGE_PROCESSING_FAILED",
        "message": "the upload is not in the uploads bucket",
    }
    assert set(failed) == {"thumb-jpeg"}
    assert harness.output_keys() == []
