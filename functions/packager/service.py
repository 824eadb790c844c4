"""Packaging a video job for playback: the steps between "Packaging Requested" and "Packaging Completed/Failed".

One message asks for one package (functions/contracts/playback.py has the layout). From the job's finished MP4
renditions, downloaded from the outputs bucket (never the upload), the packager makes:
- An HLS ladder: each rendition remuxed without re-encoding (`-c copy`) into CMAF fMP4, an init segment and 2-second
  media segments (the renditions' closed GOPs, so every variant switches at the same instants), and a master playlist
  written here as text, each variant's attributes measured from what was packaged (below).
- A poster: the first frame that is not black (nor a flat fill) from 10% of the duration on, as a JPEG at the largest
  rendition's size. The frames are judged on the smallest rendition, which shows the same picture at the same instants
  for a fraction of the decoding; only the chosen instant is decoded from the largest. When every frame from there to
  the end is blank, the frame at 10% it is.
- Thumbnails: a sprite sheet of one tile every `intervalSeconds`, decoded from the smallest rendition's keyframes only
  (`-skip_frame nokey`: every tile time is a GOP boundary), and a WebVTT index of cues `sprite.jpg#xywh=x,y,w,h`.

What the master playlist declares, per variant, in ladder order:
- BANDWIDTH: the peak segment bit rate: the highest of any one segment's bytes over its EXTINF duration, the init
  segment's bytes counted with the first segment, rounded up, never below AVERAGE-BANDWIDTH. A last segment shorter
  than half a segment (the video's tail after its last 2-second boundary, which starts with a whole keyframe) is
  first appended to the one before it: fMP4 segments are self-contained fragments, so the two play as one, and a
  few frames cannot then claim a bit rate many times the variant's.
- AVERAGE-BANDWIDTH: every byte of the variant (init and segments) over its duration, rounded up.
- RESOLUTION and FRAME-RATE (3 decimals) from ffprobe of the rendition; CODECS as RFC 6381 strings: `avc1.PPCCLL`
  from the avcC record in the packaged init segment (profile, constraint flags and level exactly as encoded; from
  ffprobe's profile name and level when there is no record), plus `mp4a.40.2` (AAC-LC) when the rendition has audio.

Failure policy:
- The request names a rendition outside this job's outputs in the outputs bucket, or a name that cannot be a folder:
  `Packaging Failed` PACKAGING_FAILED, nothing read.
- A rendition is missing, ffmpeg refuses one, or the package does not read back (a playlist without segments, a
  poster or sprite of the wrong size): `Packaging Failed` PACKAGING_FAILED, and return normally: a retry would fail
  the same way. The message says what went wrong in plain words, never a bucket, key or ARN.
- Anything transient (S3 or EventBridge errors, ffmpeg killed at the deadline or by a signal, too little time left
  to start a step): raise, so SQS delivers the message again and, after the last try, parks it in the DLQ.

Work no longer wanted (the job was canceled, or runs another attempt: `functions/common/job_gate.py`) stops where
the gate is asked: before a rendition is read, every few seconds between the ffmpeg steps, before the package is
stored, and before a failure is announced. WorkWithdrawn is raised; the handler drops the message. Both reports and
every stored file name the request's `attempt`.

A redelivered message packages again and overwrites the same keys; the tracker ignores a second report. Each step
stores its files as soon as it is done, while the others still run (the packager is on the job's critical path): a
variant's init and segments, then its playlist; the poster; the sprite, then its VTT. The master playlist is stored
last, once every step is stored, so nothing is ever stored before what it names and no client finds the package
before it is whole. A package that fails after some steps were stored leaves their files under the job's playback
folder: the job's record never names them, a retry overwrites them, deleting the job removes them.
"""

from __future__ import annotations

import math
import posixpath
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import ffmpeg

from functions.common.client_messages import client_safe
from functions.common.ffmpeg_runner import FfmpegFailed
from functions.common.job_gate import AttemptWatch, JobGate
from functions.common.observability import logger
from functions.common.unit_worker import (
    ERROR_MESSAGE_CHARS,
    EventSink,
    Outcome,
    OutputUnreadable,
    time_budget,
    work_dir,
)
from functions.contracts.events import DetailType, PackagingCompleted, PackagingFailed, PackagingRequested
from functions.contracts.jobs import ErrorInfo
from functions.contracts.playback import (
    HLS_FOLDER,
    INIT_SEGMENT,
    MASTER_PLAYLIST,
    POSTER,
    SEGMENT_SECONDS,
    SEGMENT_TEMPLATE,
    SPRITE,
    THUMBNAILS_VTT,
    VARIANT_PLAYLIST,
    HlsVariant,
    PackagingSource,
    PlaybackPackage,
    Poster,
    Thumbnails,
    content_type,
    job_prefix,
    playback_key,
    variant_folder,
    variant_playlist,
)
from functions.packager.settings import PackagerSettings

FAILED = "PACKAGING_FAILED"
WORK_DIR_PREFIX = "packager-"
# Downloads and ffmpeg steps at once (two renditions, or the HLS remuxes beside the poster and the sprite).
STEPS_AT_ONCE = 4
MP4_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2"
"""The only demuxer a rendition is opened with: every rendition is an MP4."""
QUIET = ("-nostdin", "-loglevel", "error", "-nostats")
HLS_VERSION = 7
"""The master playlist's EXT-X-VERSION: the one ffmpeg declares in the fMP4 media playlists (whose EXT-X-MAP needs at
least 6), so the whole package reads as one version."""
RENDITION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
"""A rendition's name becomes a folder (`hls/{rendition}/`): letters, digits, `-` and `_` only."""
PLAYLIST_URI = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
"""A file a media playlist names: in the playlist's own folder, nowhere else."""

