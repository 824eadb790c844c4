"""How fast the Lambda engine encodes, and what a media minute costs on each engine: measured in one run.

Generates a 1080p30 clip with a tone, plans the ladder for it exactly as ingest does, and encodes every rendition
with the transcoder's own command (`functions/transcode/service.py`), pinned to `--cpus` CPUs. For each
rendition it prints the realtime factor (media seconds / wall seconds) and the throughput in the unit ingest's
estimate uses (source + output megapixels per wall second per CPU, see functions/ingest/service.py). Then it runs
the packager's own ffmpeg commands on those renditions (bench/packager_speed.py: the HLS remux of each, the poster,
the sprite), pinned the same way, and prints the cost model of the README ("Engines: Lambda or MediaConvert") with
those numbers:

    python -m bench.encode_speed [--seconds 20] [--repeat 3] [--cpus 2] [--memory-mb 4096]
        [--packager-memory-mb 2048] [--renditions JSON] [--preset veryfast]

Each rendition is encoded, and each packager step run, `--repeat` times and the fastest run counts: on a shared
machine the other runs measure the neighbours, not ffmpeg.

Both engines pay for the packager: the Lambda engine is the transcoders' GB-seconds plus the packager's, the
MediaConvert engine its MP4 outputs (one output minute per rendition; it makes nothing else) plus the packager's.
Lambda gives a function vCPUs in proportion to its memory (one per 1,769 MB). A step that took `wall` seconds on
`--cpus` pinned CPUs is counted as `wall x cpus` CPU-seconds, which the function's vCPUs get through in
`wall x cpus / vCPUs` seconds of its duration: the same conversion for a transcoder and for the packager (for a
step that keeps fewer CPUs busy, such as the remux, it is an upper bound; the packager table prints the CPU time
ffmpeg actually used beside it). Prices are the published list prices below: check them for your region.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.packager_speed import PackagerStep, measure_packager, pin_to_cpus
from functions.common.media_tools import ffmpeg_path, tool_env
from functions.common.renditions import DEFAULT_RENDITIONS, Rendition, parse_renditions
from functions.contracts.fanout import TRANSCODE_RESERVE_SECONDS, EncodePlan
from functions.contracts.jobs import Probe
from functions.ingest.adapters import probe_media
from functions.ingest.service import LAMBDA_MB_PER_VCPU, SAFETY_FACTOR, lambda_vcpus, plan_renditions
from functions.transcode.service import EncoderSettings, transcode_args
from functions.transcode.settings import X264_PRESETS, TranscodeSettings

# Published list prices, us-east-1 (check your region; prices as published on the AWS pricing pages in 2025).
LAMBDA_USD_PER_GB_SECOND = 0.0000166667  # x86, first 6 billion GB-seconds a month
LAMBDA_USD_PER_REQUEST = 0.20 / 1_000_000
MEDIACONVERT_USD_PER_NORMALIZED_MINUTE = 0.0075  # Basic tier (AVC, single pass), first volume band
# Normalized-minute multipliers of the Basic tier by output resolution (at most 30 fps): SD < 720 lines, HD to 1080.
MEDIACONVERT_RESOLUTION_MULTIPLIER = ((719, 1.0), (1080, 2.0), (2160, 4.0))
SOURCE_WIDTH, SOURCE_HEIGHT, SOURCE_FPS = 1920, 1080, 30


@dataclass(frozen=True)
class Measured:
    rendition: str
    width: int
    height: int
    media_seconds: float
    wall_seconds: float
    cpus: int

    @property
    def realtime_factor(self) -> float:
        return self.media_seconds / self.wall_seconds

    @property
    def megapixels_per_cpu_second(self) -> float:
        """Source plus output pixels per wall second per CPU: the throughput of ingest's estimate."""
        pixels = SOURCE_WIDTH * SOURCE_HEIGHT + self.width * self.height
        return pixels * SOURCE_FPS * self.media_seconds / self.wall_seconds / 1e6 / self.cpus


def make_source(path: Path, seconds: float) -> Path:
    """A 1080p30 H.264/AAC MP4 of a moving test pattern and a tone, like a phone upload."""
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", f"testsrc2=size={SOURCE_WIDTH}x{SOURCE_HEIGHT}:rate={SOURCE_FPS}:duration={seconds}"]
    args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    subprocess.run([*args, "-t", str(seconds), str(path)], check=True, env=tool_env())
    return path


