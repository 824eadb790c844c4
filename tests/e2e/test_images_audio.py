"""Images and audio end to end on the local cloud: every input generated here goes through the public API and the
presigned form, and every output is read back (Pillow for images, ffprobe for audio).

The uploads of a module start together and are followed together, so the session waits for the slowest job once.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageOps, ImageStat

from local.cli.client import ApiClient, download
from tests import media_samples as samples
from tests.e2e.conftest import RunningCloud
from tests.e2e.test_pipeline import follow, renditions, start_upload

pytestmark = pytest.mark.e2e

JOB_TIMEOUT_SECONDS = 600  # generous: the first image job builds the images function's environment
DERIVATIVES = {"thumb": 320, "large": 1280}  # the program's default imageDerivatives (longest edge)
FORMATS = {"webp": "WEBP", "jpeg": "JPEG"}


@dataclass(frozen=True)
class Upload:
    make: Callable[[Path], Path]
    filename: str
    content_type: str


IMAGES = {
    "rotated": Upload(samples.exif_rotated_jpeg, "portrait.jpg", "image/jpeg"),
    "cmyk": Upload(samples.cmyk_jpeg, "print.jpg", "image/jpeg"),
    "rgba": Upload(samples.rgba_png, "overlay.png", "image/png"),
    "palette": Upload(samples.palette_png, "icon.png", "image/png"),
    "16bit": Upload(samples.png_16bit, "scan.png", "image/png"),
    "animated": Upload(samples.animated_gif, "loop.gif", "image/gif"),
    "large": Upload(samples.large_webp, "panorama.webp", "image/webp"),
    "avif": Upload(samples.avif_image, "photo.avif", "image/avif"),
    # A real PNG whose name and declared type say video: content decides.
    "lying": Upload(samples.rgba_png, "movie.mp4", "video/mp4"),
}
REJECTED = {
    "truncated": (Upload(samples.truncated_jpeg, "cut.jpg", "image/jpeg"), "CORRUPT_MEDIA"),
    "bomb": (
        Upload(lambda path: samples.png_claiming(path, width=100_000, height=100_000), "bomb.png", "image/png"),
        "RESOLUTION_TOO_HIGH",
    ),
    "not-an-image": (
        Upload(samples.text_file, "notes.png", "image/png"),
        "UNSUPPORTED_FORMAT",
    ),
}
AUDIO = {extension: f"audio/{subtype}" for extension, subtype in (("mp3", "mpeg"), ("m4a", "mp4"), ("wav", "wav"))}
AUDIO |= {"flac": "audio/flac", "ogg": "audio/ogg", "webm": "audio/webm", "aac": "audio/aac"}


def run_all(client: ApiClient, uploads: dict[str, tuple[Path, str]]) -> dict[str, dict[str, Any]]:
    """Upload every file, then follow every job to its final state; case -> the job as the API shows it."""
    job_ids = {case: start_upload(client, path, content_type) for case, (path, content_type) in uploads.items()}
    with ThreadPoolExecutor(max_workers=4) as pool:
        followed = pool.map(lambda job_id: follow(client, job_id, JOB_TIMEOUT_SECONDS), job_ids.values())
        return dict(zip(job_ids, followed, strict=True))


@pytest.fixture(scope="module")
def image_jobs(pipeline_cloud: RunningCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    media = tmp_path_factory.mktemp("images")
    uploads = {
        case: (upload.make(media / f"{case}-{upload.filename}"), upload.content_type) for case, upload in IMAGES.items()
    }
    uploads |= {
        case: (upload.make(media / f"{case}-{upload.filename}"), upload.content_type)
        for case, (upload, _) in REJECTED.items()
    }
    jobs = run_all(pipeline_cloud.client("imelda"), uploads)
    return {"jobs": jobs, "sources": {case: path for case, (path, _) in uploads.items()}, "dir": media}


@pytest.fixture(scope="module")
def audio_jobs(pipeline_cloud: RunningCloud, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    media = tmp_path_factory.mktemp("audio")
    uploads = {ext: (samples.make_tone(media / f"tone.{ext}"), content_type) for ext, content_type in AUDIO.items()}
    return {"jobs": run_all(pipeline_cloud.client("audrey"), uploads), "dir": media}


def fetch(rendition: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    return download(rendition["url"], directory / f"{rendition['name']}.{rendition['contentType'].split('/')[1]}")


def longest_edge(size: tuple[int, int]) -> int:
    return max(size)


def upright_source(path: Path) -> Image.Image:
    with Image.open(path) as source:
        source.seek(0)
        return ImageOps.exif_transpose(source.convert("RGB"))


@pytest.mark.parametrize("case", sorted(IMAGES))
def test_an_image_gets_every_derivative_upright_stripped_and_never_upscaled(
    image_jobs: dict[str, Any], case: str
) -> None:
    job = image_jobs["jobs"][case]
    assert job["status"] == "COMPLETED", job
    assert (job["mediaType"], job["error"]) == ("image", None)
    source = upright_source(image_jobs["sources"][case])
    by_name = renditions(job)
    assert sorted(by_name) == sorted(f"{name}-{fmt}" for name in DERIVATIVES for fmt in FORMATS)
    for name, edge in DERIVATIVES.items():
        for fmt, pillow_format in FORMATS.items():
            rendition = by_name[f"{name}-{fmt}"]
            assert rendition["status"] == "COMPLETED", rendition
            path = fetch(rendition, image_jobs["dir"] / case)
            with Image.open(path) as output:
                assert output.format == pillow_format
                assert getattr(output, "n_frames", 1) == 1  # an animation's first frame, as a still
                assert (rendition["width"], rendition["height"]) == output.size
                assert rendition["bytes"] == path.stat().st_size
                assert longest_edge(output.size) == min(edge, longest_edge(source.size))  # never upscaled
                # The same shape as the upright source (within a pixel of rounding).
                assert abs(output.size[0] / output.size[1] - source.size[0] / source.size[1]) < 0.02
                assert not output.getexif(), "derivatives carry no EXIF at all (no GPS, no device)"
                assert "icc_profile" not in output.info and "xmp" not in output.info
                if fmt == "jpeg":
                    assert output.mode == "RGB"


def test_the_rotated_photo_is_upright_and_its_metadata_has_no_location(image_jobs: dict[str, Any]) -> None:
    job = image_jobs["jobs"]["rotated"]
    image = job["image"]
    assert (image["format"], image["width"], image["height"]) == ("JPEG", 800, 1200)  # upright, as displayed
    assert (image["cameraMake"], image["cameraModel"], image["capturedAt"]) == (
        "TestCam",
        "Model X",
        "2026:11:30 12:34:56",
    )
    assert set(image) == {
        *("format", "width", "height", "frames", "mode", "hasIccProfile", "cameraMake", "cameraModel", "capturedAt"),
    }, "the metadata holds the documented fields only: no location"
    for name, rendition in renditions(job).items():
        with Image.open(fetch(rendition, image_jobs["dir"] / "rotated-check")) as output:
            rgb = output.convert("RGB")
            corner = rgb.crop((0, 0, max(1, rgb.width // 12), max(1, rgb.width // 12)))
            red, green, blue = ImageStat.Stat(corner).mean
            assert red > 180 and green < 80 and blue < 80, f"{name}: the marker is top-left once upright"


def test_the_large_derivative_carries_the_watermark_and_the_thumbnail_does_not(image_jobs: dict[str, Any]) -> None:
    job = image_jobs["jobs"]["large"]
    source = upright_source(image_jobs["sources"]["large"])

    def corners(name: str) -> tuple[float, float]:
        """Mean difference from the plainly resized source: (bottom-right region, top-left region)."""
        path = fetch(renditions(job)[name], image_jobs["dir"] / "watermark")
        with Image.open(path) as output:
            made = output.convert("RGB")
        plain = source.resize(made.size, Image.Resampling.LANCZOS)
        width, height = made.size
        box_br = (width * 3 // 4, height * 3 // 4, width, height)
        box_tl = (width // 6, height // 6, width // 4, height // 4)  # past the marker
        diff = ImageChops.difference(made, plain)
        return sum(ImageStat.Stat(diff.crop(box_br)).mean), sum(ImageStat.Stat(diff.crop(box_tl)).mean)

    large_corner, large_elsewhere = corners("large-jpeg")
    thumb_corner, _ = corners("thumb-jpeg")
    assert large_corner > large_elsewhere + 5, (large_corner, large_elsewhere)
    assert thumb_corner < large_corner / 2, (thumb_corner, large_corner)


def test_modes_are_converted_the_way_each_format_needs(image_jobs: dict[str, Any]) -> None:
    jobs = image_jobs["jobs"]
    directory = image_jobs["dir"] / "modes"
    with Image.open(fetch(renditions(jobs["rgba"])["large-webp"], directory)) as webp:
        assert webp.mode == "RGBA" and webp.getchannel("A").getextrema() == (0, 255), "alpha kept for WebP"
    with Image.open(fetch(renditions(jobs["palette"])["large-webp"], directory)) as palette:
        assert palette.mode == "RGBA" and palette.getchannel("A").getextrema() == (0, 255), "transparent index kept"
    with Image.open(fetch(renditions(jobs["rgba"])["large-jpeg"], directory)) as jpeg:
        assert jpeg.mode == "RGB"  # flattened only for JPEG
    with Image.open(fetch(renditions(jobs["16bit"])["large-jpeg"], directory)) as gradient:
        darkest, brightest = gradient.convert("L").getextrema()
        assert darkest < 30 and brightest > 225, "16-bit samples scaled to 8 bits, not clipped"
    assert jobs["animated"]["image"]["frames"] == 6
    assert jobs["cmyk"]["image"]["mode"] == "CMYK"
    assert jobs["lying"]["image"]["format"] == "PNG" and jobs["lying"]["mediaType"] == "image"


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_a_bad_image_is_rejected_with_its_code(image_jobs: dict[str, Any], case: str) -> None:
    job = image_jobs["jobs"][case]
    assert job["status"] == "REJECTED", job
    assert job["error"]["code"] == REJECTED[case][1], job["error"]
    assert job["renditions"] == []


@pytest.mark.parametrize("extension", sorted(AUDIO))
def test_audio_gets_a_normalised_aac_rendition_and_a_waveform(audio_jobs: dict[str, Any], extension: str) -> None:
    job = audio_jobs["jobs"][extension]
    assert job["status"] == "COMPLETED", job
    assert job["mediaType"] == "audio"
    assert (job["probe"]["channels"], job["probe"]["sampleRate"]) == (2, 48000)
    assert abs(job["probe"]["durationMs"] - 3000) < 100
    by_name = renditions(job)
    assert sorted(by_name) == ["audio", "waveform"]
    directory = audio_jobs["dir"] / extension
    info = samples.probe(fetch(by_name["audio"], directory))
    (stream,) = info["streams"]
    assert (stream["codec_type"], stream["codec_name"]) == ("audio", "aac")
    assert abs(float(info["format"]["duration"]) - 3.0) < 0.15
    assert by_name["audio"]["contentType"] == "audio/mp4"
    with Image.open(fetch(by_name["waveform"], directory)) as waveform:
        assert (waveform.format, waveform.size) == ("PNG", (1800, 280))
        assert (by_name["waveform"]["width"], by_name["waveform"]["height"]) == waveform.size
        assert waveform.convert("L").getextrema()[0] != waveform.convert("L").getextrema()[1], "a tone is not blank"