POSTER_AT_PERCENT = 10
SCAN_FRAMES_PER_SECOND = 2
SCAN_FRAME_MS = 1000 // SCAN_FRAMES_PER_SECOND
SCAN_SIDE = 32
"""Frames are judged at 32x32 grey: plenty for "is it black", 1 kB a frame whatever the rendition's size."""
FIRST_SCAN_WINDOW_MS = 2000
"""The first window decoded from 10% on; each later one twice as long, so a long dark opening costs few runs."""
BLACK_MEAN_LUMA = 32.0
"""Mean grey level (0-255, full range) under which a frame counts as black."""
FLAT_LUMA_SPREAD = 3.0
"""Standard deviation of the grey levels under which a frame is a flat fill (a slate, a fade), not a picture."""
POSTER_QUALITY = 3
"""ffmpeg's `-q:v` for the poster JPEG (2 best to 31 worst)."""

SPRITE_COLUMNS = 10
MAX_SPRITE_SIDE = 16384
"""Largest sprite height (and width) in pixels: what every browser decodes, and a bounded image in memory."""
SPRITE_QUALITY = 5


# --- domain errors and what the ports exchange --------------------------------------------------------------------


class RenditionMissing(RuntimeError):
    """A rendition the request names is not in the outputs bucket (or the role may not read it)."""


class RenditionRefused(ValueError):
    """A rendition cannot be packaged as it is: ffprobe or ffmpeg refuses it, or it is not H.264 (with AAC)."""


@dataclass(frozen=True)
class RenditionMedia:
    """A finished rendition as ffprobe describes it."""

    width: int
    height: int
    durationMs: int
    """The video stream's duration."""
    frameRate: float | None
    videoCodec: str | None
    profile: str | None
    """H.264 profile name, e.g. `High`, `Constrained Baseline`."""
    level: int | None
    """H.264 level x 10, e.g. 31."""
    audioCodec: str | None = None
    audioProfile: str | None = None
    """AAC profile name, e.g. `LC`."""


@dataclass(frozen=True)
class PackagedFile:
    """One file of the package and where it goes."""

    path: Path
    key: str
    contentType: str


@dataclass(frozen=True)
class PackagingResult:
    """How one request ended; the handler turns it into metrics."""

    outcome: Outcome
    package: PlaybackPackage | None = None
    error_code: str | None = None
    seconds: float = 0.0
    bytes: int = 0


# --- ports --------------------------------------------------------------------------------------------------------


class PlaybackStore(Protocol):
    """The outputs bucket, as the packager uses it."""

    def download_rendition(self, source: PackagingSource, destination: Path) -> None:
        """Copy a rendition to `destination`; RenditionMissing when it is not there."""

    def upload_files(self, files: Sequence[PackagedFile], job_id: str, *, attempt: int) -> int:
        """Upload every file (concurrently, in any order) with metadata naming the job and the attempt; their total size
        in bytes."""


class PackagingTools(Protocol):
    """ffmpeg and ffprobe."""

    def ffmpeg_binary(self) -> str: ...

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> None:
        """Run the command; FfmpegFailed when ffmpeg refuses the input, FfmpegTimedOut/FfmpegKilled when stopped."""

    def stream_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
        """Run the command, handing its stdout to `on_chunk` as it is written."""

    def read_rendition(self, path: Path) -> RenditionMedia:
        """The rendition as ffprobe sees it; RenditionRefused when it is not a video."""

    def read_image_size(self, path: Path) -> tuple[int, int]:
        """Width and height of an image ffmpeg wrote; OutputUnreadable when it does not read back."""


# --- the request --------------------------------------------------------------------------------------------------


def request_problem(request: PackagingRequested, outputs_bucket: str) -> str | None:
    """Why the request cannot be packaged as it stands; None when it can. Says which rendition, never where it is."""
    seen: set[str] = set()
    for source in request.renditions:
        name = source.rendition
        if not RENDITION_NAME.match(name):
            return "a rendition's name cannot name a playlist folder"
        if name in seen:
            return f"rendition {name} is named twice"
        seen.add(name)
        if source.bucket != outputs_bucket:
            return f"rendition {name} is not in the outputs bucket"
        if not source.key.startswith(job_prefix(request.job_id)) or source.key.endswith("/"):
            return f"rendition {name} is not among the job's outputs"
    return None


def rendition_problem(name: str, media: RenditionMedia) -> str | None:
    """Why a downloaded rendition cannot be packaged; None when it can."""
    if media.videoCodec is None:
        return f"rendition {name} has no video"
    if media.videoCodec != "h264":
        return f"rendition {name} is {media.videoCodec}, not H.264"
    if media.width <= 0 or media.height <= 0:
        return f"rendition {name} has no picture size"
    if media.durationMs <= 0:
        return f"rendition {name} has no duration"
    if not media.frameRate or media.frameRate <= 0:
        return f"rendition {name} has no frame rate"
    if media.audioCodec is not None and media.audioCodec != "aac":
        return f"rendition {name} has {media.audioCodec} audio, not AAC"
    return None


