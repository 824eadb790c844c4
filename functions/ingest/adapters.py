"""Ingest's adapters: S3 for the upload, Pillow and ffprobe for what it is, SNS for the fan-out.

Pillow sees only files whose first bytes are the signature of an accepted image format (`ACCEPTED_IMAGE_FORMATS`),
and opens them with those formats only. It reads a header with its decompression-bomb guard off (nothing is decoded,
so a header claiming 100000x100000 pixels costs nothing, and the service rejects it by its numbers), and decodes with
the guard at the pixel limit, its warning raised as an error, and truncated files refused (`_pillow_rules`).

ffprobe runs with `-protocol_whitelist file` (nothing but the local file can be opened) and `-format_whitelist`
set to the accepted video and audio demuxers (`functions/contracts/media.py`). The whitelist is checked when the
input is opened, before a demuxer reads its header, so an HLS, DASH or concat playlist is refused before it can open
the files or URLs it names (the classic way to make a transcoder read `/proc/self/environ` into a video). Nested
inputs inherit both whitelists. The detected format is checked again on the result (`summarize`): a video against
the video list, audio against the audio list.

Two runs, each usable on its own:
- `read_probe_json`: ffprobe's JSON, or a rejection (UNSUPPORTED_FORMAT when no allowed demuxer recognised the
  content, CORRUPT_MEDIA when one did but could not read it);
- `check_decodes_to_end`: reads the last seconds of the video stream and decodes their keyframes, because a
  truncated file often still has a complete header (MP4 with the index first, Matroska) and probes fine.
"""

from __future__ import annotations

import json
import struct
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from PIL import ExifTags, Image, ImageFile

from functions.common.media_tools import ffprobe_path, tool_env
from functions.contracts.media import ACCEPTED_IMAGE_FORMATS, DEMUXER_WHITELIST
from functions.ingest.service import (
    FRAME_TIME_FIELDS,
    PACKET_TIME_FIELDS,
    PROBE_WHITELIST,
    DecodedImage,
    ImageHeader,
    ProbedAudio,
    ProbedMedia,
    RejectionCode,
    StoredObject,
    UploadRejected,
    check_reaches_end,
    classify_probe_failure,
    error_lines,
    summarize,
    tail_reach_seconds,
    tail_start_seconds,
)

CHUNK_BYTES = 1024 * 1024
PROBE_TIMEOUT_SECONDS = 30
DECODE_TIMEOUT_SECONDS = 120

# --------------------------------------------------------------------------------------------------------------
# S3: read the object's size first, then copy exactly that object to local disk
# --------------------------------------------------------------------------------------------------------------


class S3Source:
    """The `SourceStore` port on the uploads bucket."""

    def __init__(self, s3_client: Any) -> None:
        self._s3 = s3_client

    def head(self, bucket: str, key: str, *, etag: str | None) -> StoredObject:
        """Size and ETag of the upload. With `etag` (from the notification), only that version of the object.

        A missing object, or one replaced since the notification, rejects with UPLOAD_MISSING: a client that
        re-posts the upload form gets its first upload rejected rather than a different file validated.
        """
        with _verdicts_on_the_upload():
            head = self._s3.head_object(Bucket=bucket, Key=key, **_if_match(etag))
        return StoredObject(size=int(head["ContentLength"]), etag=str(head["ETag"]))

    def download(self, bucket: str, key: str, stored: StoredObject, destination: Path, *, max_bytes: int) -> int:
        """Stream the object (the same version HEAD saw) to `destination`; never writes more than `max_bytes`."""
        with _verdicts_on_the_upload():
            response = self._s3.get_object(Bucket=bucket, Key=key, IfMatch=stored.etag)
        written = 0
        with destination.open("wb") as out:
            for chunk in response["Body"].iter_chunks(CHUNK_BYTES):
                written += len(chunk)
                if written > max_bytes:
                    raise UploadRejected(
                        RejectionCode.UPLOAD_TOO_LARGE, f"the uploaded file is over the limit of {max_bytes} bytes"
                    )
                out.write(chunk)
        return written


