"""Segment-parallel encoding: its CPU cost measured here, and its time-to-ready and price projected to AWS.

    python -m bench.segment_projection [--seconds 60] [--segment-seconds 12] [--concurrency 1000]
        [--memory-mb 4096] [--cpus 2] [--repeat 1] [--queue-concurrency 1000] [--s3-mb-per-second 80]
        [--source-mbps 16] [--cold-start-seconds 1] [--hop-seconds 1] [--packager-memory-mb 2048]

**What is measured (one run, one machine).** A 1080p30 H.264/AAC clip of `--seconds` is generated as
bench/encode_speed.py does (`make_source`: x264 veryfast with its default GOP, keyframes up to 250 frames apart and
at scene cuts, as a phone writes them, not on the 2 s grid of the pipeline's outputs). Ingest's own probe and decode
check run on it (`probe_media`, `check_decodes_to_end`) and the default ladder is planned with `plan_renditions`.
Then, for each QUEUED rendition, with the transcoder's own command builders (functions/transcode/service.py), each
ffmpeg pinned to `--cpus` CPUs with `--cpus` encoder threads:
- the unsegmented encode (`build_transcode`: video and audio in one run), and the same without audio (a probe
  saying `hasAudio: false`), which separates the video's CPU time from the audio's;
- the segmented encode: every video segment of `--segment-seconds` (`build_segment_video`, input-seeked to its start
  on the 2 s grid), the audio part (`build_audio_part`, the whole audio once, on 1 CPU: AAC is one thread), and the
  stitch (`build_stitch` over `concat_list`, `-c copy`), whose output is checked against the unsegmented one
  (packets and duration of each stream);
- the packager's ffmpeg steps on the stitched renditions (bench/packager_speed.py: HLS remux, poster, sprite).
Each run's wall time and CPU time (user + system of the ffmpeg child, from `getrusage(RUSAGE_CHILDREN)` deltas) are
recorded. The bench prints the CPU ratio segmented (video segments + audio part + stitch) / unsegmented per
rendition and in total (the issue's target: at most 1.05), and each video segment's CPU seconds per media second.
The ratios compare runs of one clip made in one run. CPU time is less disturbed by other load than wall time, but a
busy shared host still inflates it somewhat (caches, hyper-threads); `--repeat` keeps each command's lowest CPU time.

The measured segments (12 s by default, to get several from a short clip) are shorter than the pipeline's (48 s for
1080p30 at the defaults), so the bench also derives what each segment after the first adds: (CPU of the video
segments - CPU of the video-only unsegmented encode) / (segments - 1), that is the decode from the source keyframe
before the segment's start and ffmpeg's and x264's start-up. The projection's CPU ratio at the planned segment count
is (video-only rate x duration + (count - 1) x that overhead + audio part + stitch) / (unsegmented rate x duration).

**How the projection is made.** For 1 min, 10 min and 1 h of 1080p30 the segment plan is the pipeline's own:
ingest's `lambda_capacity(megapixels_per_vcpu_second=44, memory_mb=--memory-mb, timeout_seconds=900,
reserve_seconds=30, segment_target_seconds=60)`, `estimated_encode_seconds`, `segment_seconds` and `segment_count`
(a source that fits one segment is encoded whole). Each unit's time is built from the measurements and these
assumptions:
- Compute. Lambda gives `memory / 1769` vCPUs (2.32 at 4096 MB). A unit's encode takes the CPU seconds measured for
  its media (CPU seconds per media second x its media seconds) divided by the vCPUs: ffmpeg is assumed to keep every
  vCPU busy, and a Lambda vCPU to do what one CPU does here ("raw"). The "conservative" projection also divides the
  throughput by ingest's SAFETY_FACTOR (0.5), doubling every compute time (transfers and fixed costs unchanged):
  Lambda's vCPUs are slower than this machine's, and real footage is harder to encode than a test pattern. A video
  unit is timed at the slowest measured segment's CPU seconds per media second and priced at their mean. The audio
  part runs on one vCPU for the whole duration. The stitch and ingest's probe take their measured wall time.
- Transfers. A video unit of an MP4 source reads only its window (functions/transcode/adapters.py: the index, the
  first 6 s ffmpeg analyses, and the window's packets from 0.5 s before it to 4 s after it, counted here as that
  share of the source; the index itself is left out); the audio unit and ingest download the whole source; all at
  `--s3-mb-per-second` (80 MB/s per function). The source is `--source-mbps` (16 Mbit/s, about what
  a phone writes for 1080p30 H.264; the generated test pattern is smaller and is not used for this). Video parts,
  and the stitched rendition the stitch uploads and the packager downloads, are counted at the rendition's bitrate
  cap (maxVideoBitrateKbps, the most `-maxrate` lets an encode average) plus its AAC bitrate; the packager uploads
  as many bytes of HLS as it downloads.
- Fixed costs. A cold start per function (`--cold-start-seconds`, 1 s, billed), and `--hop-seconds` (1 s) per
  hand-over: upload to ingest, ingest's fan-out to the queues, the last part's `Segment Completed` to the stitch, the
  last rendition to the packager.
- Concurrency. Each rendition's queue starts 5 functions and adds up to 300 a minute (Lambda's SQS scaling), at most
  `--queue-concurrency` (the stack's maxConcurrency.transcode: 100 by default, 200 in prod; at most 1000) and its share
  of the account's `--concurrency`; units beyond that run in further waves. The last unit of a queue starts
  `(units - 5) / 300` minutes after the first.
- Time-to-ready: upload -> ingest (download, probe) -> every rendition's units in parallel (its slowest unit, video
  or audio, after the ramp) -> its stitch (download the parts, concat, upload) -> the packager (2048 MB: download
  the renditions, the measured packager CPU per media second on its vCPUs, upload). "stored" is the renditions
  stored (the last stitch done), "ready" the packager done (the job COMPLETED).
- Price. Lambda: GB-seconds of every transcode unit and stitch (cold start, transfers and compute, at `--memory-mb`)
  plus a request each, at the list prices of bench/encode_speed.py. MediaConvert: an output minute per rendition at
  the Basic tier's normalized-minute price and resolution multiplier (bench/encode_speed.py). Ingest and the packager
  run for either engine and are left out of both sides. MediaConvert's time-to-ready is not projected: AWS
  publishes no speed for it (AVC jobs often run near 1x realtime; an assumption, not a measurement).
- What-ifs, for 1 h only: the same projection without any S3 transfer time; one where every video unit
  downloads the whole source (as it does for a container without an index of its packets: Matroska, MPEG-TS); and
  one where the audio unit reads only the index, the first 6 s and the audio (a source that interleaves its audio in
  ~1 s chunks, as phones write it, taken at SOURCE_AUDIO_KBPS with a GET of AUDIO_GET_SECONDS per chunk,
  AUDIO_GET_THREADS at a time). The generated clip is interleaved frame by frame, as ffmpeg writes, so its audio
  unit reads it whole: the byte ranges between its audio packets are merged.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import ffmpeg

from bench.encode_speed import (
    LAMBDA_USD_PER_GB_SECOND,
    LAMBDA_USD_PER_REQUEST,
    SOURCE_FPS,
    SOURCE_HEIGHT,
    SOURCE_WIDTH,
    make_source,
    mediaconvert_usd_per_output_minute,
)
from bench.packager_speed import Timed, measure_packager, run_pinned
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.renditions import DEFAULT_RENDITIONS
from functions.contracts.fanout import TRANSCODE_RESERVE_SECONDS, EncodePlan, Segment
from functions.contracts.jobs import Probe
from functions.contracts.media import SegmentPart
from functions.ingest.adapters import check_decodes_to_end, probe_media
from functions.ingest.service import (
    SAFETY_FACTOR,
    LambdaCapacity,
    ProbedMedia,
    estimated_encode_seconds,
    lambda_capacity,
    lambda_vcpus,
    plan_renditions,
    segment_count,
    segment_seconds,
)
from functions.transcode.service import (
    EncoderSettings,
    build_audio_part,
    build_segment_video,
    build_stitch,
    build_transcode,
    concat_list,
    part_name,
)
from functions.transcode.settings import TranscodeSettings

PROJECTED_MINUTES = (1, 10, 60)
# Ingest's defaults (Pulumi.yaml): lambdaEncodeMegapixelsPerVcpuSecond, transcodeTimeoutSeconds, segmentTargetSeconds.
MEGAPIXELS_PER_VCPU_SECOND = 44
TIMEOUT_SECONDS = 900
SEGMENT_TARGET_SECONDS = 60
# Lambda's SQS event source: 5 concurrent batches at first, then up to 300 more a minute (batch size 1 here).
SQS_INITIAL_CONCURRENCY = 5
SQS_SCALE_PER_MINUTE = 300
# The 1 h goal of the issue.
GOAL_READY_SECONDS = 180
GOAL_PRICE_RATIO = 10
CPU_RATIO_TARGET = 1.05
WINDOW_EXTRA_SECONDS = 6.0 + 0.5 + 4.0
"""What a video unit reads of an MP4 beyond its segment: the 6 s ffmpeg analyses, 0.5 s before, 4 s after."""
PRELUDE_SECONDS = 6.0
"""What the audio unit reads of every stream of an MP4 (ffmpeg's stream analysis)."""
SOURCE_AUDIO_KBPS = 256
"""What a phone records its AAC at, at most."""
AUDIO_GET_SECONDS = 0.03
"""An S3 ranged GET's latency in Lambda (first byte), for the audio's one-second chunks."""
AUDIO_GET_THREADS = 8
"""functions/common/unit_adapters.py DOWNLOAD_THREADS."""
# The stack's default maxConcurrency.transcode (Pulumi.yaml; 200 in Pulumi.prod.yaml).
STACK_QUEUE_CONCURRENCY = 100


# --- measurement --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """One ffmpeg run of a segmented rendition: a video segment, the audio or the stitch."""

    name: str
    media_seconds: float
    timed: Timed


@dataclass
class RenditionRuns:
    plan: EncodePlan
    whole: Timed
    whole_video: Timed
    """The unsegmented encode without the audio (`build_transcode` of a probe without audio)."""
    parts: list[Part] = field(default_factory=list)
    check: str = ""

    def of(self, kind: str) -> list[Part]:
        return [p for p in self.parts if p.name.startswith(kind)]

    @property
    def segmented(self) -> Timed:
        return Timed(sum(p.timed.wall_seconds for p in self.parts), sum(p.timed.cpu_seconds for p in self.parts))


@dataclass
class Measurement:
    media_seconds: float
    segment_seconds: int
    segments: int
    cpus: int
    source_mbps: float
    probe: Probe
    ingest_wall_seconds: float
    renditions: list[RenditionRuns]
    packager_cpu_seconds: float
    packager_wall_seconds: float


def run_ffmpeg(args: list[str], cpus: int, repeat: int) -> Timed:
    """The run with the least CPU time of `repeat`; on failure, the command is printed (ffmpeg's stderr is not
    captured: it goes to this process's stderr) and the bench stops."""
    runs = []
    for _ in range(repeat):
        try:
            runs.append(run_pinned(args, cpus))
        except subprocess.CalledProcessError as err:
            print(f"\nffmpeg failed (exit {err.returncode}): {subprocess.list2cmdline(args)}", file=sys.stderr)
            raise SystemExit(1) from err
    return min(runs, key=lambda t: t.cpu_seconds)


def stream_summary(path: Path) -> dict[str, tuple[int, float]]:
    """codec_type -> (packets, duration in seconds) of each stream of an MP4."""
    args = [ffprobe_path(), "-v", "error", "-count_packets", "-show_entries", "stream=codec_type,nb_read_packets"]
    args += ["-show_entries", "stream=duration", "-of", "json", str(path)]
    out = subprocess.run(args, check=True, capture_output=True, env=tool_env(), text=True).stdout
    return {
        s["codec_type"]: (int(s.get("nb_read_packets", 0)), float(s.get("duration", "nan")))
        for s in json.loads(out)["streams"]
    }


def compare(whole: Path, stitched: Path) -> str:
    a, b = stream_summary(whole), stream_summary(stitched)
    said = []
    for kind in sorted(set(a) | set(b)):
        (pa, da), (pb, db) = a.get(kind, (0, 0.0)), b.get(kind, (0, 0.0))
        said.append(f"{kind} {pa}/{pb} packets, {da:.3f}/{db:.3f} s")
    return "whole/stitched: " + "; ".join(said)


@dataclass(frozen=True)
class Bench:
    cpus: int
    repeat: int
    progress: Callable[[str], None]

    def run(self, what: str, graph: ffmpeg.nodes.OutputStream, cpus: int | None = None) -> Timed:
        self.progress(what)
        return run_ffmpeg(graph.compile(cmd=ffmpeg_path()), cpus or self.cpus, self.repeat)


def measure_rendition(
    bench: Bench,
    source: Path,
    folder: Path,
    *,
    plan: EncodePlan,
    probe: Probe,
    encoder: EncoderSettings,
    segment: Segment,
) -> tuple[RenditionRuns, Path]:
    """The unsegmented encode, then every part of the segmented one and its stitch; the stitched rendition."""
    media_seconds = probe.durationMs / 1000
    whole = folder / "whole.mp4"
    graph = build_transcode(source, whole, plan=plan, probe=probe, encoder=encoder)
    timed = bench.run(f"{plan.name}: unsegmented encode", graph)
    video_only = probe.model_copy(update={"hasAudio": False})
    graph = build_transcode(source, folder / "whole-video.mp4", plan=plan, probe=video_only, encoder=encoder)
    rendition = RenditionRuns(plan, timed, bench.run(f"{plan.name}: unsegmented encode, video only", graph))
    videos = []
    for index in range(segment.count):
        part = segment.model_copy(update={"index": index})
        output = folder / part_name(part)
        graph = build_segment_video(source, output, plan=plan, probe=probe, encoder=encoder, segment=part)
        timed = bench.run(f"{plan.name}: video segment {index + 1}/{segment.count}", graph)
        rendition.parts.append(Part(f"video {index}", min(part.seconds, media_seconds - part.start_seconds), timed))
        videos.append(output)
    audio = None
    if probe.hasAudio:
        audio = folder / part_name(segment.model_copy(update={"part": SegmentPart.AUDIO}))
        graph = build_audio_part(source, audio, plan=plan, probe=probe)
        rendition.parts.append(Part("audio", media_seconds, bench.run(f"{plan.name}: audio part", graph, cpus=1)))
    segment_list = folder / "segments.txt"
    segment_list.write_text(concat_list(videos), encoding="utf-8")
    output = folder / f"{plan.name}.mp4"
    graph = build_stitch(segment_list, audio, output)
    rendition.parts.append(Part("stitch", media_seconds, bench.run(f"{plan.name}: stitch", graph)))
    rendition.check = compare(whole, output)
    return rendition, output


def measure(
    seconds: float, segment_length: int, cpus: int, repeat: int, progress: Callable[[str], None]
) -> Measurement:
    with tempfile.TemporaryDirectory(prefix="segment-projection-") as tmp:
        work = Path(tmp)
        progress(f"making a {seconds:g} s 1080p30 source")
        source = make_source(work / "source.mp4", seconds)
        size = source.stat().st_size
        started = time.perf_counter()
        probed = probe_media(source, size_bytes=size)
        assert isinstance(probed, ProbedMedia), "the source has no video"
        check_decodes_to_end(source, probed)
        ingest_wall = time.perf_counter() - started
        probe = probed.probe
        media_seconds = probe.durationMs / 1000
        count = segment_count(probe.durationMs, segment_length)
        if count < 2:
            raise SystemExit(f"--seconds {seconds:g} makes one segment of {segment_length} s: nothing to split")
        encoder = EncoderSettings(preset=TranscodeSettings.preset, crf=TranscodeSettings.crf, threads=cpus)
        runs: list[RenditionRuns] = []
        stitched: dict[str, Path] = {}
        for item in plan_renditions(probe.width or 0, probe.height or 0, DEFAULT_RENDITIONS):
            if item["status"] != "QUEUED":
                continue
            keys = ("name", "width", "height", "maxVideoBitrateKbps", "audioBitrateKbps")
            plan = EncodePlan(**{k: item[k] for k in keys})
            folder = work / plan.name
            folder.mkdir()
            bench = Bench(cpus, repeat, progress)
            rendition, stitched[plan.name] = measure_rendition(
                bench,
                source,
                folder,
                plan=plan,
                probe=probe,
                encoder=encoder,
                segment=Segment(part=SegmentPart.VIDEO, count=count, seconds=segment_length),
            )
            runs.append(rendition)
        progress("packager steps on the stitched renditions")
        steps = measure_packager(stitched, work / "package", cpus, repeat)
    return Measurement(
        media_seconds=media_seconds,
        segment_seconds=segment_length,
        segments=count,
        cpus=cpus,
        source_mbps=size * 8 / media_seconds / 1e6,
        probe=probe,
        ingest_wall_seconds=ingest_wall,
        renditions=runs,
        packager_cpu_seconds=sum(s.cpu_seconds for s in steps),
        packager_wall_seconds=sum(s.wall_seconds for s in steps),
    )


def report_measurement(m: Measurement) -> None:
    print(
        f"\nsource {SOURCE_WIDTH}x{SOURCE_HEIGHT}@{SOURCE_FPS}, {m.media_seconds:g} s, {m.source_mbps:.1f} Mbit/s; "
        f"{m.segments} segments of {m.segment_seconds} s; ffmpeg pinned to {m.cpus} CPUs ({m.cpus} encoder threads; "
        "the audio part on 1 CPU)"
    )
    print(f"ingest probe + decode check: {m.ingest_wall_seconds:.2f} s wall\n")
    print(f"{'rendition':<10}{'run':<13}{'media s':>8}{'wall s':>8}{'CPU s':>8}{'CPU s / media s':>17}")
    total_whole = total_segmented = 0.0
    for r in m.renditions:
        rows = [
            ("unsegmented", m.media_seconds, r.whole),
            ("unseg. video", m.media_seconds, r.whole_video),
            *((p.name, p.media_seconds, p.timed) for p in r.parts),
        ]
        for name, media, timed in rows:
            print(
                f"{r.plan.name:<10}{name:<13}{media:>8.1f}{timed.wall_seconds:>8.2f}{timed.cpu_seconds:>8.2f}"
                f"{timed.cpu_seconds / media:>17.3f}"
            )
        seg = r.segmented
        print(
            f"{r.plan.name:<10}{'segmented':<13}{m.media_seconds:>8.1f}{seg.wall_seconds:>8.2f}{seg.cpu_seconds:>8.2f}"
        )
        print(f"{'':<10}{r.check}\n")
        total_whole += r.whole.cpu_seconds
        total_segmented += seg.cpu_seconds
    print("CPU ratio segmented / unsegmented (video segments + audio + stitch vs one encode), target <= 1.05:")
    for r in m.renditions:
        rate = rates_of(m, r)
        video = sum(p.timed.cpu_seconds for p in r.of("video"))
        audio = sum(p.timed.cpu_seconds for p in r.of("audio"))
        stitch = sum(p.timed.cpu_seconds for p in r.of("stitch"))
        print(
            f"  {r.plan.name:<8}{r.segmented.cpu_seconds / r.whole.cpu_seconds:>6.3f}   (wall "
            f"{r.segmented.wall_seconds / r.whole.wall_seconds:.3f}); video segments / unsegmented video-only "
            f"{video / r.whole_video.cpu_seconds:.3f} ({rate.segment_overhead:+.2f} CPU s per extra segment); audio "
            f"part {audio:.2f} CPU s vs {r.whole.cpu_seconds - r.whole_video.cpu_seconds:.2f} for the audio inside "
            f"the unsegmented encode; stitch {stitch:.2f}"
        )
        print(
            f"  {'':<8}video segments: {rate.video_min:.3f}-{rate.video_max:.3f} CPU s per media second, mean "
            f"{rate.video_mean:.3f} (unsegmented video-only {rate.whole_video:.3f})"
        )
    ratio = total_segmented / total_whole
    verdict = "meets" if ratio <= CPU_RATIO_TARGET else "MISSES"
    print(f"  {'total':<8}{ratio:>6.3f}   ({total_segmented:.2f} / {total_whole:.2f} CPU s: {verdict} the 1.05 target)")
    print(
        f"packager steps on the stitched renditions: {m.packager_wall_seconds:.2f} s wall, "
        f"{m.packager_cpu_seconds:.2f} CPU s"
    )


# --- projection ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assumptions:
    memory_mb: int = 4096
    concurrency: int = 1000
    """The account's concurrent executions available to the transcoders."""
    queue_concurrency: int = 1000
    """Each rendition queue's event source maximum concurrency (the stack's maxConcurrency.transcode)."""
    s3_mb_per_second: float = 80.0
    source_mbps: float = 16.0
    cold_start_seconds: float = 1.0
    hop_seconds: float = 1.0
    packager_memory_mb: int = 2048
    window_reads: bool = True
    """A video unit reads only its window of the source (an MP4); False: the whole source (other containers)."""
    audio_reads: bool = False
    """The audio unit reads only the index, the first seconds and the audio of an MP4 whose audio is in ~1 s chunks
    (as phones write it); False: the whole source (ffmpeg interleaves frame by frame, and the copy's ranges merge)."""


@dataclass(frozen=True)
class Rates:
    """What the projection takes from the measurement, per media second (CPU seconds unless said)."""

    whole: float
    whole_video: float
    video_mean: float
    video_min: float
    video_max: float
    segment_overhead: float
    """CPU seconds each segment after the first adds to the video-only encode (seeking, start-up), not per second."""
    audio: float
    stitch_cpu: float
    stitch_wall: float


def rates_of(m: Measurement, r: RenditionRuns) -> Rates:
    videos = r.of("video")
    return Rates(
        whole=r.whole.cpu_seconds / m.media_seconds,
        whole_video=r.whole_video.cpu_seconds / m.media_seconds,
        video_mean=sum(p.timed.cpu_seconds for p in videos) / m.media_seconds,
        video_min=min(p.timed.cpu_seconds / p.media_seconds for p in videos),
        video_max=max(p.timed.cpu_seconds / p.media_seconds for p in videos),
        segment_overhead=(sum(p.timed.cpu_seconds for p in videos) - r.whole_video.cpu_seconds) / (len(videos) - 1),
        audio=sum(p.timed.cpu_seconds for p in r.of("audio")) / m.media_seconds,
        stitch_cpu=sum(p.timed.cpu_seconds for p in r.of("stitch")) / m.media_seconds,
        stitch_wall=sum(p.timed.wall_seconds for p in r.of("stitch")) / m.media_seconds,
    )


@dataclass(frozen=True)
class Projection:
    seconds: float
    segment_seconds: int | None
    segments: int
    units: int
    concurrent: int
    cpu_ratio: float
    """Encode CPU of the segmented job over the unsegmented one's, at this plan (1 for a whole encode)."""
    ingest: float
    video_unit: float
    audio_unit: float
    ramp: float
    waves: int
    stitch: float
    stored: float
    packager: float
    ready: float
    lambda_usd: float
    mediaconvert_usd: float

    @property
    def ratio(self) -> float:
        return self.mediaconvert_usd / self.lambda_usd


def capacity(memory_mb: int) -> LambdaCapacity:
    return lambda_capacity(
        megapixels_per_vcpu_second=MEGAPIXELS_PER_VCPU_SECOND,
        memory_mb=memory_mb,
        timeout_seconds=TIMEOUT_SECONDS,
        reserve_seconds=TRANSCODE_RESERVE_SECONDS,
        segment_target_seconds=SEGMENT_TARGET_SECONDS,
    )


def planned_segments(probe: Probe, seconds: float, memory_mb: int) -> tuple[int | None, int]:
    """Ingest's plan for `seconds` of this source: (segment seconds or None for a whole encode, segment count)."""
    cap = capacity(memory_mb)
    planned = plan_renditions(probe.width or 0, probe.height or 0, DEFAULT_RENDITIONS)
    per_media_second = estimated_encode_seconds(
        duration_ms=1000,
        frame_rate=probe.frameRate,
        source_pixels=(probe.codedWidth or probe.width or 0) * (probe.codedHeight or probe.height or 0),
        planned=planned,
        megapixels_per_second=cap.megapixels_per_second,
    )
    duration_ms = round(seconds * 1000)
    length = segment_seconds(
        duration_ms=duration_ms,
        encode_seconds_per_media_second=per_media_second,
        target_seconds=cap.segment_target_seconds,
    )
    return length, (1 if length is None else segment_count(duration_ms, length))


def project(m: Measurement, seconds: float, a: Assumptions, slowdown: float) -> Projection:
    """`slowdown`: 1 for the raw projection, 1 / SAFETY_FACTOR for the conservative one."""
    vcpus = lambda_vcpus(a.memory_mb)
    gb = a.memory_mb / 1024

    def transfer(megabytes: float) -> float:
        return megabytes / a.s3_mb_per_second

    source_mb = seconds * a.source_mbps / 8
    length, count = planned_segments(m.probe, seconds, a.memory_mb)
    renditions = [(r.plan, rates_of(m, r)) for r in m.renditions]
    per_queue_units = 1 if length is None else count + (1 if m.probe.hasAudio else 0)
    per_queue = max(1, min(a.queue_concurrency, a.concurrency // max(1, len(renditions)), per_queue_units))
    waves = math.ceil(per_queue_units / per_queue)
    ramp = max(0, per_queue - SQS_INITIAL_CONCURRENCY) / SQS_SCALE_PER_MINUTE * 60
    ingest = a.cold_start_seconds + transfer(source_mb) + m.ingest_wall_seconds * slowdown

    gb_seconds = requests = segmented_cpu = whole_cpu = 0.0
    video_slowest = audio_slowest = stitch_slowest = path_slowest = 0.0
    rendition_mb = 0.0
    for plan, rate in renditions:
        video_mb = seconds * plan.maxVideoBitrateKbps / 8 / 1000
        audio_mb = seconds * plan.audioBitrateKbps / 8 / 1000 if m.probe.hasAudio else 0.0
        rendition_mb += video_mb + audio_mb
        fixed = whole_read = a.cold_start_seconds + transfer(source_mb)
        if length is None:
            unit = fixed + rate.whole * seconds * slowdown / vcpus + transfer(video_mb + audio_mb)
            gb_seconds += unit * gb
            requests += 1
            video_slowest, path_slowest = max(video_slowest, unit), max(path_slowest, unit)
            continue
        whole_cpu += rate.whole * seconds
        segmented_cpu += (rate.whole_video + rate.audio + rate.stitch_cpu) * seconds
        segmented_cpu += (count - 1) * max(0.0, rate.segment_overhead)
        if a.window_reads:
            fixed = a.cold_start_seconds + transfer(source_mb * min(1.0, (length + WINDOW_EXTRA_SECONDS) / seconds))
        video_unit = (
            fixed + rate.video_max * length * slowdown / vcpus + transfer(length * plan.maxVideoBitrateKbps / 8000)
        )
        audio_read = whole_read
        if a.audio_reads:
            # One ranged GET per one-second chunk of audio, AUDIO_GET_THREADS at a time.
            prelude_mb = source_mb * min(1.0, PRELUDE_SECONDS / seconds)
            audio_gets = seconds * AUDIO_GET_SECONDS / AUDIO_GET_THREADS
            audio_read = a.cold_start_seconds + transfer(prelude_mb + seconds * SOURCE_AUDIO_KBPS / 8000) + audio_gets
        audio_unit = audio_read + rate.audio * seconds * slowdown + transfer(audio_mb) if m.probe.hasAudio else 0.0
        unit = max(video_unit, audio_unit)
        stitch = (
            a.cold_start_seconds
            + transfer(video_mb + audio_mb)
            + rate.stitch_wall * seconds * slowdown
            + transfer(video_mb + audio_mb)
        )
        billed_videos = count * fixed + rate.video_mean * seconds * slowdown / vcpus + transfer(video_mb)
        gb_seconds += (billed_videos + audio_unit + stitch) * gb
        requests += count + (1 if m.probe.hasAudio else 0) + 1
        video_slowest, audio_slowest = max(video_slowest, video_unit), max(audio_slowest, audio_unit)
        stitch_slowest = max(stitch_slowest, stitch)
        path_slowest = max(path_slowest, ramp + waves * unit + a.hop_seconds + stitch)
    stored = a.hop_seconds + ingest + a.hop_seconds + path_slowest
    packager = (
        a.cold_start_seconds
        + transfer(rendition_mb)
        + m.packager_cpu_seconds / m.media_seconds * seconds * slowdown / lambda_vcpus(a.packager_memory_mb)
        + transfer(rendition_mb)
    )
    units = len(renditions) * per_queue_units
    return Projection(
        seconds=seconds,
        segment_seconds=length,
        segments=count,
        units=units,
        concurrent=min(units, len(renditions) * per_queue),
        cpu_ratio=segmented_cpu / whole_cpu if whole_cpu else 1.0,
        ingest=ingest,
        video_unit=video_slowest,
        audio_unit=audio_slowest,
        ramp=ramp if length is not None else 0.0,
        waves=waves,
        stitch=stitch_slowest,
        stored=stored,
        packager=packager,
        ready=stored + a.hop_seconds + packager,
        lambda_usd=gb_seconds * LAMBDA_USD_PER_GB_SECOND + requests * LAMBDA_USD_PER_REQUEST,
        mediaconvert_usd=sum(seconds / 60 * mediaconvert_usd_per_output_minute(plan.height) for plan, _ in renditions),
    )


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{round(seconds % 60):02d}" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def _pair(raw: float, conservative: float) -> str:
    return f"{raw:.0f} / {conservative:.0f}"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds / 60:g} min"


def report_projection(m: Measurement, a: Assumptions) -> None:
    vcpus = lambda_vcpus(a.memory_mb)
    conservative = 1 / SAFETY_FACTOR
    print(
        f"\nprojection: Lambda {a.memory_mb} MB ({vcpus:.2f} vCPUs), account concurrency {a.concurrency}, "
        f"each rendition queue at most {a.queue_concurrency}; S3 {a.s3_mb_per_second:g} MB/s per function; source "
        f"{a.source_mbps:g} Mbit/s; cold start {a.cold_start_seconds:g} s; {a.hop_seconds:g} s per hand-over; "
        f"packager {a.packager_memory_mb} MB. raw = measured CPU s / vCPUs; cons. = raw compute / {SAFETY_FACTOR} "
        "(ingest's SAFETY_FACTOR)"
    )
    print(
        "segment plan: ingest's lambda_capacity(44 Mpx/vCPU-s, "
        f"{a.memory_mb} MB, 900 s, reserve 30 s, target 60 s) + estimated_encode_seconds + segment_seconds\n"
    )
    header = (
        f"{'media':<7}{'segments':>12}{'units':>6}{'at once':>8}{'stored raw/cons.':>18}{'ready raw/cons.':>17}"
        f"{'Lambda $ raw/cons.':>20}{'MediaConvert $':>16}{'MC / Lambda':>13}{'CPU ratio':>11}"
    )
    print(header)
    rows = []
    for minutes in PROJECTED_MINUTES:
        raw, cons = project(m, minutes * 60, a, 1.0), project(m, minutes * 60, a, conservative)
        rows.append((raw, cons))
        plan = "whole" if raw.segment_seconds is None else f"{raw.segments} x {raw.segment_seconds} s"
        stored, ready = f"{_clock(raw.stored)} / {_clock(cons.stored)}", f"{_clock(raw.ready)} / {_clock(cons.ready)}"
        print(
            f"{_duration(raw.seconds):<7}{plan:>12}{raw.units:>6}{raw.concurrent:>8}{stored:>18}{ready:>17}"
            f"{f'{raw.lambda_usd:.4f} / {cons.lambda_usd:.4f}':>20}{raw.mediaconvert_usd:>16.4f}"
            f"{f'{raw.ratio:.1f} / {cons.ratio:.1f}':>13}{raw.cpu_ratio:>11.3f}"
        )
    print("\ncritical path, seconds (raw / cons.):")
    print(
        f"{'media':<7}{'ingest':>12}{'ramp':>6}{'waves':>6}{'video unit':>14}{'audio unit':>14}{'stitch':>12}"
        f"{'packager':>12}"
    )
    for raw, cons in rows:
        print(
            f"{_duration(raw.seconds):<7}{_pair(raw.ingest, cons.ingest):>12}{raw.ramp:>6.0f}{raw.waves:>6}"
            f"{_pair(raw.video_unit, cons.video_unit):>14}{_pair(raw.audio_unit, cons.audio_unit):>14}"
            f"{_pair(raw.stitch, cons.stitch):>12}{_pair(raw.packager, cons.packager):>12}"
        )
    raw, cons = rows[-1]
    print(f"\n1 h goal: ready < {GOAL_READY_SECONDS // 60} min, Lambda < 1/{GOAL_PRICE_RATIO} of MediaConvert's price")
    for label, p in (("raw", raw), ("conservative", cons)):
        time_ok = p.stored < GOAL_READY_SECONDS
        ready_ok = p.ready < GOAL_READY_SECONDS
        price_ok = p.ratio > GOAL_PRICE_RATIO
        print(
            f"  {label:<13} renditions stored {_clock(p.stored)} ({'holds' if time_ok else 'MISSES'}), "
            f"ready {_clock(p.ready)} ({'holds' if ready_ok else 'MISSES'}); "
            f"1/{p.ratio:.1f} of the price ({'holds' if price_ok else 'MISSES'})"
        )
    what_ifs = {
        # What the transfers cost: the same projection with free, instant S3 (every other assumption kept).
        "without S3 transfer time (all else equal)": replace(a, s3_mb_per_second=math.inf),
        "if every video unit downloaded the whole source (a container without a packet index)": replace(
            a, window_reads=False
        ),
        "if the source's audio is in ~1 s chunks (as phones write it), so that the audio unit reads only it": replace(
            a, audio_reads=True
        ),
    }
    for label, assumptions in what_ifs.items():
        wr, wc = project(m, 3600, assumptions, 1.0), project(m, 3600, assumptions, conservative)
        print(
            f"  {label}: stored {_clock(wr.stored)} / {_clock(wc.stored)}, ready {_clock(wr.ready)} / "
            f"{_clock(wc.ready)}, 1/{wr.ratio:.1f} / 1/{wc.ratio:.1f} of the price"
        )
    per_queue = raw.units // max(1, len(m.renditions))
    if per_queue > STACK_QUEUE_CONCURRENCY:
        print(
            f"  (1 h needs each rendition queue to run {per_queue} functions at once: the stack's "
            f"maxConcurrency.transcode defaults to {STACK_QUEUE_CONCURRENCY}, 200 in prod; --queue-concurrency "
            f"{STACK_QUEUE_CONCURRENCY} projects that)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the generated clip")
    parser.add_argument("--segment-seconds", type=int, default=12, help="segment length measured (a multiple of 2)")
    parser.add_argument("--concurrency", type=int, default=1000, help="the account's Lambda concurrency")
    parser.add_argument("--queue-concurrency", type=int, default=1000, help="maxConcurrency of each rendition queue")
    parser.add_argument("--memory-mb", type=int, default=4096, help="transcodeMemoryMb")
    parser.add_argument("--packager-memory-mb", type=int, default=2048, help="packagerMemoryMb")
    parser.add_argument("--cpus", type=int, default=min(2, len(os.sched_getaffinity(0))), help="CPUs ffmpeg may use")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command; the least CPU time counts")
    parser.add_argument("--s3-mb-per-second", type=float, default=80.0, help="S3 throughput of one function")
    parser.add_argument("--source-mbps", type=float, default=16.0, help="bitrate of the projected 1080p30 source")
    parser.add_argument("--cold-start-seconds", type=float, default=1.0)
    parser.add_argument("--hop-seconds", type=float, default=1.0, help="latency of each event/queue hand-over")
    args = parser.parse_args(argv)
    if args.segment_seconds <= 0 or args.segment_seconds % 2:
        parser.error("--segment-seconds must be a positive multiple of the 2 s GOP")
    started = time.perf_counter()

    def progress(text: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    m = measure(args.seconds, args.segment_seconds, args.cpus, args.repeat, progress)
    report_measurement(m)
    assumptions = Assumptions(
        memory_mb=args.memory_mb,
        concurrency=args.concurrency,
        queue_concurrency=args.queue_concurrency,
        s3_mb_per_second=args.s3_mb_per_second,
        source_mbps=args.source_mbps,
        cold_start_seconds=args.cold_start_seconds,
        hop_seconds=args.hop_seconds,
        packager_memory_mb=args.packager_memory_mb,
    )
    report_projection(m, assumptions)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