# --- ffmpeg commands ----------------------------------------------------------------------------------------------


def _open(source: Path, **options: object) -> ffmpeg.nodes.FilterableStream:
    """An input opened as a local MP4 only (`-protocol_whitelist file`, the MP4 demuxer): a crafted file cannot make
    ffmpeg read other files or the network."""
    return ffmpeg.input(str(source), protocol_whitelist="file", format_whitelist=MP4_DEMUXERS, **options)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


def hls_args(ffmpeg_binary: str, source: Path, folder: Path, *, has_audio: bool) -> list[str]:
    """Remux a rendition into one CMAF HLS variant in `folder`: `index.m3u8`, `init.mp4`, `seg_00000.m4s`..."""
    media = _open(source)
    streams = [media["v:0"], media["a:0"]] if has_audio else [media["v:0"]]
    options = {
        "c": "copy",
        "format": "hls",
        "hls_time": SEGMENT_SECONDS,
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        "hls_fmp4_init_filename": INIT_SEGMENT,
        "hls_segment_filename": str(folder / SEGMENT_TEMPLATE),
        "hls_flags": "independent_segments",
        "map_metadata": -1,
    }
    output = ffmpeg.output(*streams, str(folder / VARIANT_PLAYLIST), **options)
    return output.global_args(*QUIET).overwrite_output().compile(cmd=ffmpeg_binary)


def luma_scan_args(ffmpeg_binary: str, source: Path, start_ms: int, length_ms: int) -> list[str]:
    """Two frames a second of [start, start + length), as SCAN_SIDE x SCAN_SIDE grey bytes on stdout."""
    video = _open(source, ss=_seconds(start_ms), t=_seconds(length_ms))["v:0"]
    frames = (
        video.filter("fps", SCAN_FRAMES_PER_SECOND)
        .filter("scale", SCAN_SIDE, SCAN_SIDE, flags="area")
        .filter("format", "gray")
    )
    return ffmpeg.output(frames, "pipe:1", format="rawvideo").global_args(*QUIET).compile(cmd=ffmpeg_binary)


def poster_args(ffmpeg_binary: str, source: Path, at_ms: int, output: Path) -> list[str]:
    """The frame at `at_ms`, at the rendition's size, as a JPEG."""
    return _jpeg_args(ffmpeg_binary, _open(source, ss=_seconds(at_ms))["v:0"], output, quality=POSTER_QUALITY)


def sprite_args(ffmpeg_binary: str, source: Path, layout: SpriteLayout, output: Path) -> list[str]:
    """The sprite: keyframes only, one every `intervalSeconds` (`eof_action=pass` keeps the last one), scaled to a
    tile, laid out row by row in one JPEG."""
    keyframes = _open(source, skip_frame="nokey")["v:0"]
    tiles = (
        keyframes.filter("fps", f"1/{layout.intervalSeconds}", eof_action="pass")
        .filter("scale", layout.tileWidth, layout.tileHeight)
        .filter("setsar", 1)
        .filter("tile", f"{layout.columns}x{layout.rows}")
    )
    return _jpeg_args(ffmpeg_binary, tiles, output, quality=SPRITE_QUALITY)


def _jpeg_args(ffmpeg_binary: str, video: ffmpeg.nodes.FilterableStream, output: Path, *, quality: int) -> list[str]:
    """The first frame of `video` as one JPEG file (`-update 1`: a single image, not a numbered sequence)."""
    options = {"frames:v": 1, "q:v": quality, "update": 1, "format": "image2"}
    output_stream = ffmpeg.output(video, str(output), **options)
    return output_stream.global_args(*QUIET).overwrite_output().compile(cmd=ffmpeg_binary)


# --- media playlists and what they measure ------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaylistSegment:
    uri: str
    duration: Fraction
    """EXTINF, exactly as written."""


@dataclass(frozen=True)
class MediaPlaylist:
    targetDuration: int | None
    initUri: str | None
    segments: list[PlaylistSegment]


_MAP_URI = re.compile(r'URI="([^"]*)"')


def _file_name(uri: str) -> str:
    if not PLAYLIST_URI.match(uri):
        raise OutputUnreadable(f"the playlist names a file outside its folder: {uri!r}")
    return uri