def _if_match(etag: str | None) -> dict[str, str]:
    if not etag:
        return {}
    return {"IfMatch": etag if etag.startswith('"') else f'"{etag}"'}


@contextmanager
def _verdicts_on_the_upload() -> Iterator[None]:
    """404 and 412 are verdicts on the upload (UPLOAD_MISSING); any other error propagates, for a retry."""
    try:
        yield
    except ClientError as err:
        rejection = _as_rejection(err)
        if rejection is None:
            raise
        raise rejection from err


def _as_rejection(err: ClientError) -> UploadRejected | None:
    status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = err.response.get("Error", {}).get("Code")
    if status == 404 or code in ("404", "NoSuchKey", "NotFound"):
        return UploadRejected(RejectionCode.UPLOAD_MISSING, "the upload is no longer there; upload the file again")
    if status == 412 or code in ("412", "PreconditionFailed"):
        return UploadRejected(
            RejectionCode.UPLOAD_MISSING, "the upload was replaced while it was being checked; create a new upload"
        )
    return None


# --------------------------------------------------------------------------------------------------------------
# Pillow on the local copy
# --------------------------------------------------------------------------------------------------------------

SIGNATURE_BYTES = 64
"""Enough of the file's start for every signature (an AVIF's `ftyp` box lists its brands there)."""
AVIF_BRANDS = frozenset({b"avif", b"avis"})
AVIF_MAJOR_BRANDS = AVIF_BRANDS | {b"mif1", b"msf1"}
"""The major brands Pillow's AVIF plugin opens (`ftyp` box: size, `ftyp`, major brand, version, compatible brands)."""
HEIF_MAJOR_BRANDS = AVIF_MAJOR_BRANDS | {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
"""HEIF files: HEIC photos (what phones take) and AVIF alike."""
UNSUPPORTED_HEIF = "HEIF"


def image_signature(head: bytes) -> str | None:
    """The image format (Pillow's name) whose signature `head` starts with, or None.

    The signatures Pillow's plugins accept, stricter only for AVIF: a HEIF file of the generic `mif1`/`msf1` major
    brand is an AVIF only when `avif` or `avis` is among its compatible brands. Any other HEIF file (a HEIC photo) is
    `HEIF`, which is not an accepted format; said here, because ffprobe would take it for a damaged MP4.
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_MAJOR_BRANDS:
        box_end = min(struct.unpack(">I", head[:4])[0], len(head))
        brands = {head[8:12]} | {head[offset : offset + 4] for offset in range(16, box_end - 3, 4)}
        return "AVIF" if head[8:12] in AVIF_MAJOR_BRANDS and brands & AVIF_BRANDS else UNSUPPORTED_HEIF
    return None


MULTI_PICTURE_JPEG = "MPO"


class PillowImages:
    """The `ImageInspector` port on Pillow."""

    def signature(self, path: Path) -> str | None:
        with path.open("rb") as file:
            return image_signature(file.read(SIGNATURE_BYTES))

    def read_header(self, path: Path) -> ImageHeader:
        try:
            with _pillow_rules(max_pixels=None), Image.open(path, formats=ACCEPTED_IMAGE_FORMATS) as image:
                # A JPEG with a Multi-Picture Format index (phones append previews and depth maps) opens as Pillow's
                # MPO: it is a JPEG still, whose first picture is the photo.
                multi_picture = image.format == MULTI_PICTURE_JPEG
                return ImageHeader(
                    format="JPEG" if multi_picture else str(image.format),
                    width=image.width,
                    height=image.height,
                    mode=image.mode,
                    frames=1 if multi_picture else int(getattr(image, "n_frames", 1)),
                    orientation=_header_orientation(image.info.get("exif")),
                )
        except Exception as err:  # whatever Pillow raises on a broken header is a verdict on the file
            raise UploadRejected(
                RejectionCode.CORRUPT_MEDIA,
                f"the file looks like an image ({self.signature(path)}) but its header cannot be read: it is truncated "
                "or damaged",
                detail=_describe(err),
            ) from err

    def decode(self, path: Path, header: ImageHeader, *, max_pixels: int) -> DecodedImage:
        """Every frame, decoded; the EXIF orientation as the full read finds it (PNG may keep EXIF after the pixels)."""
        kind = header.format
        try:
            with _pillow_rules(max_pixels=max_pixels), Image.open(path, formats=(kind,)) as image:
                image.load()
                orientation = _orientation(image)
                for frame in range(1, header.frames):
                    image.seek(frame)
                    image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise _too_many_pixels(header, max_pixels, err) from err
        except Exception as err:  # whatever a decoder raises on a damaged file is a verdict on the file
            raise UploadRejected(
                RejectionCode.CORRUPT_MEDIA,
                f"the {kind} image is truncated or damaged: it does not decode whole",
                detail=_describe(err),
            ) from err
        return DecodedImage(orientation=orientation)


@contextmanager
def _pillow_rules(*, max_pixels: int | None) -> Iterator[None]:
    """Pillow's decompression-bomb guard at `max_pixels` (None: off, for a header alone), its warning (past the limit,
    short of twice it) raised as an error, and truncated files refused; the previous settings are restored after."""
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_pixels, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _header_orientation(exif: Any) -> int:
    """The orientation in EXIF bytes the header carried (JPEG's APP1, WebP's and AVIF's EXIF, PNG's eXIf when it
    comes before the pixels); 1 when there is none or it cannot be read."""
    if not isinstance(exif, bytes) or not exif:
        return 1
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return _valid_orientation(parsed.get(ExifTags.Base.Orientation))
    except Exception:  # unreadable EXIF leaves the picture as stored
        return 1


def _orientation(image: Image.Image) -> int:
    """The orientation as `ImageOps.exif_transpose` (which the images function uses) reads it; 1 when unreadable."""
    try:
        return _valid_orientation(image.getexif().get(ExifTags.Base.Orientation))
    except Exception:  # unreadable EXIF leaves the picture as stored
        return 1


def _valid_orientation(value: Any) -> int:
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _too_many_pixels(header: ImageHeader, max_pixels: int, err: Exception) -> UploadRejected:
    return UploadRejected(
        RejectionCode.RESOLUTION_TOO_HIGH,
        f"the image decodes to more than {max_pixels} pixels, the limit",
        detail=f"{header.format} {header.width}x{header.height}: {_describe(err)}",
    )


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"[:500]


# --------------------------------------------------------------------------------------------------------------
# ffprobe on the local copy
# --------------------------------------------------------------------------------------------------------------


class Ffprobe:
    """The `MediaInspector` port on the bundled ffprobe."""

    def probe(self, path: Path, *, size_bytes: int) -> ProbedMedia | ProbedAudio:
        return probe_media(path, size_bytes=size_bytes)

    def check_decodes_to_end(self, path: Path, media: ProbedMedia) -> None:
        check_decodes_to_end(path, media)


def ffprobe_args(path: Path) -> list[str]:
    """The probe command: local file only, the video and audio demuxers only, debug log (for the detected demuxer),
    JSON out."""
    return [
        ffprobe_path(),
        "-hide_banner",
        "-loglevel",
        "level+debug",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        PROBE_WHITELIST,
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        f"file:{path}",
    ]


def read_probe_json(path: Path, *, timeout: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """ffprobe's JSON for the file, or the rejection its failure means."""
    try:
        result = _run(ffprobe_args(path), timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the file could not be read as audio or video within {timeout:g} s",
            detail=f"ffprobe timed out after {timeout} s",
        ) from err
    if result.returncode != 0:
        rejection = classify_probe_failure(result.stderr)
        if result.returncode < 0:  # a crash is worth an operator's look, not only a rejection
            rejection.detail = f"ffprobe killed by signal {-result.returncode}\n{rejection.detail}"
        raise rejection
    try:
        parsed = json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            "the file could not be read as audio or video",
            detail="ffprobe printed no JSON",
        ) from err
    return parsed if isinstance(parsed, dict) else {}


