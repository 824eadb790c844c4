"""Producing one unit of an audio job: the steps between "a message arrived" and "Rendition Completed/Failed".

Ingest publishes an audio job as one message per unit (`FanOutMessage.per_unit()`):
- `audio` (kind audio): an AAC rendition in MP4 at `outputs/{jobId}/audio.m4a`, loudness-normalised to EBU R128.
- `waveform` (kind waveform): a PNG of the unit's width x height at `outputs/{jobId}/waveform.png`, drawn from the
  decoded samples.

Failure policy:
- A unit of another kind (not this function's work): dropped, nothing announced.
- The upload is gone, or is no longer the object ingest validated (`IfMatch` on `source.etag` answered 412 or 404):
  `Rendition Failed` SOURCE_REPLACED, "the upload was replaced after it was validated" (or "… is no longer
  available"), nothing decoded.
- Every reason names what failed, never a bucket, key or working path (those are logged; see `unit_worker`).
- The media cannot be processed (ffmpeg exits with an error, the output does not read back as planned, the unit asks
  for something this function does not make): `Rendition Failed` AUDIO_PROCESSING_FAILED, and return normally: a
  retry would fail the same way.
- Anything transient (S3 or EventBridge errors, ffmpeg killed at the deadline or by a signal, too little time left
  to start): raise, so SQS delivers the message again and, after the last try, parks it in the DLQ.

Work no longer wanted (the job was canceled, or runs another attempt: `functions/common/job_gate.py`) stops where
the gate is asked: before anything is read, between the two loudnorm passes and every few seconds of the waveform's
decoding (ffmpeg is killed), before the output is stored, and before a failure is announced. WorkWithdrawn is
raised; the batch wiring drops the message.

Redelivery is cheap: when the output object already carries metadata saying this job's attempt made it for this unit
with the same plan, the Completed event is announced again from that metadata without downloading or decoding
anything, so a duplicate message produces no duplicate output.

Loudness (EBU R128, ffmpeg `loudnorm`), in two passes as ffmpeg's documentation recommends:
1. Measure: `loudnorm=I=<target>:TP=-1.5:LRA=11:print_format=json` over the whole source, writing nothing; the
   filter prints the integrated loudness, true peak, loudness range and gate threshold it found.
2. Apply: the same targets with those measurements and `linear=true`: one static gain (target - measured), so the
   dynamics are untouched. loudnorm itself falls back to its dynamic mode (a gain that follows the programme, with a
   true-peak limiter) when a static gain would push the true peak above -1.5 dBTP or the source's loudness range is
   wider than 11 LU; which mode ran is logged.
loudnorm reads a measurement of exactly 0 LU range, -70 LUFS threshold, 0 LUFS integrated or 99 dBTP peak as "not
given" and then ignores `linear=true`; a steady tone does measure 0 LU, so such values are passed a hundredth off.
A source with no measurable loudness (digital silence, or shorter than one 400 ms gating block) has nothing to
normalise: it is encoded at its own level.

What the AAC rendition guarantees: the first audio stream only (no cover art, video, subtitles or data streams), no
metadata or chapters from the upload, AAC-LC at the unit's bitrate, mono kept mono and anything wider downmixed to
stereo (before both loudnorm passes, so what is measured is what is encoded), the source's sample rate when AAC has
it (at most 48 kHz, else 48 kHz), `+faststart` so playback starts before the download ends. Every input is opened
with `-protocol_whitelist file` and only the demuxer ingest found (or the audio allow-list), so a crafted playlist
cannot make ffmpeg read other files or the network.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from functions.audio.settings import AudioSettings
from functions.common.ffmpeg_runner import FfmpegFailed
from functions.common.job_gate import AttemptWatch, JobGate
from functions.common.observability import logger
from functions.common.unit_worker import (
    EventSink,
    Outcome,
    OutputUnreadable,
    SourceMissing,
    SourceStore,
    StoredOutput,
    UnitEvents,
    UnitResult,
    time_budget,
    work_dir,
)
from functions.contracts.errors import SOURCE_REPLACED_CODE
from functions.contracts.fanout import FanOutMessage, PlannedRendition
from functions.contracts.jobs import Probe
from functions.contracts.media import ACCEPTED_AUDIO_DEMUXERS, AUDIO_DEMUXER_WHITELIST, UnitKind

ENGINE = "audio"
AUDIO_CONTENT_TYPE = "audio/mp4"
WAVEFORM_CONTENT_TYPE = "image/png"
AUDIO_FORMAT = "m4a"
WAVEFORM_FORMAT = "png"
FAILED = "AUDIO_PROCESSING_FAILED"
WORK_DIR_PREFIX = "audio-"

DEFAULT_AUDIO_BITRATE_KBPS = 128
TRUE_PEAK_DBTP = -1.5
"""The true-peak ceiling: -1 dBTP is EBU R128's, half a dB more leaves room for the AAC encoder's overshoot."""
LOUDNESS_RANGE_LU = 11.0
"""loudnorm's loudness range target: a source whose range is wider is normalised dynamically."""
SILENCE_LUFS = -70.0
"""EBU R128's absolute gate: below it there is no programme to measure."""
AAC_SAMPLE_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
"""Sample rates the AAC rendition keeps (AAC's own, up to 48 kHz); any other is resampled to 48 kHz."""
FALLBACK_SAMPLE_RATE = 48000

