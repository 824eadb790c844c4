"""The images function's ports on S3 and Pillow, their errors mapped to the service's.

S3 and the bus are the unit functions' shared adapters (`functions/common/unit_adapters.py`, which says which errors
are a domain answer). Beyond what every unit function's role needs, this one reads `outputs/*` for metadata.json
read back and the watermark logo, and reads the source with a cap on its size.

Pillow: an upload is untrusted input. It is opened only with the accepted formats' plugins, its size and its header's
pixel count are checked before anything is decoded, and it is decoded with Pillow's decompression-bomb guard set to
the same limit (its warning raised as an error). Whatever Pillow raises about the file (it does not decode, it is
truncated, its header lies) is ImageRejected: the image's fault, never worth a retry.
"""

from __future__ import annotations

import io
import math
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFont, ImageOps

from functions.common.client_messages import client_safe
from functions.common.observability import logger
from functions.common.unit_adapters import (
    CHUNK_BYTES,
    NOT_FOUND_CODES,
    S3UnitStore,
    error_code,
    made_by,
    object_metadata,
)
from functions.common.unit_worker import StoredOutput
from functions.contracts.fanout import SourceObject
from functions.contracts.jobs import ImageMetadata
from functions.contracts.media import ACCEPTED_IMAGE_FORMATS
from functions.images.service import (
    JPEG_QUALITY,
    WEBP_QUALITY,
    DerivativeSpec,
    EncodedImage,
    ImageRejected,
    LogoUnavailable,
    Watermark,
    display_size,
    exif_text,
    fit_size,
    watermark_margin,
    watermark_origin,
    watermark_width,
)

MAX_LOGO_BYTES = 10 * 1024 * 1024
MAX_LOGO_PIXELS = 25_000_000


# --- S3 -----------------------------------------------------------------------------------------------------------


def output_metadata(job_id: str, unit: str, size: tuple[int, int] | None, *, attempt: int) -> dict[str, str]:
    """User metadata (x-amz-meta-*) stored with an output, so a redelivered message can re-announce it from HEAD."""
    width, height = size if size is not None else (None, None)
    return object_metadata(job_id, unit, attempt=attempt, width=width, height=height)


def stored_output_from_head(
    head: dict[str, Any], bucket: str, key: str, job_id: str, unit: str, *, attempt: int
) -> StoredOutput | None:
    """The output a HEAD response describes, or None unless its metadata says this job's attempt made it for this
    unit."""
    metadata = head.get("Metadata") or {}
    if not made_by(metadata, job_id, unit, attempt):
        return None
    width, height = metadata.get("width", ""), metadata.get("height", "")
    sized = width.isdigit() and height.isdigit()
    return StoredOutput(
        bucket=bucket,
        key=key,
        bytes=int(head.get("ContentLength") or 0),
        contentType=str(head.get("ContentType") or ""),
        width=int(width) if sized else None,
        height=int(height) if sized else None,
    )


_LOGOS: dict[tuple[str, str], bytes] = {}
"""Watermark logos by (bucket, key): read once per execution environment."""


def forget_logos() -> None:
    """Drop the cached logos (tests that start a new mocked AWS)."""
    _LOGOS.clear()