def probe_media(path: Path, *, size_bytes: int) -> ProbedMedia | ProbedAudio:
    """Probe and summarize; the decode check is separate so callers can apply cheaper limits first."""
    return summarize(read_probe_json(path), size_bytes=size_bytes)


def decode_tail_args(path: Path, *, stream_index: int, from_seconds: float) -> list[str]:
    """Read the video stream from the keyframe before `from_seconds` to the end, decoding its keyframes only; each
    packet's and each decoded frame's timestamps as JSON (`tail_reach_seconds`)."""
    return [
        ffprobe_path(),
        "-hide_banner",
        # Warnings too: ffprobe reports a decoder that fails to open (e.g. it cannot start its threads) at warning
        # level, and exits 1 with nothing else said.
        "-loglevel",
        "level+warning",
        # A bounded thread count keeps a sandbox with a low task limit from failing the decoder's open.
        "-threads",
        "2",
        # Keyframes only: the check is on every job's critical path. Decoding every frame of the tail cost 0.4-0.9 s
        # (1.5 CPU s) on a 1080p source with 8 s GOPs; its packets and one keyframe cost 0.05 s. The packets show
        # where the data stops, the keyframe that the decoder accepts the stream.
        "-skip_frame",
        "nokey",
        "-protocol_whitelist",
        "file",
        "-format_whitelist",
        DEMUXER_WHITELIST,
        "-select_streams",
        str(stream_index),
        "-read_intervals",
        f"{from_seconds:.3f}%",
        "-show_entries",
        f"packet={','.join(PACKET_TIME_FIELDS)}:frame={','.join(FRAME_TIME_FIELDS)}",
        # JSON, not CSV: a frame that carries side data (x264's SEI on the first one, a display matrix) gets extra
        # separators and blank lines in CSV, and which frames carry it differs between ffmpeg builds.
        "-print_format",
        "json",
        f"file:{path}",
    ]


