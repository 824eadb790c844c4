"""The Pillow adapter on its own: the decoding guards, the mode conversions and the watermark, on generated images."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from functions.images.adapters import (
    PillowCodec,
    apply_watermark,
    encode,
    guarded_decoding,
    logo_mark,
    open_checked,
    rgb_or_rgba,
    sixteen_bit_to_eight,
    text_mark,
)
from functions.images.service import DerivativeSpec, ImageRejected, LogoUnavailable, Watermark
from tests.functions.images import media


def test_open_checked_refuses_a_header_over_the_pixel_limit_before_decoding(tmp_path: Path) -> None:
    path = media.png_claiming(tmp_path / "claims.png", 5000, 5000)

    with pytest.raises(ImageRejected, match="5000x5000 pixels, more than 1000000"):
        open_checked(path, max_pixels=1_000_000, max_bytes=10_000)


def test_open_checked_refuses_a_file_over_the_byte_limit(tmp_path: Path) -> None:
    path = media.small_png(tmp_path / "small.png")

    with pytest.raises(ImageRejected, match="bytes, more than 10"):
        open_checked(path, max_pixels=1_000_000, max_bytes=10)


def test_open_checked_reads_only_the_accepted_formats(tmp_path: Path) -> None:
    path = tmp_path / "image.bmp"
    Image.new("RGB", (10, 10)).save(path, "BMP")

    with pytest.raises(ImageRejected, match="cannot be decoded") as raised, guarded_decoding(1000):
        open_checked(path, max_pixels=1000, max_bytes=10_000)
    # Pillow names the file it cannot identify; the reason a client reads names no folder of the function's machine
    assert str(tmp_path) not in str(raised.value)
    assert "image.bmp" in str(raised.value)


def test_the_bomb_guard_is_pillows_own_limit_while_decoding_and_restored_after() -> None:
    before = Image.MAX_IMAGE_PIXELS
    image = Image.new("L", (100, 100))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")

    with pytest.raises(ImageRejected, match="decompression bomb"), guarded_decoding(5000):
        assert Image.MAX_IMAGE_PIXELS == 5000
        Image.open(io.BytesIO(buffer.getvalue()))

    assert before == Image.MAX_IMAGE_PIXELS


def test_an_os_error_of_the_machine_is_not_blamed_on_the_image() -> None:
    with pytest.raises(OSError, match="No space left") as raised, guarded_decoding(1000):
        raise OSError(28, "No space left on device")
    assert not isinstance(raised.value, ImageRejected)


@pytest.mark.parametrize(
    ("mode", "expected_mode"),
    [("1", "RGB"), ("L", "RGB"), ("LA", "RGBA"), ("RGB", "RGB"), ("RGBA", "RGBA"), ("PA", "RGBA"), ("CMYK", "RGB")],
)
def test_every_mode_becomes_rgb_or_rgba(mode: str, expected_mode: str) -> None:
    image = Image.new("RGBA", (8, 8), (200, 100, 50, 255)).convert(mode)

    assert rgb_or_rgba(image).mode == expected_mode


def test_a_grey_image_with_a_transparent_colour_gets_an_alpha_band() -> None:
    image = Image.new("L", (4, 1), 0)
    image.putpixel((0, 0), 200)
    image.info["transparency"] = 0

    converted = rgb_or_rgba(image)

    assert converted.mode == "RGBA"
    assert [converted.getpixel((x, 0))[3] for x in range(4)] == [255, 0, 0, 0]


@pytest.mark.parametrize(
    ("mode", "values", "expected"),
    [
        ("I;16", [0, 257, 32896, 65535], [0, 1, 128, 255]),
        ("I", [0, 257, 32896, 65535], [0, 1, 128, 255]),
        ("I", [-1000, 0, 1000, 3000], [0, 64, 128, 255]),  # another range: stretched
    ],
)
def test_wide_grey_is_scaled_to_eight_bits(mode: str, values: list[int], expected: list[int]) -> None:
    image = Image.new(mode, (4, 1))
    image.putdata(values)

    eight = sixteen_bit_to_eight(image)

    assert eight.mode == "L"
    assert [eight.getpixel((x, 0)) for x in range(4)] == expected


def test_a_broken_embedded_profile_falls_back_to_a_plain_conversion() -> None:
    image = Image.new("RGB", (4, 4), (10, 200, 30))
    image.info["icc_profile"] = b"not a profile"

    assert rgb_or_rgba(image).getpixel((0, 0)) == (10, 200, 30)


def test_an_embedded_srgb_profile_keeps_the_colours() -> None:
    image = Image.new("RGB", (4, 4), (10, 200, 30))
    image.info["icc_profile"] = media.srgb_icc()

    converted = rgb_or_rgba(image).getpixel((0, 0))

    assert all(abs(a - b) <= 2 for a, b in zip(converted, (10, 200, 30), strict=True))


def test_the_text_mark_spans_the_requested_width() -> None:
    mark = text_mark("media-pipeline", 320, 0.5)

    assert mark is not None
    assert 300 <= mark.width <= 330
    assert mark.getchannel("A").getextrema()[1] in range(120, 130)  # half of opaque


def test_a_mark_too_small_to_draw_leaves_the_image_unchanged() -> None:
    image = Image.new("RGB", (3, 3), (128, 128, 128))

    assert apply_watermark(image, Watermark(opacity=0.5, scale=0.1, text="media-pipeline")).tobytes() == image.tobytes()


def test_an_invisible_watermark_changes_nothing() -> None:
    image = media.marked((400, 300))

    marked = apply_watermark(image, Watermark(opacity=0.0, scale=0.25, text="media-pipeline"))

    assert marked.tobytes() == image.tobytes()


def test_a_logo_that_is_not_a_png_is_unavailable() -> None:
    with pytest.raises(LogoUnavailable):
        logo_mark(b"GIF89a not a png", 100, 0.5)


def test_a_logo_taller_than_the_image_is_shrunk_into_its_margins() -> None:
    image = Image.new("RGB", (400, 100), (128, 128, 128))
    logo = media.logo_png(size=(100, 400))

    marked = apply_watermark(image, Watermark(opacity=1.0, scale=0.25, logo=logo))

    # 3 px margins leave 394x94: the 100x400 logo becomes 23x94, bottom-right
    assert ImageChops.difference(marked, image).getbbox() == (374, 3, 397, 97)


def test_encoding_writes_the_pixels_only() -> None:
    image = Image.new("RGB", (16, 16), (1, 2, 3))
    image.info |= {"icc_profile": media.srgb_icc(), "exif": b"Exif\x00\x00MM", "comment": b"hello"}

    for pillow_format in ("JPEG", "WEBP"):
        assert media.metadata_carriers(encode(image, pillow_format)) == []


def test_a_derivative_of_a_rotated_photo_reads_back_at_its_size(tmp_path: Path) -> None:
    path = media.rotated_phone_jpeg(tmp_path / "phone.jpg")
    spec = DerivativeSpec(width=240, height=320, pillow_format="JPEG", max_pixels=10_000_000, max_bytes=10_000_000)

    encoded = PillowCodec().make_derivative(path, spec)

    assert (encoded.width, encoded.height) == (240, 320)
    assert Image.open(io.BytesIO(encoded.data)).size == (240, 320)


def test_a_phone_jpeg_with_a_depth_map_reads_as_a_one_frame_jpeg(tmp_path: Path) -> None:
    """Phones append previews and depth maps (the Multi-Picture Format, Pillow's MPO); ingest takes them as JPEG stills,
    and the metadata says the same."""
    path = tmp_path / "phone.jpg"
    photo, depth_map = Image.new("RGB", (640, 480), (200, 30, 30)), Image.new("L", (160, 120), 128)
    photo.save(path, "MPO", save_all=True, append_images=[depth_map])

    metadata = PillowCodec().read_metadata(path, max_pixels=50_000_000, max_bytes=50 * 1024 * 1024)

    assert (metadata.format, metadata.frames, metadata.width, metadata.height) == ("JPEG", 1, 640, 480)