def encode(
    source: Path, work: Path, plan: EncodePlan, probe: Probe, cpus: int, *, preset: str = TranscodeSettings.preset
) -> float:
    """Wall seconds of the transcoder's command for one rendition, pinned to `cpus` CPUs."""
    encoder = EncoderSettings(preset=preset, crf=TranscodeSettings.crf, threads=cpus)
    args = transcode_args(ffmpeg_path(), source, work / f"{plan.name}.mp4", plan=plan, probe=probe, encoder=encoder)
    started = time.perf_counter()
    subprocess.run(args, check=True, env=tool_env(), stdout=subprocess.DEVNULL, preexec_fn=lambda: pin_to_cpus(cpus))
    return time.perf_counter() - started


def measure(
    ladder: Sequence[Rendition], seconds: float, cpus: int, repeat: int = 1, *, preset: str = TranscodeSettings.preset
) -> tuple[list[Measured], list[PackagerStep]]:
    """Every rendition's encode, then the packager's steps on the renditions encoded."""
    with tempfile.TemporaryDirectory(prefix="encode-speed-") as tmp:
        work = Path(tmp)
        source = make_source(work / "source.mp4", seconds)
        probe = probe_media(source, size_bytes=source.stat().st_size).probe
        results, renditions = [], {}
        for item in plan_renditions(probe.width, probe.height, ladder):
            if item["status"] != "QUEUED":
                continue
            plan = EncodePlan(**{k: item[k] for k in ("name", "width", "height")}, **_bitrates(item))
            wall = min(encode(source, work, plan, probe, cpus, preset=preset) for _ in range(repeat))
            results.append(Measured(plan.name, plan.width, plan.height, probe.durationMs / 1000, wall, cpus))
            renditions[plan.name] = work / f"{plan.name}.mp4"
        return results, measure_packager(renditions, work / "package", cpus, repeat)


def _bitrates(item: dict) -> dict[str, int]:
    return {"maxVideoBitrateKbps": item["maxVideoBitrateKbps"], "audioBitrateKbps": item["audioBitrateKbps"]}


def mediaconvert_usd_per_output_minute(height: int) -> float:
    multiplier = next((m for limit, m in MEDIACONVERT_RESOLUTION_MULTIPLIER if height <= limit), 4.0)
    return MEDIACONVERT_USD_PER_NORMALIZED_MINUTE * multiplier


def lambda_gb_seconds_per_media_minute(wall_seconds: float, media_seconds: float, cpus: int, memory_mb: int) -> float:
    """GB-seconds a function of `memory_mb` bills per media minute for work that took `wall_seconds` on `cpus` CPUs
    for `media_seconds` of media: `wall x cpus` CPU-seconds, through the function's vCPUs."""
    duration_per_media_minute = wall_seconds * cpus / lambda_vcpus(memory_mb) * 60 / media_seconds
    return duration_per_media_minute * memory_mb / 1024


def report_packager(steps: Sequence[PackagerStep], media_seconds: float, cpus: int, memory_mb: int) -> float:
    """Print the packager's steps; its GB-seconds per media minute."""
    print(f"\npackager at {memory_mb} MB: {lambda_vcpus(memory_mb):.2f} vCPUs, {memory_mb / 1024:g} GB")
    print(f"{'step':<12}{'ffmpeg runs':>12}{'wall s':>8}{'CPU s':>7}{'GB-s / media min':>18}")
    total = 0.0
    for s in steps:
        gb_seconds = lambda_gb_seconds_per_media_minute(s.wall_seconds, media_seconds, cpus, memory_mb)
        total += gb_seconds
        print(f"  {s.step:<10}{s.commands:>12}{s.wall_seconds:>8.2f}{s.cpu_seconds:>7.2f}{gb_seconds:>18.2f}")
    wall, cpu = sum(s.wall_seconds for s in steps), sum(s.cpu_seconds for s in steps)
    print(f"  {'total':<10}{'':>12}{wall:>8.2f}{cpu:>7.2f}{total:>18.2f}")
    print(f"  (GB-s = wall x {cpus} CPUs / {lambda_vcpus(memory_mb):.2f} vCPUs x {memory_mb / 1024:g} GB, per 60 s)")
    return total