def check_decodes_to_end(path: Path, media: ProbedMedia, *, timeout: float = DECODE_TIMEOUT_SECONDS) -> None:
    """Read the end of the video stream (from `tail_start_seconds`), decoding its keyframes, and hold how far it
    reaches to `check_reaches_end`."""
    args = decode_tail_args(path, stream_index=media.video_stream_index, from_seconds=tail_start_seconds(media))
    try:
        result = _run(args, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            f"the video could not be decoded within {timeout:g} s",
            probe=media.probe,
            detail=f"tail decode timed out after {timeout} s",
        ) from err
    reached = tail_reach_seconds(result.stdout)
    if result.returncode != 0 or reached is None:
        raise UploadRejected(
            RejectionCode.CORRUPT_MEDIA,
            "the video's frames could not be decoded",
            probe=media.probe,
            detail=tool_failure_detail(result),
        )
    check_reaches_end(media, reached, detail=error_lines(result.stderr))


def tool_failure_detail(result: subprocess.CompletedProcess[str]) -> str:
    """For the logs: how the tool ended (an exit code, or the signal that killed it) and its last error lines."""
    if result.returncode < 0:
        ended = f"{Path(result.args[0]).name} killed by signal {-result.returncode}"
    else:
        ended = f"{Path(result.args[0]).name} exited {result.returncode}"
    errors = error_lines(result.stderr)
    if errors:
        return f"{ended}: {errors}"
    return f"{ended}, no error output; stdout began {result.stdout[:200]!r}"


def _run(args: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a media tool on untrusted input: no stdin, no inherited environment, a time limit; never raises on exit."""
    return subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env=tool_env(),
        check=False,
    )