def parse_media_playlist(text: str) -> MediaPlaylist:
    """A media playlist's target duration, init segment and segments (URI and EXTINF duration); OutputUnreadable
    when it is not one, or names files outside its own folder."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise OutputUnreadable("the media playlist does not start with #EXTM3U")
    target: int | None = None
    init: str | None = None
    segments: list[PlaylistSegment] = []
    duration: Fraction | None = None
    for line in lines[1:]:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            value = line.partition(":")[2]
            if not value.isdigit():
                raise OutputUnreadable(f"the target duration is not a number: {value!r}")
            target = int(value)
        elif line.startswith("#EXT-X-MAP:"):
            found = _MAP_URI.search(line)
            if found is None:
                raise OutputUnreadable("the media playlist's EXT-X-MAP names no URI")
            init = _file_name(found.group(1))
        elif line.startswith("#EXTINF:"):
            value = line.partition(":")[2].partition(",")[0].strip()
            try:
                duration = Fraction(value)
            except ValueError as err:
                raise OutputUnreadable(f"a segment duration is not a number: {value!r}") from err
            if duration < 0:
                raise OutputUnreadable(f"a segment duration is negative: {value!r}")
        elif line.startswith("#"):
            continue
        else:
            if duration is None:
                raise OutputUnreadable(f"segment {line!r} has no EXTINF duration")
            segments.append(PlaylistSegment(_file_name(line), duration))
            duration = None
    if duration is not None:
        raise OutputUnreadable("the media playlist ends with a duration but no segment")
    if not segments:
        raise OutputUnreadable("the media playlist has no segments")
    return MediaPlaylist(targetDuration=target, initUri=init, segments=segments)


@dataclass(frozen=True)
class Bandwidth:
    peak: int
    """BANDWIDTH, bits/s."""
    average: int
    """AVERAGE-BANDWIDTH, bits/s."""


def absorb_short_last_segment(playlist: MediaPlaylist, target_seconds: int) -> MediaPlaylist | None:
    """The playlist with a last segment shorter than half of `target_seconds` merged into the one before it (EXTINF
    summed, the target duration raised to cover it); None when there is nothing to merge."""
    segments = playlist.segments
    if len(segments) < 2 or segments[-1].duration * 2 >= target_seconds:
        return None
    merged = PlaylistSegment(segments[-2].uri, segments[-2].duration + segments[-1].duration)
    kept = [*segments[:-2], merged]
    target = max(playlist.targetDuration or 0, *(_nearest_second(segment.duration) for segment in kept))
    return MediaPlaylist(targetDuration=target, initUri=playlist.initUri, segments=kept)


def _nearest_second(duration: Fraction) -> int:
    """RFC 8216 4.3.3.1: every EXTINF, rounded to the nearest integer, is at most the target duration."""
    return math.floor(duration + Fraction(1, 2))


def media_playlist_text(playlist: MediaPlaylist) -> str:
    """A VOD CMAF media playlist: what ffmpeg's HLS muxer writes, for a playlist rewritten here."""
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        f"#EXT-X-TARGETDURATION:{playlist.targetDuration}",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        f'#EXT-X-MAP:URI="{playlist.initUri}"',
    ]
    for segment in playlist.segments:
        lines += [f"#EXTINF:{float(segment.duration):.6f},", segment.uri]
    return "\n".join([*lines, "#EXT-X-ENDLIST", ""])


def variant_bandwidth(init_bytes: int, segment_bytes: Sequence[int], durations: Sequence[Fraction]) -> Bandwidth:
    """BANDWIDTH and AVERAGE-BANDWIDTH of a variant, rounded up: the init segment is fetched with the first segment,
    so its bytes count with it."""
    if not segment_bytes or len(segment_bytes) != len(durations):
        raise OutputUnreadable("the variant's segments and durations do not match")
    sizes = list(segment_bytes)
    sizes[0] += init_bytes
    total_seconds = sum(durations, Fraction(0))
    if total_seconds <= 0:
        raise OutputUnreadable("the variant lasts no time")
    average = math.ceil(Fraction(sum(sizes) * 8) / total_seconds)
    rates = [Fraction(size * 8) / seconds for size, seconds in zip(sizes, durations, strict=True) if seconds > 0]
    return Bandwidth(peak=max(math.ceil(max(rates, default=0)), average), average=average)


# --- codecs -------------------------------------------------------------------------------------------------------

H264_PROFILES: dict[str, tuple[int, int]] = {
    "Baseline": (0x42, 0x00),
    "Constrained Baseline": (0x42, 0xE0),
    "Main": (0x4D, 0x40),
    "Extended": (0x58, 0x00),
    "High": (0x64, 0x00),
}
"""ffprobe's H.264 profile name -> (profile_idc, constraint flags) as HLS authors usually write them; used only when
the init segment carries no avcC record."""
AAC_OBJECT_TYPES: dict[str | None, int] = {None: 2, "LC": 2, "HE-AAC": 5, "HE-AACv2": 29}
"""ffprobe's AAC profile name -> MPEG-4 audio object type (RFC 6381 `mp4a.40.<type>`)."""


def find_avc_configuration(data: bytes) -> bytes | None:
    """The AVCDecoderConfigurationRecord (the avcC box's payload) in an MP4 init segment, or None when there is none."""
    start = data.find(b"avcC", 4)  # a box's type follows its 4-byte size
    while start != -1:
        size = int.from_bytes(data[start - 4 : start], "big")
        end = start - 4 + size
        if size >= 12 and end <= len(data) and data[start + 4] == 1:  # configurationVersion is always 1
            return data[start + 4 : end]
        start = data.find(b"avcC", start + 1)
    return None


def avc_codec_from_record(record: bytes) -> str:
    """`avc1.PPCCLL` from an AVCDecoderConfigurationRecord: profile_idc, constraint flags, level_idc, in hex."""
    if len(record) < 4:
        raise OutputUnreadable("the avcC record is truncated")
    return f"avc1.{record[1]:02x}{record[2]:02x}{record[3]:02x}"


def avc_codec_from_probe(profile: str | None, level: int | None) -> str:
    """`avc1.PPCCLL` from ffprobe's profile name and level (31 -> 0x1f)."""
    if profile not in H264_PROFILES or level is None or not 0 < level < 256:
        raise RenditionRefused(f"H.264 profile {profile} level {level} has no codec string")
    profile_idc, constraints = H264_PROFILES[profile]
    return f"avc1.{profile_idc:02x}{constraints:02x}{level:02x}"