def report(
    results: Sequence[Measured],
    packager: Sequence[PackagerStep],
    memory_mb: int,
    packager_memory_mb: int,
    timeout_seconds: int,
) -> None:
    vcpus = lambda_vcpus(memory_mb)
    gb = memory_mb / 1024
    print(f"{'rendition':<10}{'size':>11}{'media s':>9}{'wall s':>8}{'realtime x':>12}{'Mpx/s/CPU':>11}")
    for r in results:
        size = f"{r.width}x{r.height}"
        print(
            f"{r.rendition:<10}{size:>11}{r.media_seconds:>9.1f}{r.wall_seconds:>8.2f}"
            f"{r.realtime_factor:>12.2f}{r.megapixels_per_cpu_second:>11.1f}"
        )
    slowest = min(r.megapixels_per_cpu_second for r in results)
    rate_config = max(1, math.floor(slowest * SAFETY_FACTOR))
    print(f"\nLambda at {memory_mb} MB: {vcpus:.2f} vCPUs ({LAMBDA_MB_PER_VCPU} MB each), {gb:g} GB")
    packager_gb_seconds = report_packager(packager, results[0].media_seconds, results[0].cpus, packager_memory_mb)
    print("\nper media minute      Lambda GB-s   Lambda $   MediaConvert $ (MP4 only)")
    lambda_total = mediaconvert_total = 0.0
    for r in results:
        gb_seconds = lambda_gb_seconds_per_media_minute(r.wall_seconds, r.media_seconds, r.cpus, memory_mb)
        lambda_usd = gb_seconds * LAMBDA_USD_PER_GB_SECOND + LAMBDA_USD_PER_REQUEST
        mediaconvert_usd = mediaconvert_usd_per_output_minute(r.height)
        lambda_total += lambda_usd
        mediaconvert_total += mediaconvert_usd
        print(f"  {r.rendition:<19}{gb_seconds:>12.1f}{lambda_usd:>11.5f}{mediaconvert_usd:>17.5f}")
    # Both engines end with the same packager: its line is on both sides.
    packager_usd = packager_gb_seconds * LAMBDA_USD_PER_GB_SECOND + LAMBDA_USD_PER_REQUEST
    lambda_total += packager_usd
    mediaconvert_total += packager_usd
    packager = f"packager {packager_memory_mb} MB"
    print(f"  {packager:<19}{packager_gb_seconds:>12.1f}{packager_usd:>11.5f}{packager_usd:>17.5f}")
    print(f"  {'total':<19}{'':>12}{lambda_total:>11.5f}{mediaconvert_total:>17.5f}")
    print(f"  MediaConvert costs {mediaconvert_total / lambda_total:.1f}x Lambda per media minute")
    # The ceiling ingest enforces, for this source: the slowest rendition must fit the budget at the safe rate.
    top = max(results, key=lambda r: r.width * r.height)
    budget = timeout_seconds - TRANSCODE_RESERVE_SECONDS
    megapixels_per_media_second = (SOURCE_WIDTH * SOURCE_HEIGHT + top.width * top.height) * SOURCE_FPS / 1e6
    ceiling = math.floor(budget * rate_config * vcpus / megapixels_per_media_second)
    print(f"\nsuggested lambdaEncodeMegapixelsPerVcpuSecond: {rate_config}  (slowest x {SAFETY_FACTOR})")
    print(f"one function's ceiling for a {SOURCE_WIDTH}x{SOURCE_HEIGHT}@{SOURCE_FPS} source: {ceiling} s of media")
    print("  (a longer source is encoded in segments: bench/segment_projection.py)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the generated clip")
    parser.add_argument("--repeat", type=int, default=3, help="encodes per rendition; the fastest counts")
    parser.add_argument("--cpus", type=int, default=min(2, len(os.sched_getaffinity(0))), help="CPUs ffmpeg may use")
    parser.add_argument("--memory-mb", type=int, default=4096, help="transcodeMemoryMb of the cost model")
    parser.add_argument("--packager-memory-mb", type=int, default=2048, help="packagerMemoryMb of the cost model")
    parser.add_argument("--timeout-seconds", type=int, default=900, help="transcodeTimeoutSeconds")
    parser.add_argument("--renditions", help="ladder as JSON (default: the project's default ladder)")
    parser.add_argument(
        "--preset", default=TranscodeSettings.preset, choices=X264_PRESETS, help="the stack's x264Preset"
    )
    args = parser.parse_args(argv)
    ladder = parse_renditions(args.renditions) if args.renditions else list(DEFAULT_RENDITIONS)
    results, packager = measure(ladder, args.seconds, args.cpus, args.repeat, preset=args.preset)
    source = f"{SOURCE_WIDTH}x{SOURCE_HEIGHT}@{SOURCE_FPS}"
    print(
        f"source {source}, {args.seconds:g} s; x264 {args.preset}; ffmpeg pinned to {args.cpus} CPUs; "
        f"fastest of {args.repeat}\n"
    )
    report(results, packager, args.memory_mb, args.packager_memory_mb, args.timeout_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
