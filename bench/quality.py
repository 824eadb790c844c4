"""Quality per bit of the default ladder against AWS's Video on Demand MP4 presets: VMAF and bitrate in one run.

Generates three 1080p30 sources, stored losslessly (x264 `-qp 0`, 4:2:0) so that they are the reference:

- `low-motion`: a slow pan (16 px/s across, 6 px/s down) over a still of smooth gradients and soft fine detail (a
  Mandelbrot view rendered at 1080p and enlarged 1.5x);
- `high-motion`: a fast pan back and forth over the same still (up to about 1,100 px/s) under temporal noise (grain);
- `screen`: a code editor: title bar, side bar with icons, monospace text (`drawtext`) scrolling at 60 px/s.

For each source and each rendition of `DEFAULT_RENDITIONS`, planned as ingest plans it, it encodes:

- `ours`: the transcoder's own command (`functions/transcode/service.py` `transcode_args`: x264 `veryfast`, or
  `--preset`, CRF 23, `-maxrate` the ladder's cap, `-bufsize` twice that, 2 s closed GOPs);
- `VOD`: the Video on Demand on AWS solution's MP4 presets (`_Mp4_Avc_Aac_16x9_1280x720p_4.5Mbps_qvbr`,
  `_Mp4_Avc_Aac_16x9_1920x1080p_6Mbps_qvbr`: H.264 High, QVBR quality 8 under MaxBitrate 4.5 / 6 Mbit/s, HRD buffer
  twice that, 2 s closed GOPs, 3 / 1 B-frames, single pass HQ) as x264 can make them: `--vod-preset` (`medium`), ABR
  at the preset's MaxBitrate with that VBV, the same GOPs and B-frames. MediaConvert is not available here, and QVBR
  spends less than MaxBitrate on easy content: this is the preset at its bitrate, the most it spends and the quality
  that buys.
- `scaled only`: the rendition's size stored losslessly, for renditions smaller than the source: the VMAF the
  downscale alone leaves, a ceiling for any encode at that size.

Then a per-title choice, as ingest could make it on a sample: on the first `--sample-seconds`, a bisection over
`--crf-range` (at most 5 encodes for 12-34) finds the highest CRF whose VMAF, with the transcoder's command and the
ladder's cap, is at most `--tolerance` below the VOD encode's of the same sample (a sample is compared with a sample:
the VBV buffer lets a short clip overshoot its cap, both encoders alike). When no CRF reaches it and the VOD preset's
MaxBitrate is above the ladder's cap, the search runs again under that MaxBitrate; when still none does, the pick is the
closest (the lowest CRF under the higher cap), marked "not reached". The pick is then encoded on the whole clip. The
"one setting per rendition" line applies, per rendition, the lowest CRF and the highest cap picked for the contents
that reached the VOD: what a fixed setting per rendition needs.

VMAF: libvmaf of the bundled ffmpeg, model `vmaf_v0.6.1` (built in; trained for 1080p viewing at three picture
heights), `n_threads` = `--cpus`, every frame, pooled mean. Each encode is scaled back to 1920x1080 with bicubic and
compared with the 1080p source: a 720p rendition is watched full screen on a 1080p display, and the model predicts
quality at that size (a reference scaled down to 720p would hide what the downscale loses). Bitrates are the video
stream's average (ffprobe `bit_rate`; the sources have no audio). Encodes and VMAF are pinned to `--cpus` CPUs.

    python -m bench.quality [--seconds 10] [--cpus 2] [--sample-seconds 3] [--crf-range 12-34] [--tolerance 0.5]
        [--preset veryfast] [--vod-preset medium]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.encode_speed import _bitrates
from bench.packager_speed import pin_to_cpus
from functions.common.media_tools import ffmpeg_path, ffprobe_path, tool_env
from functions.common.renditions import DEFAULT_RENDITIONS
from functions.contracts.fanout import EncodePlan
from functions.contracts.jobs import Probe
from functions.ingest.adapters import probe_media
from functions.ingest.service import plan_renditions
from functions.transcode.service import EncoderSettings, keyframe_interval, transcode_args
from functions.transcode.settings import TranscodeSettings

WIDTH, HEIGHT, FPS = 1920, 1080, 30
CONTENTS = ("low-motion", "high-motion", "screen")
VMAF_MODEL = "vmaf_v0.6.1"
# The still both motion sources pan over: a Mandelbrot view with smooth gradients and fine detail, larger than 1080p.
STILL_WIDTH, STILL_HEIGHT = 2880, 1620
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSansMono.ttf",
)


@dataclass(frozen=True)
class VodPreset:
    """An MP4 output preset of the Video on Demand on AWS solution (source/custom-resource/lib/mediaconvert/presets)."""

    name: str
    max_kbps: int
    hrd_buffer_kbps: int
    b_frames: int


VOD_PRESETS = {
    720: VodPreset("_Mp4_Avc_Aac_16x9_1280x720p_4.5Mbps_qvbr", 4500, 9000, 3),
    1080: VodPreset("_Mp4_Avc_Aac_16x9_1920x1080p_6Mbps_qvbr", 6000, 12000, 1),
}


@dataclass(frozen=True)
class Point:
    """One encode: its average video bitrate and its VMAF against the source."""

    kbps: float
    vmaf: float


# --- sources ------------------------------------------------------------------------------------------------------


def _run(args: Sequence[str], cpus: int) -> None:
    subprocess.run(
        list(args), check=True, env=tool_env(), stdout=subprocess.DEVNULL, preexec_fn=lambda: pin_to_cpus(cpus)
    )


def _lossless() -> list[str]:
    return ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", "-an"]


def font_file() -> str | None:
    for path in FONT_CANDIDATES:
        if os.path.exists(path):
            return path
    found = sorted(glob.glob("/usr/share/fonts/**/*Mono*.ttf", recursive=True))
    return found[0] if found else None


def make_still(path: Path, cpus: int) -> Path:
    """Rendered at 1080p and enlarged 1.5x (lanczos): edges and gradients as soft as a camera's, no pixel-level
    detail that only a 1080p rendition could keep."""
    still = f"mandelbrot=s={WIDTH}x{HEIGHT}:start_scale=1.2:end_scale=1.2:maxiter=400"
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", still]
    args += ["-vf", f"scale={STILL_WIDTH}:{STILL_HEIGHT}:flags=lanczos"]
    _run([*args, "-frames:v", "1", str(path)], cpus)
    return path


def make_source(kind: str, work: Path, seconds: float, cpus: int) -> Path:
    """The 1080p30 reference clip of one kind of content, stored losslessly."""
    output = work / f"{kind}.mp4"
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y"]
    if kind in ("low-motion", "high-motion"):
        still = work / "still.png"
        if not still.exists():
            make_still(still, cpus)
        args += ["-loop", "1", "-framerate", str(FPS), "-t", str(seconds), "-i", str(still)]
        free_x, free_y = STILL_WIDTH - WIDTH, STILL_HEIGHT - HEIGHT
        if kind == "low-motion":
            # 16 px/s across, 6 px/s down.
            filters = f"crop={WIDTH}:{HEIGHT}:x='min(16*t,{free_x})':y='min(6*t,{free_y})'"
        else:
            # Back and forth across the still (peak about 1,100 px/s across, 400 px/s down) under changing grain.
            cx, cy = free_x // 2, free_y // 2
            pan = f"crop={WIDTH}:{HEIGHT}:x='{cx}+{cx}*sin(2*PI*t/2.5)':y='{cy}+{cy}*sin(2*PI*t/3.7)'"
            filters = f"{pan},noise=alls=12:allf=t+u"
        args += ["-vf", f"{filters},format=yuv420p"]
    else:
        args += ["-f", "lavfi", "-i", f"color=c=white:s={WIDTH}x{HEIGHT}:r={FPS}:d={seconds}"]
        args += ["-vf", screen_filters(work)]
    _run([*args, *_lossless(), "-t", str(seconds), str(output)], cpus)
    return output


def screen_filters(work: Path) -> str:
    """A code editor: side bar, scrolling monospace text, title bar; sharp-edged graphics when no font is found."""
    font = font_file()
    side = "drawbox=x=0:y=56:w=300:h=1024:c=0xe8e8e8:t=fill"
    icons = ",".join(f"drawbox=x=24:y={96 + 56 * i}:w=32:h=32:c={c}:t=fill" for i, c in enumerate(_ICON_COLOURS))
    title_bar = "drawbox=x=0:y=0:w=1920:h=56:c=0x2b2b2b:t=fill"
    if font is None:
        # No font: a grid of fine lines for text (sharp edges on flat colour); the picture scrolls 2 px a frame.
        body = "drawgrid=x=320:y=0:w=24:h=32:t=2:c=0x202020"
        return f"{side},{icons},{body},{title_bar},scroll=vertical={2 / HEIGHT:.6f},format=yuv420p"
    text = work / "code.txt"
    text.write_text(
        "\n".join(
            f"{i + 1:4d}  def handle_{i:03d}(event, context):  "
            f'return {{"status": {i * 37 % 997}, "rendition": "720p", "ok": True}}  # {i * i % 10007:05d}'
            for i in range(200)
        )
    )
    body = (
        f"drawtext=fontfile={font}:textfile={text}:expansion=none:fontsize=24:fontcolor=0x202020"
        ":line_spacing=8:x=320:y='70-60*t'"
    )
    title = (
        f"drawtext=fontfile={font}:text=media-pipeline  bench/quality.py:expansion=none:fontsize=26"
        ":fontcolor=white:x=20:y=14"
    )
    return f"{side},{icons},{body},{title_bar},{title},format=yuv420p"


_ICON_COLOURS = ("0x1e88e5", "0xe53935", "0x43a047", "0xfdd835", "0x8e24aa")


def cut(source: Path, output: Path, seconds: float) -> Path:
    """The first `seconds` of a lossless source, copied (its only keyframe is the first frame)."""
    args = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-i", str(source), "-t", str(seconds)]
    subprocess.run([*args, "-c", "copy", str(output)], check=True, env=tool_env())
    return output


# --- encodes and measurements -------------------------------------------------------------------------------------


Setting = tuple[int, int]
"""(CRF, maxrate in kbit/s) of the transcoder's command; `-bufsize` stays twice the maxrate."""