WAVEFORM_SAMPLE_RATE = 8000
"""Samples per second decoded for the waveform: plenty for 1800 columns, and 16 kB per second of audio to read."""
WAVEFORM_FLOOR_DBFS = -40.0
"""The waveform is scaled to the loudest column, but never by more than this: hiss in a near-silent file stays flat."""
MAX_WAVEFORM_SIDE = 8192
MIN_BLOCK_SAMPLES = 16
"""The finest block the waveform's peaks are kept at (2 ms at 8 kHz), so a long file costs little to scan."""
BLOCKS_PER_COLUMN = 4


# --- what the ports exchange --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loudness:
    """What loudnorm measured over a whole input (LUFS, dBTP, LU)."""

    integrated: float
    truePeak: float
    range: float
    threshold: float
    offset: float
    normalizationType: str | None = None
    """Which mode loudnorm ran in (`linear` or `dynamic`): reported by the applying pass."""

    @property
    def measurable(self) -> bool:
        """Whether there is programme to normalise: silence and clips shorter than a gating block measure -inf."""
        values = (self.integrated, self.truePeak, self.range, self.threshold, self.offset)
        return all(math.isfinite(v) for v in values) and self.integrated > SILENCE_LUFS


@dataclass(frozen=True)
class AudioMedia:
    """The AAC rendition as ffprobe reads it."""

    codec: str | None
    durationMs: int
    sampleRate: int | None
    channels: int | None
    bytes: int
    otherStreams: int
    """Streams besides the one audio stream (cover art, video, subtitles, data): none are expected."""


@dataclass(frozen=True)
class OutputFacts:
    """What the Completed event reports about an output, stored with it so that a redelivery can announce it again."""

    contentType: str
    plan: str
    """The plan the output was made to (`plan_signature`); an output made to another plan is made again."""
    width: int | None = None
    height: int | None = None
    durationMs: int | None = None


@dataclass(frozen=True)
class StoredUnit:
    """An output object in the outputs bucket, with the facts stored with it."""

    bucket: str
    key: str
    bytes: int
    facts: OutputFacts

    def reported(self) -> StoredOutput:
        """What the Completed event reports about it."""
        facts = self.facts
        return StoredOutput(
            self.bucket, self.key, self.bytes, facts.contentType, facts.width, facts.height, facts.durationMs
        )


# --- ports --------------------------------------------------------------------------------------------------------


class MediaStore(SourceStore, Protocol):
    """The uploads and outputs buckets, as the audio function uses them."""

    def find_output(self, job_id: str, unit: str, key: str, *, attempt: int) -> StoredUnit | None:
        """The output as an earlier delivery of the same unit (in the same attempt) uploaded it, if one did."""

    def upload_output(
        self, path: Path, job_id: str, unit: str, key: str, facts: OutputFacts, *, attempt: int
    ) -> StoredUnit: ...


class MediaTools(Protocol):
    """ffmpeg and ffprobe."""

    def ffmpeg_binary(self) -> str: ...

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> str:
        """Run the command and return what it wrote to stderr; FfmpegFailed when ffmpeg refuses the input,
        FfmpegTimedOut/FfmpegKilled when it was stopped."""

    def stream_ffmpeg(self, args: list[str], *, timeout_seconds: float, on_chunk: Callable[[bytes], None]) -> None:
        """Run the command, handing what it writes to stdout to `on_chunk` as it comes; errors as `run_ffmpeg`."""

    def read_audio(self, path: Path) -> AudioMedia:
        """The file as ffprobe sees it; OutputUnreadable when ffprobe cannot read it or it has no audio stream."""