class S3ImageStore(S3UnitStore):
    """The uploads and outputs buckets, on S3."""

    def download_source(self, source: SourceObject, destination: Path, *, max_bytes: int) -> None:
        """Copy the source to `destination` as every unit function does (`get_source`: only the object ingest
        validated), with this function's cap: ImageRejected when it is over `max_bytes`, said by S3 or found while
        reading."""
        response = self.get_source(source)
        body = response["Body"]
        if int(response.get("ContentLength") or 0) > max_bytes:
            body.close()
            raise ImageRejected(f"the image is {response['ContentLength']} bytes, more than {max_bytes}")
        written = 0
        with destination.open("wb") as out:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    body.close()
                    raise ImageRejected(f"the image is more than {max_bytes} bytes")
                out.write(chunk)

    def find_output(self, job_id: str, unit: str, key: str, *, attempt: int) -> StoredOutput | None:
        head = self.head_output(key)
        if head is None:
            return None
        return stored_output_from_head(head, self.outputs_bucket, key, job_id, unit, attempt=attempt)

    def read_output(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.outputs_bucket, Key=key)["Body"].read()

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
        self._s3.put_object(
            Bucket=self.outputs_bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            Metadata=output_metadata(job_id, unit, size, attempt=attempt),
        )
        width, height = size if size is not None else (None, None)
        return StoredOutput(self.outputs_bucket, key, len(data), content_type, width, height)

    def read_logo(self, key: str) -> bytes:
        cached = _LOGOS.get((self.outputs_bucket, key))
        if cached is not None:
            return cached
        where = f"s3://{self.outputs_bucket}/{key}"
        try:
            response = self._s3.get_object(Bucket=self.outputs_bucket, Key=key)
        except ClientError as err:
            if error_code(err) in NOT_FOUND_CODES:
                raise LogoUnavailable(f"the watermark logo {where} does not exist") from err
            raise
        if int(response.get("ContentLength") or 0) > MAX_LOGO_BYTES:
            response["Body"].close()
            raise LogoUnavailable(f"the watermark logo {where} is larger than {MAX_LOGO_BYTES} bytes")
        logo = response["Body"].read()
        _LOGOS[(self.outputs_bucket, key)] = logo
        return logo


# --- Pillow: opening untrusted files ------------------------------------------------------------------------------

PILLOW_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # UnidentifiedImageError, "image file is truncated", broken data streams
    SyntaxError,  # what several plugins raise for a malformed header or chunk
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    struct.error,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)
"""What Pillow raises about a file it cannot read."""


def _is_about_the_file(err: BaseException) -> bool:
    """An OSError with an errno (no space left, I/O error) is about this machine, not the image."""
    return not (isinstance(err, OSError) and err.errno is not None)


@contextmanager
def guarded_decoding(max_pixels: int) -> Iterator[None]:
    """Pillow's bomb guard at `max_pixels` (its warning an error), and Pillow's errors as ImageRejected."""
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (ImageRejected, LogoUnavailable):
        raise
    except PILLOW_ERRORS as err:
        if not _is_about_the_file(err):
            raise
        # Pillow names the file it was given ("cannot identify image file '/tmp/images-…/source'"): the client reads
        # this reason, so the working directory is cut from it.
        raise ImageRejected(f"the image cannot be decoded: {client_safe(str(err))}") from err
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def open_checked(path: Path, *, max_pixels: int, max_bytes: int) -> Image.Image:
    """The image, lazily opened (nothing decoded yet) by one of the accepted formats' plugins, after its size in bytes
    and its header's pixel count were checked. Use inside `guarded_decoding`."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageRejected(f"the image is {size} bytes, more than {max_bytes}")
    image = Image.open(path, formats=ACCEPTED_IMAGE_FORMATS)
    width, height = image.size
    if width <= 0 or height <= 0 or width * height > max_pixels:
        image.close()
        raise ImageRejected(f"the image is {width}x{height} pixels, more than {max_pixels} or none")
    return image


# --- Pillow: modes and colour -------------------------------------------------------------------------------------

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
ICC_SPACES = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}
"""An ICC profile's colour space -> the mode of the pixels it describes."""


@cache
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def to_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image | None:
    """`image` (RGB, L or CMYK) converted to sRGB RGB with the profile it embeds; None when it has none, or one that
    does not describe its pixels or cannot be read (the caller then converts without colour management)."""
    if not icc_profile:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        if ICC_SPACES.get(profile.profile.xcolor_space.strip()) != image.mode:
            return None
        return ImageCms.profileToProfile(
            image, profile, srgb_profile(), renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
        )
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as err:
        logger.warning("the embedded ICC profile cannot be applied; converting without it", extra={"error": str(err)})
        return None