@dataclass(frozen=True)
class Clip:
    """A lossless source (or its sample), its probe and the default ladder's plans for it, as ingest makes them."""

    path: Path
    probe: Probe
    plans: dict[str, EncodePlan]

    @classmethod
    def of(cls, path: Path) -> Clip:
        probe = probe_media(path, size_bytes=path.stat().st_size).probe
        plans = {
            item["name"]: EncodePlan(**{k: item[k] for k in ("name", "width", "height")}, **_bitrates(item))
            for item in plan_renditions(probe.width, probe.height, DEFAULT_RENDITIONS)
            if item["status"] == "QUEUED"
        }
        return cls(path, probe, plans)


def encode_ours(
    source: Path, output: Path, *, plan: EncodePlan, probe: Probe, setting: Setting, preset: str, cpus: int
) -> Path:
    """The transcoder's own command, at the setting's CRF and maxrate."""
    crf, maxrate = setting
    plan = dataclasses.replace(plan, maxVideoBitrateKbps=maxrate)
    encoder = EncoderSettings(preset=preset, crf=crf, threads=cpus)
    _run(transcode_args(ffmpeg_path(), source, output, plan=plan, probe=probe, encoder=encoder), cpus)
    return output


def encode_vod(source: Path, output: Path, *, plan: EncodePlan, vod: VodPreset, x264_preset: str, cpus: int) -> Path:
    """x264's closest to the VOD preset: ABR at its MaxBitrate, its HRD buffer as VBV, its GOP and B-frames."""
    keyint = keyframe_interval(FPS)
    args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(source), "-map", "0:v:0"]
    args += ["-vf", f"scale={plan.width}:{plan.height},setsar=1", "-c:v", "libx264", "-profile:v", "high"]
    args += ["-pix_fmt", "yuv420p", "-preset", x264_preset, "-b:v", f"{vod.max_kbps}k", "-maxrate", f"{vod.max_kbps}k"]
    args += ["-bufsize", f"{vod.hrd_buffer_kbps}k", "-bf", str(vod.b_frames), "-g", str(keyint)]
    args += ["-keyint_min", str(keyint), "-sc_threshold", "0", "-threads", str(cpus), "-an", "-movflags", "+faststart"]
    _run([*args, str(output)], cpus)
    return output


