"""The packager's work on the renditions the encode bench made: its own ffmpeg commands, timed.

The packager (functions/packager/service.py) runs the same steps after either engine: each rendition remuxed with
`-c copy` into a CMAF HLS variant (`hls_args`), the poster (`luma_scan_args` over the smallest rendition from 10% of
the duration until a frame is not blank, then `poster_args` on the largest) and the thumbnail sprite (`sprite_args`,
keyframes of the smallest rendition, laid out by `plan_sprite` with the packager's default settings). The argv come
from those functions, never re-typed here. Each step runs pinned to the bench's CPUs, `repeat` times; the fastest
counts. What the packager does besides ffmpeg (ffprobe of each rendition and of its images, playlists and VTT written
in Python, S3 downloads and uploads) is not timed.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from functions.common.media_tools import ffmpeg_path, tool_env
from functions.contracts.playback import POSTER, SPRITE
from functions.packager.adapters import FfmpegTools
from functions.packager.service import (
    LumaScan,
    RenditionMedia,
    first_visible_frame,
    hls_args,
    luma_scan_args,
    plan_sprite,
    poster_args,
    poster_frame_ms,
    poster_start_ms,
    poster_windows,
    sprite_args,
)
from functions.packager.settings import PackagerSettings


def pin_to_cpus(cpus: int) -> None:
    """Confine the calling process (a child, from `preexec_fn`) to the first `cpus` CPUs it may use."""
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cpus]))


@dataclass(frozen=True)
class Timed:
    wall_seconds: float
    cpu_seconds: float
    """User plus system time of the ffmpeg processes."""


@dataclass(frozen=True)
class PackagerStep:
    """One step of the packager, the fastest of its runs."""

    step: str
    wall_seconds: float
    cpu_seconds: float
    commands: int
    """ffmpeg processes the step ran (the poster scans until it finds a frame that is not blank)."""


def run_pinned(args: list[str], cpus: int, *, on_stdout: Callable[[bytes], None] | None = None) -> Timed:
    """Run one ffmpeg command pinned to `cpus` CPUs; its wall time and the CPU time it used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    stdout = subprocess.PIPE if on_stdout else subprocess.DEVNULL
    done = subprocess.run(args, check=True, env=tool_env(), stdout=stdout, preexec_fn=lambda: pin_to_cpus(cpus))
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if on_stdout:
        on_stdout(done.stdout)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Timed(wall, cpu)


def _total(runs: Sequence[Timed]) -> Timed:
    return Timed(sum(r.wall_seconds for r in runs), sum(r.cpu_seconds for r in runs))


def _fastest(step: str, run_once: Callable[[], list[Timed]], repeat: int) -> PackagerStep:
    runs = [run_once() for _ in range(repeat)]
    best = min(runs, key=lambda commands: _total(commands).wall_seconds)
    total = _total(best)
    return PackagerStep(step, total.wall_seconds, total.cpu_seconds, len(best))


def _hls(source: Path, folder: Path, media: RenditionMedia, cpus: int) -> list[Timed]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    args = hls_args(ffmpeg_path(), source, folder, has_audio=media.audioCodec is not None)
    return [run_pinned(args, cpus)]


def _poster(largest: Path, smallest: Path, duration_ms: int, output: Path, cpus: int) -> list[Timed]:
    """As `Packager._poster`: scan windows of the smallest rendition until a frame is not blank, then draw that
    instant from the largest."""
    runs, at_ms = [], None
    for start, length in poster_windows(duration_ms):
        scan = LumaScan()
        runs.append(run_pinned(luma_scan_args(ffmpeg_path(), smallest, start, length), cpus, on_stdout=scan.feed))
        index = first_visible_frame(scan.frames)
        if index is not None:
            at_ms = poster_frame_ms(start, index)
            break
    at_ms = poster_start_ms(duration_ms) if at_ms is None else at_ms
    runs.append(run_pinned(poster_args(ffmpeg_path(), largest, at_ms, output), cpus))
    return runs


def _sprite(smallest: Path, media: RenditionMedia, output: Path, cpus: int) -> list[Timed]:
    layout = plan_sprite(
        media.durationMs,
        media.width,
        media.height,
        frame_rate=media.frameRate or 0.0,
        interval_seconds=PackagerSettings.thumbnail_interval_seconds,
        max_tiles=PackagerSettings.max_sprite_tiles,
        tile_width=PackagerSettings.sprite_tile_width,
    )
    output.parent.mkdir(parents=True, exist_ok=True)
    return [run_pinned(sprite_args(ffmpeg_path(), smallest, layout, output), cpus)]


def measure_packager(renditions: Mapping[str, Path], work: Path, cpus: int, repeat: int = 1) -> list[PackagerStep]:
    """The packager's ffmpeg steps on `renditions` (name -> MP4, in ladder order), in the order it runs them."""
    media = {name: FfmpegTools().read_rendition(path) for name, path in renditions.items()}
    largest = max(media, key=lambda name: media[name].width * media[name].height)
    smallest = min(media, key=lambda name: media[name].width * media[name].height)
    steps = [
        _fastest(f"hls {name}", partial(_hls, path, work / "hls" / name, media[name], cpus), repeat)
        for name, path in renditions.items()
    ]
    duration_ms = media[largest].durationMs
    poster = partial(_poster, renditions[largest], renditions[smallest], duration_ms, work / POSTER, cpus)
    sprite = partial(_sprite, renditions[smallest], media[smallest], work / SPRITE, cpus)
    return [*steps, _fastest("poster", poster, repeat), _fastest("sprite", sprite, repeat)]