class WaveformRenderer(Protocol):
    def render(self, levels: Sequence[float], *, width: int, height: int, destination: Path) -> tuple[int, int]:
        """Draw one symmetric bar per column (`levels`, 0 to 1, one per column) as a PNG at `destination`; the size
        of the PNG as read back. OutputUnreadable when it does not read back."""


# --- keys and plans -----------------------------------------------------------------------------------------------

UNIT_FORMATS = {UnitKind.AUDIO: AUDIO_FORMAT, UnitKind.WAVEFORM: WAVEFORM_FORMAT}
UNIT_CONTENT_TYPES = {UnitKind.AUDIO: AUDIO_CONTENT_TYPE, UnitKind.WAVEFORM: WAVEFORM_CONTENT_TYPE}


def output_key(job_id: str, unit: PlannedRendition) -> str:
    """`outputs/{jobId}/{name}.m4a` for the audio unit, `outputs/{jobId}/{name}.png` for the waveform."""
    return f"outputs/{job_id}/{unit.name}.{UNIT_FORMATS[unit.kind]}"


def bitrate_kbps(unit: PlannedRendition) -> int:
    return unit.audioBitrateKbps or DEFAULT_AUDIO_BITRATE_KBPS


def plan_signature(unit: PlannedRendition, loudness_target: float) -> str:
    """What an output is made to, in a few words: the same message under the same settings gives the same text."""
    if unit.kind is UnitKind.AUDIO:
        return f"aac {bitrate_kbps(unit)}k loudnorm {_targets(loudness_target)}"
    return f"png {unit.width}x{unit.height}"


def unit_problem(unit: PlannedRendition) -> str | None:
    """Why this function cannot make the unit as planned; None when it can."""
    expected = UNIT_FORMATS[unit.kind]
    if unit.format is not None and unit.format != expected:
        return f"a {unit.kind} unit is made as {expected}, not {unit.format}"
    if unit.kind is UnitKind.WAVEFORM and max(unit.width or 0, unit.height or 0) > MAX_WAVEFORM_SIDE:
        return f"a waveform is at most {MAX_WAVEFORM_SIDE} pixels a side, not {unit.width}x{unit.height}"
    return None


# --- the ffmpeg commands ------------------------------------------------------------------------------------------


def format_whitelist(probe: Probe) -> str:
    """The demuxer ingest found, when it is an accepted audio demuxer; otherwise the whole audio allow-list."""
    return probe.formatName if probe.formatName in ACCEPTED_AUDIO_DEMUXERS else AUDIO_DEMUXER_WHITELIST


def _input_args(ffmpeg_binary: str, source: Path, probe: Probe, loglevel: str) -> list[str]:
    return [
        *(ffmpeg_binary, "-nostdin", "-hide_banner", "-nostats", "-loglevel", loglevel),
        *("-protocol_whitelist", "file", "-format_whitelist", format_whitelist(probe), "-i", str(source)),
        *("-map", "0:a:0", "-vn", "-sn", "-dn"),
    ]


def _targets(loudness_target: float) -> str:
    return f"I={loudness_target:g}:TP={TRUE_PEAK_DBTP:g}:LRA={LOUDNESS_RANGE_LU:g}"


def measure_args(ffmpeg_binary: str, source: Path, *, probe: Probe, loudness_target: float) -> list[str]:
    """The first loudnorm pass: decode everything, measure, write nothing (the report is on stderr, level info)."""
    loudnorm = f"loudnorm={_targets(loudness_target)}:print_format=json"
    filters = f"{channel_layout_filter(probe)},{loudnorm}"
    return [*_input_args(ffmpeg_binary, source, probe, "info"), "-af", filters, "-f", "null", "-"]


def _off_sentinel(value: float, sentinel: float, step: float) -> float:
    """`value`, moved a hundredth away from a value loudnorm reads as "not measured"."""
    return value + step if round(value, 2) == sentinel else value


def loudnorm_filter(loudness_target: float, measured: Loudness) -> str:
    """The second loudnorm pass: the measurements in, a static (linear) gain out whenever loudnorm allows it."""
    integrated = min(max(measured.integrated, -99.0), -0.01)
    peak = min(max(measured.truePeak, -99.0), 98.99)
    lra = _off_sentinel(min(max(measured.range, 0.0), 99.0), 0.0, 0.01)
    threshold = _off_sentinel(min(max(measured.threshold, -99.0), 0.0), -70.0, -0.01)
    offset = min(max(measured.offset, -99.0), 99.0)
    return (
        f"loudnorm={_targets(loudness_target)}"
        f":measured_I={integrated:.2f}:measured_TP={peak:.2f}:measured_LRA={lra:.2f}"
        f":measured_thresh={threshold:.2f}:offset={offset:.2f}:linear=true:print_format=json"
    )