def aac_codec(profile: str | None) -> str:
    """`mp4a.40.2` for AAC-LC (and HE-AAC's 5, HE-AACv2's 29)."""
    if profile not in AAC_OBJECT_TYPES:
        raise RenditionRefused(f"AAC profile {profile} has no codec string")
    return f"mp4a.40.{AAC_OBJECT_TYPES[profile]}"


def codecs_attribute(media: RenditionMedia, avc_record: bytes | None) -> str:
    """CODECS: the video's RFC 6381 string, then the audio's when the rendition has audio."""
    video = avc_codec_from_record(avc_record) if avc_record else avc_codec_from_probe(media.profile, media.level)
    return f"{video},{aac_codec(media.audioProfile)}" if media.audioCodec else video


# --- the master playlist ------------------------------------------------------------------------------------------


def master_playlist(variants: Sequence[HlsVariant]) -> str:
    """The master playlist's text: one EXT-X-STREAM-INF per variant, in ladder order, each naming its media playlist
    relative to the master."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for variant in variants:
        attributes = (
            f"BANDWIDTH={variant.bandwidth}",
            f"AVERAGE-BANDWIDTH={variant.averageBandwidth}",
            f"RESOLUTION={variant.width}x{variant.height}",
            f'CODECS="{variant.codecs}"',
            f"FRAME-RATE={variant.frameRate:.3f}",
        )
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(posixpath.relpath(variant_playlist(variant.rendition), HLS_FOLDER))
    return "\n".join(lines) + "\n"


# --- the poster ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FrameLuma:
    mean: float
    """Mean grey level, 0-255."""
    spread: float
    """Standard deviation of the grey levels."""


def frame_luma(frame: bytes) -> FrameLuma:
    count = len(frame)
    if not count:
        return FrameLuma(0.0, 0.0)
    total = sum(frame)
    mean = total / count
    variance = max(0.0, sum(value * value for value in frame) / count - mean * mean)
    return FrameLuma(mean, math.sqrt(variance))


def is_blank(luma: FrameLuma) -> bool:
    """Black, or a flat fill: not a picture to show before playback."""
    return luma.mean < BLACK_MEAN_LUMA or luma.spread < FLAT_LUMA_SPREAD


def first_visible_frame(lumas: Sequence[FrameLuma]) -> int | None:
    """The index of the first frame that is not blank; None when all are."""
    return next((index for index, luma in enumerate(lumas) if not is_blank(luma)), None)


def poster_start_ms(duration_ms: int) -> int:
    return duration_ms * POSTER_AT_PERCENT // 100


def poster_windows(duration_ms: int) -> list[tuple[int, int]]:
    """(start, length) in ms of the stretches scanned for the poster, in order: from 10% of the duration to its end,
    the first FIRST_SCAN_WINDOW_MS long and each next one twice as long as the one before."""
    windows = []
    start, length = poster_start_ms(duration_ms), FIRST_SCAN_WINDOW_MS
    while start < duration_ms:
        length = min(length, duration_ms - start)
        windows.append((start, length))
        start += length
        length *= 2
    return windows


def poster_frame_ms(window_start_ms: int, frame_index: int) -> int:
    """Where the `frame_index`th frame of a scan window is: they are SCAN_FRAME_MS apart from its start."""
    return window_start_ms + frame_index * SCAN_FRAME_MS


class LumaScan:
    """The grey statistics of each SCAN_SIDE x SCAN_SIDE frame ffmpeg writes, fed as it writes them."""

    frame_bytes = SCAN_SIDE * SCAN_SIDE

    def __init__(self) -> None:
        self.frames: list[FrameLuma] = []
        self._pending = b""

    def feed(self, data: bytes) -> None:
        data = self._pending + data
        whole = len(data) - len(data) % self.frame_bytes
        for start in range(0, whole, self.frame_bytes):
            self.frames.append(frame_luma(data[start : start + self.frame_bytes]))
        self._pending = data[whole:]


# --- the thumbnails -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpriteLayout:
    """A sprite of `tiles` tiles of `tileWidth` x `tileHeight`, `columns` across and `rows` down, one per
    `intervalSeconds` of video."""

    intervalSeconds: int
    tiles: int
    columns: int
    rows: int
    tileWidth: int
    tileHeight: int

    @property
    def width(self) -> int:
        return self.columns * self.tileWidth

    @property
    def height(self) -> int:
        return self.rows * self.tileHeight

    def box(self, index: int) -> tuple[int, int, int, int]:
        """x, y, width, height of tile `index` (row by row) in the sprite."""
        column, row = index % self.columns, index // self.columns
        return column * self.tileWidth, row * self.tileHeight, self.tileWidth, self.tileHeight


def tile_height(tile_width: int, width: int, height: int) -> int:
    """A tile's height at the video's aspect ratio, rounded to an even number of pixels (at least 2)."""
    return max(2, round(tile_width * height / width / 2) * 2)


def _even_ceil(value: int) -> int:
    return -(-value // SEGMENT_SECONDS) * SEGMENT_SECONDS


def tile_count(duration_ms: int, interval_seconds: int, frame_rate: float) -> int:
    """Tiles of a video: one per interval that a frame starts in, i.e. ceil(duration / interval) unless the last
    interval is shorter than a frame (a 29.97 fps video of 180 frames lasts 6.006 s, and no frame starts in
    [6, 6.006), so no keyframe shows it). Half a frame of tolerance absorbs durations rounded to the millisecond."""
    last_frame_start_ms = duration_ms - (500 / frame_rate if frame_rate > 0 else 0)
    return max(1, math.floor(last_frame_start_ms / (interval_seconds * 1000)) + 1)


def plan_sprite(
    duration_ms: int,
    width: int,
    height: int,
    *,
    frame_rate: float,
    interval_seconds: int,
    max_tiles: int,
    tile_width: int,
) -> SpriteLayout:
    """The sprite of a video: one tile every `interval_seconds`, raised to the smallest multiple of the GOP that keeps
    the tiles at most `max_tiles` and the sprite at most MAX_SPRITE_SIDE tall; SPRITE_COLUMNS across (fewer when
    there are fewer tiles). Tile i shows the keyframe at i x interval."""
    tall = tile_height(tile_width, width, height)
    needed_seconds = math.ceil(duration_ms / (1000 * max_tiles))
    interval = max(_even_ceil(interval_seconds), _even_ceil(needed_seconds), SEGMENT_SECONDS)
    while True:
        tiles = tile_count(duration_ms, interval, frame_rate)
        columns = min(SPRITE_COLUMNS, tiles)
        rows = math.ceil(tiles / columns)
        if tiles == 1 or (tiles <= max_tiles and rows * tall <= MAX_SPRITE_SIDE):
            return SpriteLayout(interval, tiles, columns, rows, tile_width, tall)
        interval += SEGMENT_SECONDS


def vtt_timestamp(ms: int) -> str:
    """`HH:MM:SS.mmm`."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def thumbnails_vtt(layout: SpriteLayout, duration_ms: int, sprite: str) -> str:
    """The WebVTT index: cue i covers [i x interval, (i + 1) x interval), the last one up to the end of the video
    (shorter than an interval, or longer by less than a frame: see `tile_count`), and points at tile i of `sprite` (a
    URL relative to the VTT) with a media fragment `#xywh=x,y,w,h`."""
    interval_ms = layout.intervalSeconds * 1000
    lines = ["WEBVTT", ""]
    for index in range(layout.tiles):
        start = index * interval_ms
        end = duration_ms if index == layout.tiles - 1 else min(start + interval_ms, duration_ms)
        x, y, w, h = layout.box(index)
        lines += [f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}", f"{sprite}#xywh={x},{y},{w},{h}", ""]
    return "\n".join(lines)