def sixteen_bit_to_eight(image: Image.Image) -> Image.Image:
    """A 16-bit (or 32-bit integer) grey image as 8-bit `L`, scaled (65535 -> 255), not clipped at 255."""
    wide = image if image.mode == "I" else image.convert("I")
    low, high = wide.getextrema()
    if low >= 0 and high <= 65535:
        scale, offset = 1 / 257, 0.0
    else:  # some other integer range: stretch what is there
        scale = 255 / max(1, high - low)
        offset = -low * scale
    return wide.point(lambda value: value * scale + (offset + 0.5)).convert("L")  # + 0.5: rounded, not truncated


def rgb_or_rgba(image: Image.Image) -> Image.Image:
    """The image as sRGB `RGB`, or `RGBA` when it has transparency (an alpha band, or a transparent palette index or
    colour). CMYK is converted with its embedded profile when it has one; 16-bit grey is scaled to 8 bits."""
    icc_profile = image.info.get("icc_profile")
    if image.mode == "CMYK":
        return to_srgb(image, icc_profile) or image.convert("RGB")
    if image.mode in SIXTEEN_BIT_MODES:
        image = sixteen_bit_to_eight(image)
    rgba = image.convert("RGBA") if image.has_transparency_data else None
    if rgba is not None:
        colours = rgba.convert("RGB")
    elif image.mode in ("RGB", "L"):
        colours = image  # as they are: an embedded grey profile describes L pixels
    else:
        colours = image.convert("RGB")
    rgb = to_srgb(colours, icc_profile) or colours.convert("RGB")
    if rgba is not None:
        rgb.putalpha(rgba.getchannel("A"))
    return rgb


def flatten_on_white(image: Image.Image) -> Image.Image:
    """An RGBA image composed over white (JPEG has no transparency)."""
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image.getchannel("A"))
    return background


# --- Pillow: the watermark ----------------------------------------------------------------------------------------

FONT_REFERENCE_SIZE = 100


@cache
def watermark_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's built-in scalable font (FreeType), at `size` pixels."""
    return ImageFont.load_default(size=size)


def _with_opacity(mark: Image.Image, opacity: float) -> Image.Image:
    mark.putalpha(mark.getchannel("A").point(lambda alpha: round(alpha * opacity)))
    return mark


def text_mark(text: str, width: int, opacity: float) -> Image.Image | None:
    """White text with a dark outline, about `width` pixels wide, at `opacity`; None when too small to draw."""
    left, _, right, _ = watermark_font(FONT_REFERENCE_SIZE).getbbox(text)
    if right <= left:
        return None
    size = math.floor(FONT_REFERENCE_SIZE * width / (right - left))
    if size < 1:
        return None
    font = watermark_font(size)
    stroke = max(1, size // 16)
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    if right <= left or bottom <= top:
        return None
    mark = Image.new("RGBA", (right - left, bottom - top), (0, 0, 0, 0))
    ImageDraw.Draw(mark).text(
        (-left, -top), text, font=font, fill=(255, 255, 255, 255), stroke_width=stroke, stroke_fill=(0, 0, 0, 255)
    )
    return _with_opacity(mark, opacity)


def logo_mark(logo: bytes, width: int, opacity: float) -> Image.Image:
    """The logo resized to `width` pixels wide (aspect kept), its alpha multiplied by `opacity`."""
    try:
        with guarded_decoding(MAX_LOGO_PIXELS), Image.open(io.BytesIO(logo), formats=["PNG"]) as source:
            source.load()
            rgba = source.convert("RGBA")
    except ImageRejected as err:
        raise LogoUnavailable(f"the watermark logo is not a readable PNG: {err}") from err
    height = max(1, round(rgba.height * width / rgba.width))
    return _with_opacity(rgba.resize((width, height), Image.Resampling.LANCZOS), opacity)


def _fit_mark(mark: Image.Image, image_size: tuple[int, int]) -> Image.Image:
    """The mark shrunk, if need be, to fit inside the image's margins."""
    margin = watermark_margin(image_size)
    room_w, room_h = max(1, image_size[0] - 2 * margin), max(1, image_size[1] - 2 * margin)
    if mark.width <= room_w and mark.height <= room_h:
        return mark
    scale = min(room_w / mark.width, room_h / mark.height)
    size = max(1, math.floor(mark.width * scale)), max(1, math.floor(mark.height * scale))
    return mark.resize(size, Image.Resampling.LANCZOS)


def apply_watermark(image: Image.Image, watermark: Watermark) -> Image.Image:
    """The mark composed bottom-right inside the margin; the image unchanged when the mark would be too small."""
    width = watermark_width(image.width, watermark.scale)
    if watermark.logo is not None:
        mark: Image.Image | None = logo_mark(watermark.logo, width, watermark.opacity)
    else:
        mark = text_mark(watermark.text, width, watermark.opacity)
    if mark is None:
        return image
    mark = _fit_mark(mark, image.size)
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    layer.paste(mark, watermark_origin(image.size, mark.size))
    composed = Image.alpha_composite(image.convert("RGBA"), layer)
    return composed if image.mode == "RGBA" else composed.convert(image.mode)


# --- Pillow: encoding ---------------------------------------------------------------------------------------------


def encode(image: Image.Image, pillow_format: str) -> bytes:
    """The image's pixels, and nothing else, as WebP or JPEG: the pixels are copied into a new image, so no EXIF,
    ICC profile, XMP or comment of the source can be written with them."""
    bare = Image.new(image.mode, image.size)
    bare.paste(image)
    out = io.BytesIO()
    if pillow_format == "JPEG":
        bare.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True, subsampling="4:2:0")
    else:
        bare.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return out.getvalue()