def output_sample_rate(probe: Probe) -> int:
    rate = probe.sampleRate
    return rate if rate in AAC_SAMPLE_RATES else FALLBACK_SAMPLE_RATE


def output_channels(probe: Probe) -> int:
    return 1 if probe.channels == 1 else 2


def channel_layout_filter(probe: Probe) -> str:
    """Mono stays mono, anything else becomes stereo, BEFORE loudnorm: both passes measure what is encoded (a 5.1
    source downmixed after normalising would miss the target)."""
    return f"aformat=channel_layouts={'mono' if output_channels(probe) == 1 else 'stereo'}"


def encode_args(
    ffmpeg_binary: str,
    source: Path,
    output: Path,
    *,
    probe: Probe,
    bitrate: int,
    loudness_target: float,
    measured: Loudness | None,
) -> list[str]:
    """The AAC rendition: loudnorm's second pass when there is loudness to normalise, then AAC in MP4."""
    filters = [channel_layout_filter(probe)]
    if measured is not None:
        filters.append(loudnorm_filter(loudness_target, measured))
    args = [*_input_args(ffmpeg_binary, source, probe, "info"), "-af", ",".join(filters)]
    args += ["-ar", str(output_sample_rate(probe)), "-ac", str(output_channels(probe))]
    args += ["-c:a", "aac", "-b:a", f"{bitrate}k", "-map_metadata", "-1", "-map_chapters", "-1"]
    return [*args, "-movflags", "+faststart", "-f", "mp4", "-y", str(output)]