def video_kbps(path: Path) -> float:
    args = [ffprobe_path(), "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=bit_rate", "-of", "json"]
    out = subprocess.run([*args, str(path)], check=True, env=tool_env(), capture_output=True, text=True).stdout
    return int(json.loads(out)["streams"][0]["bit_rate"]) / 1000


def vmaf(distorted: Path, reference: Path, cpus: int) -> float:
    """Pooled mean VMAF of `distorted` (scaled to 1080p, bicubic) against the 1080p `reference`."""
    log = distorted.with_suffix(".vmaf.json")
    graph = (
        f"[0:v]scale={WIDTH}:{HEIGHT}:flags=bicubic,format=yuv420p,setpts=PTS-STARTPTS[dis];"
        "[1:v]format=yuv420p,setpts=PTS-STARTPTS[ref];"
        f"[dis][ref]libvmaf=model=version={VMAF_MODEL}:n_threads={cpus}:log_fmt=json:log_path={log}"
    )
    args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(distorted), "-i", str(reference)]
    _run([*args, "-filter_complex", graph, "-f", "null", "-"], cpus)
    return float(json.loads(log.read_text())["pooled_metrics"]["vmaf"]["mean"])


def measure(output: Path, reference: Path, cpus: int) -> Point:
    return Point(video_kbps(output), vmaf(output, reference, cpus))


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    """One content x rendition: every measurement made for it."""

    content: str
    plan: EncodePlan
    vod: VodPreset
    vod_full: Point | None = None
    scaling_only: float | None = None
    """VMAF of the rendition's size encoded losslessly: what the downscale alone costs (None at the source's size)."""
    vod_sample: Point | None = None
    sample: dict[Setting, Point] = dataclasses.field(default_factory=dict)
    """The per-title search's encodes of the sample."""
    full: dict[Setting, Point] = dataclasses.field(default_factory=dict)
    """Whole-clip encodes."""
    pick: Setting | None = None
    unreached: bool = False
    """No CRF of the range reaches the VOD's VMAF on the sample, under the ladder's cap nor under the preset's."""

    @property
    def default(self) -> Setting:
        return (TranscodeSettings.crf, self.plan.maxVideoBitrateKbps)