# --- failure messages ---------------------------------------------------------------------------------------------


def failure_message(what: str, detail: str = "") -> str:
    """`what: detail`, at most ERROR_MESSAGE_CHARS long, keeping `what` and the end of `detail` (where a tool says
    what went wrong)."""
    if not detail:
        return what[:ERROR_MESSAGE_CHARS]
    room = max(0, ERROR_MESSAGE_CHARS - len(what) - 2)
    return f"{what}: {detail[-room:]}" if room else what[:ERROR_MESSAGE_CHARS]


# --- the packager -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rendition:
    """A downloaded rendition."""

    name: str
    path: Path
    media: RenditionMedia

    @property
    def pixels(self) -> tuple[int, int]:
        return self.media.width * self.media.height, self.media.width


@dataclass
class _Build:
    """The package as it is made in the working directory, and the bytes stored so far."""

    folder: Path
    job_id: str
    attempt: int
    watch: AttemptWatch
    """The gate, asked between the steps and before each step's files are stored."""
    stored_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def packaged(self, relative: str) -> PackagedFile:
        key = playback_key(self.job_id, relative)
        return PackagedFile(self.folder / relative, key, content_type(key))


class PlaybackPackager:
    """Packages a job's finished renditions with ffmpeg and announces the package on the bus."""

    def __init__(
        self,
        store: PlaybackStore,
        tools: PackagingTools,
        events: EventSink,
        settings: PackagerSettings,
        *,
        gate: JobGate,
    ) -> None:
        self._store = store
        self._tools = tools
        self._events = events
        self._settings = settings
        self._gate = gate

    def package(self, request: PackagingRequested, remaining_ms: Callable[[], int]) -> PackagingResult:
        """The package made, or failed; raises WorkWithdrawn when the job no longer wants it."""
        logger.info("packaging", extra={"renditions": [source.rendition for source in request.renditions]})
        watch = AttemptWatch(
            self._gate, request.job_id, request.attempt, every_seconds=self._settings.gate_check_seconds
        )
        watch.check()
        problem = request_problem(request, self._settings.outputs_bucket)
        if problem is not None:
            return self._fail(request, problem)
        self._budget(remaining_ms)
        started = time.monotonic()
        with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
            try:
                package, build = self._build(work, request, watch, remaining_ms)
            except RenditionMissing as err:
                return self._fail(request, str(err))
            except RenditionRefused as err:
                return self._fail(request, failure_message(str(err)))
            except OutputUnreadable as err:
                return self._fail(request, failure_message("the package does not read back", str(err)))
            stored_bytes = build.stored_bytes
        seconds = time.monotonic() - started
        self._events.publish(
            DetailType.PACKAGING_COMPLETED,
            PackagingCompleted(
                job_id=request.job_id, owner_id=request.owner_id, package=package, attempt=request.attempt
            ),
        )
        logger.info(
            "packaging completed",
            extra={"key": package.hlsKey, "bytes": stored_bytes, "seconds": round(seconds, 3)},
        )
        return PackagingResult(Outcome.COMPLETED, package=package, seconds=seconds, bytes=stored_bytes)

    def _build(
        self, work: Path, request: PackagingRequested, watch: AttemptWatch, remaining_ms: Callable[[], int]
    ) -> tuple[PlaybackPackage, _Build]:
        build = _Build(work / "package", request.job_id, request.attempt, watch)
        # The packager runs after a job's last encode, on its critical path: the downloads, then the steps (each
        # reads the downloaded renditions, writes files of its own and stores them), run side by side.
        with ThreadPoolExecutor(max_workers=STEPS_AT_ONCE, thread_name_prefix="package") as pool:
            try:
                renditions = list(pool.map(lambda source: self._download(work, source), request.renditions))
                largest = max(renditions, key=lambda rendition: rendition.pixels)
                smallest = min(renditions, key=lambda rendition: rendition.pixels)
                variant_steps = [pool.submit(self._package_variant, r, build, remaining_ms) for r in renditions]
                poster_step = pool.submit(self._poster, largest, smallest, build, remaining_ms)
                thumbnails_step = pool.submit(self._thumbnails, smallest, build, remaining_ms)
                variants = [step.result() for step in variant_steps]
                poster, thumbnails = poster_step.result(), thumbnails_step.result()
            except BaseException:
                pool.shutdown(cancel_futures=True)
                raise
        (build.folder / MASTER_PLAYLIST).write_text(master_playlist(variants))
        self._store_step(build, indexes=[MASTER_PLAYLIST])  # last: every file it names is stored
        package = PlaybackPackage(
            bucket=self._settings.outputs_bucket,
            hlsKey=playback_key(request.job_id, MASTER_PLAYLIST),
            variants=variants,
            poster=poster,
            thumbnails=thumbnails,
        )
        return package, build

    def _download(self, work: Path, source: PackagingSource) -> _Rendition:
        path = work / "renditions" / f"{source.rendition}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._store.download_rendition(source, path)
        media = self._tools.read_rendition(path)
        problem = rendition_problem(source.rendition, media)
        if problem is not None:
            raise RenditionRefused(problem)
        logger.info("rendition downloaded", extra={"rendition": source.rendition, "media": asdict(media)})
        return _Rendition(source.rendition, path, media)

    def _package_variant(self, rendition: _Rendition, build: _Build, remaining_ms: Callable[[], int]) -> HlsVariant:
        folder = build.folder / variant_folder(rendition.name)
        folder.mkdir(parents=True)
        has_audio = rendition.media.audioCodec is not None
        args = hls_args(self._tools.ffmpeg_binary(), rendition.path, folder, has_audio=has_audio)
        self._run(args, f"rendition {rendition.name} cannot be remuxed", build, remaining_ms)

        playlist = parse_media_playlist(_read_text(folder / VARIANT_PLAYLIST))
        if playlist.initUri is None:
            raise OutputUnreadable(f"variant {rendition.name} has no init segment")
        absorbed = absorb_short_last_segment(playlist, SEGMENT_SECONDS)
        if absorbed is not None:
            tail = folder / playlist.segments[-1].uri
            with (folder / absorbed.segments[-1].uri).open("ab") as previous:
                previous.write(tail.read_bytes())
            tail.unlink()
            (folder / VARIANT_PLAYLIST).write_text(media_playlist_text(absorbed), encoding="utf-8")
            playlist = absorbed
        init = _read_bytes(folder / playlist.initUri)
        sizes = [_file_size(folder / segment.uri) for segment in playlist.segments]
        durations = [segment.duration for segment in playlist.segments]
        bandwidth = variant_bandwidth(len(init), sizes, durations)
        media = rendition.media
        variant = HlsVariant(
            rendition=rendition.name,
            key=playback_key(build.job_id, variant_playlist(rendition.name)),
            bandwidth=bandwidth.peak,
            averageBandwidth=bandwidth.average,
            width=media.width,
            height=media.height,
            codecs=codecs_attribute(media, find_avc_configuration(init)),
            frameRate=round(media.frameRate or 0.0, 3),
            segments=len(playlist.segments),
        )
        media = [playlist.initUri, *(segment.uri for segment in playlist.segments)]
        folder_name = variant_folder(rendition.name)
        self._store_step(
            build,
            media=[posixpath.join(folder_name, uri) for uri in media],
            indexes=[variant_playlist(rendition.name)],
        )
        logger.info("variant packaged", extra={"variant": variant.model_dump()})
        return variant

    def _poster(
        self, largest: _Rendition, smallest: _Rendition, build: _Build, remaining_ms: Callable[[], int]
    ) -> Poster:
        duration_ms = largest.media.durationMs
        at_ms = None
        for start, length in poster_windows(duration_ms):
            build.watch.check_if_due()
            scan = LumaScan()
            args = luma_scan_args(self._tools.ffmpeg_binary(), smallest.path, start, length)
            try:
                self._tools.stream_ffmpeg(args, timeout_seconds=self._budget(remaining_ms), on_chunk=scan.feed)
            except FfmpegFailed as err:
                what = f"rendition {smallest.name} cannot be decoded"
                raise RenditionRefused(self._refusal(what, err, build)) from err
            index = first_visible_frame(scan.frames)
            if index is not None:
                at_ms = poster_frame_ms(start, index)
                break
        if at_ms is None:
            at_ms = poster_start_ms(duration_ms)
            logger.info("every frame from 10% of the duration on is blank; the poster is the frame there")
        output = build.folder / POSTER
        args = poster_args(self._tools.ffmpeg_binary(), largest.path, at_ms, output)
        self._run(args, "the poster cannot be drawn", build, remaining_ms)
        size = self._tools.read_image_size(output)
        if size != (largest.media.width, largest.media.height):
            raise OutputUnreadable(f"the poster is {size[0]}x{size[1]}, not the largest rendition's size")
        self._store_step(build, media=[POSTER])
        logger.info("poster drawn", extra={"atMs": at_ms, "rendition": largest.name})
        return Poster(key=playback_key(build.job_id, POSTER), width=size[0], height=size[1], atMs=at_ms)

    def _thumbnails(self, smallest: _Rendition, build: _Build, remaining_ms: Callable[[], int]) -> Thumbnails:
        settings, media = self._settings, smallest.media
        layout = plan_sprite(
            media.durationMs,
            media.width,
            media.height,
            frame_rate=media.frameRate or 0.0,
            interval_seconds=settings.thumbnail_interval_seconds,
            max_tiles=settings.max_sprite_tiles,
            tile_width=settings.sprite_tile_width,
        )
        sprite = build.folder / SPRITE
        sprite.parent.mkdir(parents=True, exist_ok=True)
        args = sprite_args(self._tools.ffmpeg_binary(), smallest.path, layout, sprite)
        self._run(args, "the thumbnails cannot be drawn", build, remaining_ms)
        size = self._tools.read_image_size(sprite)
        if size != (layout.width, layout.height):
            raise OutputUnreadable(f"the sprite is {size[0]}x{size[1]}, expected {layout.width}x{layout.height}")
        sprite_from_vtt = posixpath.relpath(SPRITE, posixpath.dirname(THUMBNAILS_VTT))
        (build.folder / THUMBNAILS_VTT).write_text(thumbnails_vtt(layout, media.durationMs, sprite_from_vtt))
        self._store_step(build, media=[SPRITE], indexes=[THUMBNAILS_VTT])
        logger.info("thumbnails drawn", extra={"layout": asdict(layout), "rendition": smallest.name})
        return Thumbnails(
            vttKey=playback_key(build.job_id, THUMBNAILS_VTT),
            spriteKey=playback_key(build.job_id, SPRITE),
            width=layout.width,
            height=layout.height,
            tileWidth=layout.tileWidth,
            tileHeight=layout.tileHeight,
            columns=layout.columns,
            rows=layout.rows,
            tiles=layout.tiles,
            intervalSeconds=layout.intervalSeconds,
        )

    def _store_step(self, build: _Build, *, media: Sequence[str] = (), indexes: Sequence[str] = ()) -> None:
        """Store one step's files (paths in the package folder): the media (segments, images), then the indexes
        that name them (a playlist, the VTT), once the gate says the job still wants them (WorkWithdrawn otherwise:
        a withdrawn job gets nothing more stored)."""
        build.watch.check()
        stored = sum(
            self._store.upload_files([build.packaged(name) for name in batch], build.job_id, attempt=build.attempt)
            for batch in (media, indexes)
            if batch
        )
        with build.lock:
            build.stored_bytes += stored

    def _run(self, args: list[str], what: str, build: _Build, remaining_ms: Callable[[], int]) -> None:
        """Run one ffmpeg step; a refusal is RenditionRefused saying `what`, with the end of ffmpeg's stderr."""
        build.watch.check_if_due()
        logger.info("running ffmpeg", extra={"ffmpeg": args})
        try:
            self._tools.run_ffmpeg(args, timeout_seconds=self._budget(remaining_ms))
        except FfmpegFailed as err:
            raise RenditionRefused(self._refusal(what, err, build)) from err

    @staticmethod
    def _refusal(what: str, err: FfmpegFailed, build: _Build) -> str:
        """`what`, and ffmpeg's reason without the working directory's paths."""
        work = build.folder.parent
        return failure_message(what, err.stderr_tail.replace(f"{work}/", ""))

    def _budget(self, remaining_ms: Callable[[], int]) -> float:
        """Seconds a step may run: what is left of the invocation, less the reserve for uploading and announcing."""
        return time_budget(remaining_ms, self._settings.reserve_seconds)

    def _fail(self, request: PackagingRequested, reason: str) -> PackagingResult:
        # A job deleted meanwhile lost its renditions too: its packaging is withdrawn, not failed.
        self._gate.check(request.job_id, request.attempt)
        logger.error("packaging failed", extra={"code": FAILED, "reason": reason})
        error = ErrorInfo(code=FAILED, message=client_safe(reason))
        failed = PackagingFailed(job_id=request.job_id, owner_id=request.owner_id, error=error, attempt=request.attempt)
        self._events.publish(DetailType.PACKAGING_FAILED, failed)
        return PackagingResult(Outcome.FAILED, error_code=FAILED)


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise OutputUnreadable(f"{path.name} cannot be read") from err


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise OutputUnreadable(f"{path.name} cannot be read") from err


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as err:
        raise OutputUnreadable(f"{path.name} is missing") from err