def decode_args(ffmpeg_binary: str, source: Path, *, probe: Probe) -> list[str]:
    """The waveform's samples: mono, 16-bit signed little-endian, at WAVEFORM_SAMPLE_RATE, on stdout."""
    args = _input_args(ffmpeg_binary, source, probe, "error")
    args += ["-ac", "1", "-ar", str(WAVEFORM_SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "s16le", "pipe:1"]
    return args


_LOUDNORM_REPORT = re.compile(r"\{[^{}]*\"input_i\"[^{}]*\}")


def parse_loudnorm_report(stderr: str) -> Loudness | None:
    """The last JSON report loudnorm printed on stderr (`print_format=json`), or None when there is none."""
    reports = _LOUDNORM_REPORT.findall(stderr)
    if not reports:
        return None
    try:
        report = json.loads(reports[-1])
        return Loudness(
            integrated=float(report["input_i"]),
            truePeak=float(report["input_tp"]),
            range=float(report["input_lra"]),
            threshold=float(report["input_thresh"]),
            offset=float(report["target_offset"]),
            normalizationType=report.get("normalization_type"),
        )
    except (ValueError, KeyError, TypeError):
        return None


# --- the waveform -------------------------------------------------------------------------------------------------


class PeakAccumulator:
    """The peak of every block of decoded samples (mono s16le), fed as ffmpeg writes them; `columns` then groups the
    blocks into the waveform's columns. Memory stays small whatever the duration: one int per block."""

    def __init__(self, expected_samples: int, columns: int) -> None:
        self.block = max(MIN_BLOCK_SAMPLES, expected_samples // max(1, columns * BLOCKS_PER_COLUMN))
        self.peaks: list[int] = []
        self.samples = 0
        self._pending = array("h")
        self._odd_byte = b""

    def feed(self, data: bytes) -> None:
        data = self._odd_byte + data
        cut = len(data) - len(data) % 2
        self._odd_byte = data[cut:]
        samples = array("h")
        samples.frombytes(data[:cut])
        if sys.byteorder == "big":
            samples.byteswap()
        self.samples += len(samples)
        self._pending.extend(samples)
        whole = len(self._pending) - len(self._pending) % self.block
        self._take(whole)

    def _take(self, count: int) -> None:
        pending, block = self._pending, self.block
        for start in range(0, count, block):
            chunk = pending[start : start + block]
            loudest, lowest = max(chunk), min(chunk)
            self.peaks.append(max(loudest, -lowest))
        del pending[:count]

    def columns(self, count: int) -> list[int]:
        """The peak (0 to 32768) of each of `count` equal stretches of the audio; all 0 when nothing was decoded."""
        self._take(len(self._pending))
        peaks = self.peaks
        if not peaks:
            return [0] * count
        blocks = len(peaks)
        result = []
        for column in range(count):
            low = column * blocks // count
            high = max(low + 1, (column + 1) * blocks // count)
            result.append(max(peaks[low:high]))
        return result


def waveform_levels(peaks: Sequence[int]) -> list[float]:
    """Column heights from 0 to 1: scaled to the loudest column, by at most WAVEFORM_FLOOR_DBFS."""
    floor = 32768 * 10 ** (WAVEFORM_FLOOR_DBFS / 20)
    reference = max(max(peaks, default=0), floor)
    return [min(1.0, peak / reference) for peak in peaks]


# --- checking the output ------------------------------------------------------------------------------------------


def audio_problems(media: AudioMedia, probe: Probe) -> list[str]:
    """Why the AAC rendition is not what was planned; empty when it is."""
    problems = []
    if media.codec != "aac":
        problems.append(f"audio codec is {media.codec}, expected aac")
    if media.otherStreams:
        problems.append(f"has {media.otherStreams} stream(s) besides the audio, expected none")
    if media.durationMs <= 0:
        problems.append("duration is zero")
    if media.bytes <= 0:
        problems.append("file is empty")
    if media.sampleRate != output_sample_rate(probe):
        problems.append(f"sample rate is {media.sampleRate}, expected {output_sample_rate(probe)}")
    return problems


# --- the processor ------------------------------------------------------------------------------------------------


class AudioProcessor:
    """Makes the units of an audio job's message with ffmpeg and Pillow and announces each result on the bus."""

    def __init__(
        self,
        store: MediaStore,
        tools: MediaTools,
        renderer: WaveformRenderer,
        events: EventSink,
        settings: AudioSettings,
        *,
        gate: JobGate,
    ) -> None:
        self._store = store
        self._tools = tools
        self._renderer = renderer
        self._units = UnitEvents(events, ENGINE)
        self._settings = settings
        self._gate = gate

    def process(self, message: FanOutMessage, remaining_ms: Callable[[], int]) -> list[UnitResult]:
        """Every unit the message plans (ingest sends one per message), in order."""
        if not message.renditions:
            logger.warning("message plans no unit; dropped")
        return [self.process_unit(message, unit, remaining_ms) for unit in message.renditions]

    def process_unit(
        self, message: FanOutMessage, unit: PlannedRendition, remaining_ms: Callable[[], int]
    ) -> UnitResult:
        if unit.kind not in UNIT_FORMATS:
            logger.warning("not an audio unit; dropped", extra={"unit": unit.name, "kind": unit.kind})
            return UnitResult(unit.name, Outcome.DROPPED)
        key = output_key(message.jobId, unit)
        plan = plan_signature(unit, self._settings.loudness_target_lufs)
        logger.info("making unit", extra={"unit": unit.name, "kind": unit.kind, "plan": plan})
        watch = AttemptWatch(
            self._gate, message.jobId, message.attempt, every_seconds=self._settings.gate_check_seconds
        )
        watch.check()

        existing = self._store.find_output(message.jobId, unit.name, key, attempt=message.attempt)
        if existing is not None and existing.facts.plan == plan:
            logger.info("output uploaded by an earlier delivery; announcing it again", extra={"key": existing.key})
            return self._units.reannounced(message, unit.name, existing.reported())

        self._budget(remaining_ms)
        self._units.started(message, unit.name)
        problem = unit_problem(unit)
        if problem is None and message.source.bucket != self._settings.uploads_bucket:
            logger.warning("the source is outside the uploads bucket", extra={"bucket": message.source.bucket})
            problem = "the upload is not in the uploads bucket"
        if problem is not None:
            return self._fail(message, unit, FAILED, problem)

        with work_dir(self._settings.work_root, WORK_DIR_PREFIX) as work:
            source = work / "source"
            try:
                self._store.download_source(message.source, source)
            except SourceMissing as err:  # replaced or gone: either way not the upload ingest validated
                return self._fail(message, unit, SOURCE_REPLACED_CODE, str(err))
            started = time.monotonic()
            output = work / f"{unit.name}.{UNIT_FORMATS[unit.kind]}"
            try:
                make = self._make_audio if unit.kind is UnitKind.AUDIO else self._make_waveform
                facts = make(
                    source, output, probe=message.probe, unit=unit, plan=plan, watch=watch, remaining_ms=remaining_ms
                )
            except FfmpegFailed as err:
                return self._fail(message, unit, FAILED, err.stderr_tail.replace(f"{work}/", ""))
            except OutputUnreadable as err:
                return self._fail(message, unit, FAILED, f"the output does not read back as planned: {err}")
            seconds = time.monotonic() - started
            watch.check()
            stored = self._store.upload_output(
                output, message.jobId, unit.name, key, facts, attempt=message.attempt
            ).reported()
        self._units.completed(message, unit.name, stored)
        logger.info(
            "unit completed",
            extra={"unit": unit.name, "key": stored.key, "bytes": stored.bytes, "seconds": round(seconds, 3)},
        )
        return UnitResult(unit.name, Outcome.COMPLETED, stored=stored, seconds=seconds)

    def _make_audio(
        self,
        source: Path,
        output: Path,
        *,
        probe: Probe,
        unit: PlannedRendition,
        plan: str,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> OutputFacts:
        target = self._settings.loudness_target_lufs
        ffmpeg_binary = self._tools.ffmpeg_binary()
        measuring = measure_args(ffmpeg_binary, source, probe=probe, loudness_target=target)
        logger.info("measuring loudness", extra={"ffmpeg": measuring})
        measured = parse_loudnorm_report(self._tools.run_ffmpeg(measuring, timeout_seconds=self._budget(remaining_ms)))
        if measured is None:
            raise FfmpegFailed(0, "loudnorm printed no measurement")
        if not measured.measurable:
            logger.info("no loudness to normalise (silent, or too short); encoding at the source's level")
        logger.info("measured", extra={"loudness": asdict(measured)})
        watch.check_if_due()
        encoding = encode_args(
            ffmpeg_binary,
            source,
            output,
            probe=probe,
            bitrate=bitrate_kbps(unit),
            loudness_target=target,
            measured=measured if measured.measurable else None,
        )
        logger.info("encoding", extra={"ffmpeg": encoding})
        applied = parse_loudnorm_report(self._tools.run_ffmpeg(encoding, timeout_seconds=self._budget(remaining_ms)))
        if applied is not None:
            logger.info("normalised", extra={"normalizationType": applied.normalizationType})
        media = self._tools.read_audio(output)
        problems = audio_problems(media, probe)
        if problems:
            raise OutputUnreadable("; ".join(problems))
        return OutputFacts(contentType=AUDIO_CONTENT_TYPE, plan=plan, durationMs=media.durationMs)

    def _make_waveform(
        self,
        source: Path,
        output: Path,
        *,
        probe: Probe,
        unit: PlannedRendition,
        plan: str,
        watch: AttemptWatch,
        remaining_ms: Callable[[], int],
    ) -> OutputFacts:
        width, height = unit.width or 0, unit.height or 0
        expected_samples = probe.durationMs * WAVEFORM_SAMPLE_RATE // 1000
        peaks = PeakAccumulator(expected_samples, width)
        decoding = decode_args(self._tools.ffmpeg_binary(), source, probe=probe)
        logger.info("decoding", extra={"ffmpeg": decoding, "blockSamples": peaks.block})

        def on_chunk(data: bytes) -> None:
            watch.check_if_due()  # WorkWithdrawn here stops the read, and ffmpeg is killed
            peaks.feed(data)

        self._tools.stream_ffmpeg(decoding, timeout_seconds=self._budget(remaining_ms), on_chunk=on_chunk)
        levels = waveform_levels(peaks.columns(width))
        size = self._renderer.render(levels, width=width, height=height, destination=output)
        if size != (width, height):
            raise OutputUnreadable(f"the PNG is {size[0]}x{size[1]}, expected {width}x{height}")
        logger.info("waveform drawn", extra={"samples": peaks.samples})
        return OutputFacts(contentType=WAVEFORM_CONTENT_TYPE, plan=plan, width=width, height=height)

    def _budget(self, remaining_ms: Callable[[], int]) -> float:
        """Seconds ffmpeg may run: what is left of the invocation, less the reserve for uploading and announcing."""
        return time_budget(remaining_ms, self._settings.reserve_seconds)

    def _fail(self, message: FanOutMessage, unit: PlannedRendition, code: str, text: str) -> UnitResult:
        # A job deleted meanwhile lost its source too: its work is withdrawn, not failed.
        self._gate.check(message.jobId, message.attempt)
        logger.error("unit failed", extra={"unit": unit.name, "code": code, "reason": text})
        return self._units.failed(message, unit.name, code, text)