def highest_crf(evaluate: Callable[[int], Point], target: float, lowest: int, highest: int) -> int | None:
    """The highest CRF in [lowest, highest] whose VMAF reaches `target`, by bisection (VMAF falls as the CRF rises);
    None when `lowest` does not. At most log2(highest - lowest + 1) + 1 evaluations."""
    found = None
    while lowest <= highest:
        middle = (lowest + highest + 1) // 2
        if evaluate(middle).vmaf >= target:
            found, lowest = middle, middle + 1
        else:
            highest = middle - 1
    return found


def choose(cell: Cell, evaluate: Callable[[Setting], Point], crf_range: tuple[int, int], tolerance: float) -> None:
    """Per-title pick: the highest CRF whose sample VMAF is within `tolerance` of the VOD encode's, under the ladder's
    cap; under the preset's MaxBitrate when that is higher and no CRF reaches it under the ladder's. When none does,
    the closest: the lowest CRF under the higher cap, flagged `unreached`."""
    target = cell.vod_sample.vmaf - tolerance
    caps = sorted({cell.plan.maxVideoBitrateKbps, max(cell.plan.maxVideoBitrateKbps, cell.vod.max_kbps)})
    for maxrate in caps:
        crf = highest_crf(lambda c, m=maxrate: evaluate((c, m)), target, *crf_range)
        if crf is not None:
            cell.pick = (crf, maxrate)
            return
    cell.pick, cell.unreached = (crf_range[0], caps[-1]), True


@dataclass(frozen=True)
class Options:
    seconds: float
    sample_seconds: float
    crf_range: tuple[int, int]
    tolerance: float
    cpus: int
    vod_preset: str
    preset: str = TranscodeSettings.preset
    """x264 preset of our encodes (the transcoder's `FFMPEG_PRESET`)."""