class PillowCodec:
    """Derivatives and metadata, with Pillow."""

    def make_derivative(self, path: Path, spec: DerivativeSpec) -> EncodedImage:
        # All of it is guarded: what Pillow refuses of this image it will refuse at every retry.
        with guarded_decoding(spec.max_pixels):
            with open_checked(path, max_pixels=spec.max_pixels, max_bytes=spec.max_bytes) as source:
                source.seek(0)  # an animated GIF or WebP gives the still of its first frame
                source.load()
                upright = ImageOps.exif_transpose(source)  # a copy of that frame, turned as its EXIF says
            image = rgb_or_rgba(upright)
            size = fit_size(image.size, (spec.width, spec.height))
            if size != image.size:
                image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            if spec.watermark is not None:
                image = apply_watermark(image, spec.watermark)
            if spec.pillow_format == "JPEG" and image.mode == "RGBA":
                image = flatten_on_white(image)
            data = encode(image, spec.pillow_format)
            with Image.open(io.BytesIO(data), formats=[spec.pillow_format]) as output:
                output.load()
                return EncodedImage(data=data, width=output.width, height=output.height)

    def read_metadata(self, path: Path, *, max_pixels: int, max_bytes: int) -> ImageMetadata:
        """What the job shows of the image: never its location, nor any EXIF beyond make, model and capture time."""
        with guarded_decoding(max_pixels), open_checked(path, max_pixels=max_pixels, max_bytes=max_bytes) as image:
            mode, frames = image.mode, getattr(image, "n_frames", 1)
            image.load()  # the metadata of an image that does not decode is not worth keeping
            exif = image.getexif()
            orientation = exif.get(ExifTags.Base.Orientation, 1)
            width, height = display_size(image.size, orientation if isinstance(orientation, int) else 1)
            details = exif.get_ifd(ExifTags.IFD.Exif)
            if image.format == "MPO":
                # Phones' JPEGs carrying a preview or depth map: Pillow calls them MPO; ingest took them as JPEG stills.
                frames = 1
            return ImageMetadata(
                format="JPEG" if image.format == "MPO" else str(image.format),
                width=width,
                height=height,
                frames=max(1, int(frames)),
                mode=mode,
                hasIccProfile=bool(image.info.get("icc_profile")),
                cameraMake=exif_text(exif.get(ExifTags.Base.Make)),
                cameraModel=exif_text(exif.get(ExifTags.Base.Model)),
                capturedAt=exif_text(details.get(ExifTags.Base.DateTimeOriginal)),
            )