def run(options: Options) -> list[Cell]:
    cpus = options.cpus
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="quality-") as tmp:
        work = Path(tmp)
        sources: dict[str, Clip] = {}
        for kind in CONTENTS:
            started = time.perf_counter()
            source = sources[kind] = Clip.of(make_source(kind, work, options.seconds, cpus))
            sample = Clip.of(cut(source.path, work / f"{kind}-sample.mp4", options.sample_seconds))
            for plan in source.plans.values():
                cell = Cell(kind, plan, VOD_PRESETS[plan.height])
                cell.vod_full = vod_encoded(source, plan.name, cell.vod, options.vod_preset, work=work, cpus=cpus)
                cell.vod_sample = vod_encoded(sample, plan.name, cell.vod, options.vod_preset, work=work, cpus=cpus)
                if (plan.width, plan.height) != (source.probe.width, source.probe.height):
                    cell.scaling_only = scaled_losslessly(source, plan, work=work, cpus=cpus)
                encoded(cell, source, cell.default, work=work, options=options)
                evaluate = functools.partial(encoded, cell, sample, work=work, options=options)
                choose(cell, evaluate, options.crf_range, options.tolerance)
                pick = encoded(cell, source, cell.pick, work=work, options=options)
                cells.append(cell)
                ours, vod = cell.full[cell.default], cell.vod_full
                print(
                    f"  {kind} {plan.name}: VOD {vod.kbps:.0f}/{vod.vmaf:.2f}, default {ours.kbps:.0f}/{ours.vmaf:.2f},"
                    f" pick {cell.pick} {pick.kbps:.0f}/{pick.vmaf:.2f} ({time.perf_counter() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
        # One setting per rendition for every content: whole-clip encodes at it where not made yet.
        ladder = per_rendition(cells)
        for cell in cells:
            if cell.plan.name in ladder:
                encoded(cell, sources[cell.content], ladder[cell.plan.name], work=work, options=options)
    return cells


def vod_encoded(clip: Clip, rendition: str, vod: VodPreset, x264_preset: str, *, work: Path, cpus: int) -> Point:
    out = work / f"{clip.path.stem}-{rendition}-vod.mp4"
    encode_vod(clip.path, out, plan=clip.plans[rendition], vod=vod, x264_preset=x264_preset, cpus=cpus)
    return measure(out, clip.path, cpus)


def scaled_losslessly(clip: Clip, plan: EncodePlan, *, work: Path, cpus: int) -> float:
    """VMAF of the clip scaled as the transcoder scales it (ffmpeg's default, bicubic) and stored losslessly."""
    out = work / f"{clip.path.stem}-{plan.name}-lossless.mp4"
    args = [ffmpeg_path(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip.path)]
    _run([*args, "-vf", f"scale={plan.width}:{plan.height}", *_lossless(), str(out)], cpus)
    return vmaf(out, clip.path, cpus)


def encoded(cell: Cell, clip: Clip, setting: Setting, *, work: Path, options: Options) -> Point:
    """The clip through the transcoder's command at `setting`, measured once per clip and setting."""
    results = cell.full if clip.path.stem == cell.content else cell.sample
    if setting not in results:
        out = work / f"{clip.path.stem}-{cell.plan.name}-{setting[0]}-{setting[1]}.mp4"
        plan, cpus = clip.plans[cell.plan.name], options.cpus
        encode_ours(clip.path, out, plan=plan, probe=clip.probe, setting=setting, preset=options.preset, cpus=cpus)
        results[setting] = measure(out, clip.path, cpus)
    return results[setting]


def per_rendition(cells: Sequence[Cell]) -> dict[str, Setting]:
    """One setting per rendition that brings every content a setting can bring to the VOD's VMAF there: the lowest
    per-title CRF and the highest per-title maxrate of that rendition."""
    ladder: dict[str, Setting] = {}
    for cell in cells:
        if cell.pick is None or cell.unreached:
            continue
        crf, maxrate = ladder.get(cell.plan.name, cell.pick)
        ladder[cell.plan.name] = (min(crf, cell.pick[0]), max(maxrate, cell.pick[1]))
    return ladder


# --- the report ---------------------------------------------------------------------------------------------------


def report_search(cells: Sequence[Cell], options: Options) -> None:
    (lowest, highest), tolerance = options.crf_range, options.tolerance
    print(
        f"\nper-title search on the first {options.sample_seconds:g} s: bisection over CRF {lowest}-{highest} for the"
        f" highest CRF whose VMAF is at most {tolerance:g} below the VOD encode's of the same sample"
        " (kbit/s / VMAF by CRF@maxrate)"
    )
    for c in cells:
        vod = c.vod_sample
        scaling = "" if c.scaling_only is None else f"; scaled only (lossless): VMAF {c.scaling_only:.2f}"
        print(f"{c.content:<12}{c.plan.name:<6} VOD {vod.kbps:.0f} / {vod.vmaf:.2f}{scaling}")
        for (crf, maxrate), point in sorted(c.sample.items(), key=lambda item: (item[0][1], item[0][0])):
            print(f"{'':<18} {crf}@{maxrate:<6}{point.kbps:>6.0f} / {point.vmaf:.2f}")
        print(f"{'':<18} pick: CRF {c.pick[0]}@{c.pick[1]}{' (VOD VMAF not reached)' if c.unreached else ''}")


def variants(cells: Sequence[Cell]) -> dict[str, list[tuple[Cell, Setting]]]:
    chosen = {
        f"default (CRF {TranscodeSettings.crf}, the ladder's maxrate)": [(c, c.default) for c in cells],
        "per-title CRF (and maxrate)": [(c, c.pick) for c in cells],
    }
    ladder = per_rendition(cells)
    if ladder:
        text = ", ".join(f"{name} CRF {crf} maxrate {maxrate}k" for name, (crf, maxrate) in ladder.items())
        missing = sorted({c.plan.name for c in cells} - set(ladder))
        text += f"; {', '.join(missing)}: default, no content reached the VOD" if missing else ""
        chosen[f"one setting per rendition ({text})"] = [(c, ladder.get(c.plan.name, c.default)) for c in cells]
    return chosen


def report(cells: Sequence[Cell], options: Options) -> None:
    vod_preset = options.vod_preset
    print(
        f"\nwhole clip: ours (transcoder's command, x264 {options.preset}) against the VOD preset (x264 {vod_preset},"
        " ABR at MaxBitrate)"
    )
    header = f"{'content':<12}{'rendition':<10}{'CRF@maxrate':>12}{'ours kbit/s':>12}{'VMAF':>7}"
    print(header + f"{'VOD kbit/s':>11}{'VMAF':>7}{'ours/VOD':>10}{'dVMAF':>7}")
    for name, chosen in variants(cells).items():
        print(f"-- {name}")
        ours_bits = vod_bits = 0.0
        deltas = []
        for cell, (crf, maxrate) in chosen:
            p, v = cell.full[(crf, maxrate)], cell.vod_full
            ours_bits += p.kbps
            vod_bits += v.kbps
            deltas.append(p.vmaf - v.vmaf)
            print(
                f"{cell.content:<12}{cell.plan.name:<10}{f'{crf}@{maxrate}':>12}{p.kbps:>12.0f}{p.vmaf:>7.2f}"
                f"{v.kbps:>11.0f}{v.vmaf:>7.2f}{p.kbps / v.kbps:>10.2f}{p.vmaf - v.vmaf:>+7.2f}"
            )
        reached, mean = sum(d >= -options.tolerance for d in deltas), sum(deltas) / len(deltas)
        print(
            f"   all {len(chosen)}: bits ours/VOD {ours_bits / vod_bits:.2f} (sum of kbit/s), dVMAF mean {mean:+.2f}"
            f" min {min(deltas):+.2f}; at most {options.tolerance:g} below the VOD: {reached} of {len(chosen)}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each generated clip")
    parser.add_argument("--cpus", type=int, default=min(2, len(os.sched_getaffinity(0))), help="CPUs ffmpeg may use")
    parser.add_argument("--sample-seconds", type=float, default=3.0, help="length of the per-title CRF sample")
    parser.add_argument("--crf-range", default="12-34", help="CRFs the per-title search may pick (lowest-highest)")
    parser.add_argument("--tolerance", type=float, default=0.5, help="VMAF below the VOD's that still counts as same")
    parser.add_argument("--preset", default=TranscodeSettings.preset, help="x264 preset of ours (FFMPEG_PRESET)")
    parser.add_argument("--vod-preset", default="medium", help="x264 preset standing in for MediaConvert")
    args = parser.parse_args(argv)
    lowest, _, highest = args.crf_range.partition("-")
    crf_range = (int(lowest), int(highest or lowest))
    if not 0 <= crf_range[0] <= crf_range[1] <= 51:
        parser.error("--crf-range: lowest-highest, between 0 and 51")
    sample_seconds = min(args.sample_seconds, args.seconds)
    started_at, started = datetime.now(UTC), time.perf_counter()
    version = subprocess.run([ffmpeg_path(), "-version"], check=True, capture_output=True, text=True, env=tool_env())
    print(f"bench.quality at {started_at:%Y-%m-%d %H:%M} UTC; {version.stdout.splitlines()[0]}")
    print(
        f"sources: {', '.join(CONTENTS)}; {WIDTH}x{HEIGHT}@{FPS}, {args.seconds:g} s each, lossless x264; "
        f"ffmpeg pinned to {args.cpus} CPUs"
    )
    print(f"VMAF: {VMAF_MODEL}, every frame, mean; renditions scaled to {WIDTH}x{HEIGHT} (bicubic) against the source")
    options = Options(args.seconds, sample_seconds, crf_range, args.tolerance, args.cpus, args.vod_preset, args.preset)
    cells = run(options)
    report_search(cells, options)
    report(cells, options)
    print(f"\nran {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
