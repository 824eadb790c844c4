"""The packager with real ffmpeg on generated renditions: a store on local folders and a spy bus stand in for S3 and
EventBridge, so what was packaged is read back from disk with ffprobe and Pillow."""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageStat

from functions.common.ffmpeg_runner import FfmpegTimedOut
from functions.common.job_gate import JobGate, OpenGate, WorkWithdrawn
from functions.common.media_tools import tool_env
from functions.common.unit_worker import NotEnoughTime, Outcome
from functions.contracts.events import PackagingCompleted
from functions.packager import service
from functions.packager.adapters import FfmpegTools
from functions.packager.service import BLACK_MEAN_LUMA, PackagingResult, PlaybackPackager
from tests.functions.job_gate_samples import WithdrawingGate
from tests.functions.packager.conftest import (
    BLACK_SECONDS,
    FPS,
    JOB_ID,
    LADDER,
    OUTPUTS,
    OWNER_ID,
    FolderStore,
    SpyEvents,
    avc_codec_of,
    expected_tiles,
    ffprobe,
    image_size,
    keyframe_times,
    make_rendition,
    mean_luma,
    packaging_request,
    playlist_segments,
    rendition_key,
    rfc_peak_bitrate,
    settings_for,
    source,
    vtt_cues,
    vtt_ms,
)

PREFIX = f"outputs/{JOB_ID}/"


@dataclass
class Packaging:
    store: FolderStore
    events: SpyEvents
    work: Path
    tmp: Path

    def packager(
        self, *, gate: JobGate | None = None, tools: FfmpegTools | None = None, **settings: Any
    ) -> PlaybackPackager:
        return PlaybackPackager(
            self.store,
            tools or FfmpegTools(),
            self.events,
            settings_for(self.work, **settings),
            gate=gate or OpenGate(),
        )

    def add(self, name: str, path: Path, *, bucket: str = OUTPUTS, job_id: str = JOB_ID) -> None:
        self.store.objects[(bucket, rendition_key(name, job_id))] = path

    def add_ladder(self, ladder: dict[str, Path]) -> None:
        for name, path in ladder.items():
            self.add(name, path)

    def package(self, *sources: dict[str, Any], remaining_ms: int = 300_000, **settings: Any) -> PackagingResult:
        return self.packager(**settings).package(packaging_request(*sources), lambda: remaining_ms)

    def file(self, relative: str) -> Path:
        return self.store.root / PREFIX / relative


@pytest.fixture
def packaging(tmp_path: Path) -> Packaging:
    return Packaging(FolderStore(tmp_path / "bucket"), SpyEvents(), tmp_path / "work", tmp_path)


@pytest.fixture
def packaged(packaging: Packaging, ladder: dict[str, Path]) -> tuple[Packaging, PackagingResult]:
    """The two-rendition ladder, packaged."""
    packaging.add_ladder(ladder)
    return packaging, packaging.package()


# --- the ladder -------------------------------------------------------------------------------------------------------


@pytest.mark.media
def test_the_package_is_announced_once_with_every_file_uploaded_masters_last(
    packaged: tuple[Packaging, PackagingResult],
) -> None:
    packaging, result = packaged

    # THEN the result and the one event on the bus carry the same package
    assert result.outcome is Outcome.COMPLETED
    assert result.package is not None
    assert packaging.events.published == [
        (
            "Packaging Completed",
            PackagingCompleted(job_id=JOB_ID, owner_id=OWNER_ID, package=result.package).to_detail(),
        )
    ]
    package = result.package
    assert package.bucket == OUTPUTS
    assert package.hlsKey == f"{PREFIX}hls/master.m3u8"
    # AND exactly the files of the layout were uploaded: what the playlists name, the poster and the thumbnails
    uploaded = packaging.store.uploaded()
    assert len(uploaded) == len(set(uploaded))
    expected = {f"{PREFIX}{name}" for name in ("hls/master.m3u8", "poster.jpg", "thumbnails/sprite.jpg")}
    expected.add(f"{PREFIX}thumbnails/thumbnails.vtt")
    for variant in package.variants:
        folder = f"{PREFIX}hls/{variant.rendition}/"
        expected |= {f"{folder}index.m3u8", f"{folder}init.mp4"}
        expected |= {f"{folder}seg_{index:05d}.m4s" for index in range(variant.segments)}
    assert set(uploaded) == expected
    # AND each step stored its media, then the index that names them; the master playlist alone and last
    *steps, master = packaging.store.batches
    assert master == [package.hlsKey]
    indexes = [batch for batch in steps if batch[0].endswith((".m3u8", ".vtt"))]
    assert sorted(key for batch in indexes for key in batch) == sorted(
        [f"{PREFIX}hls/180p/index.m3u8", f"{PREFIX}hls/360p/index.m3u8", f"{PREFIX}thumbnails/thumbnails.vtt"]
    )
    assert all(len(batch) == 1 for batch in indexes)
    for batch in steps:
        if batch in indexes:
            continue
        assert all(key.endswith((".m4s", ".mp4", ".jpg")) for key in batch)
    stored_before = {key: position for position, batch in enumerate(steps) for key in batch}
    for index_key, named in [
        (f"{PREFIX}hls/180p/index.m3u8", f"{PREFIX}hls/180p/seg_00000.m4s"),
        (f"{PREFIX}hls/360p/index.m3u8", f"{PREFIX}hls/360p/init.mp4"),
        (f"{PREFIX}thumbnails/thumbnails.vtt", f"{PREFIX}thumbnails/sprite.jpg"),
    ]:
        assert stored_before[named] < stored_before[index_key]
    assert packaging.store.metadata[package.hlsKey] == "application/vnd.apple.mpegurl"
    assert packaging.store.metadata[f"{PREFIX}hls/180p/seg_00000.m4s"] == "video/iso.segment"
    assert result.bytes == sum(path.stat().st_size for path in packaging.store.root.rglob("*") if path.is_file())
    # AND the working directory is gone
    assert list(packaging.work.iterdir()) == []


@pytest.mark.media
def test_every_variant_is_cut_into_two_second_segments_at_the_same_keyframes(
    packaged: tuple[Packaging, PackagingResult], ladder: dict[str, Path]
) -> None:
    packaging, result = packaged
    assert result.package is not None

    keyframes = {}
    for variant in result.package.variants:
        playlist = packaging.file(f"hls/{variant.rendition}/index.m3u8")
        segments = playlist_segments(playlist)
        # THEN every segment but the last lasts 2 s, to within a frame, and together they last the rendition; the
        # 0.5 s tail after the last 2 s boundary (a keyframe and a few frames) went into the last segment
        assert len(segments) == variant.segments == 3
        for _, duration in segments[:-1]:
            assert abs(duration - 2) <= 1 / FPS
        assert abs(segments[-1][1] - 2.5) <= 1 / FPS
        assert abs(sum(d for _, d in segments) - 6.5) <= 1 / FPS
        keyframes[variant.rendition] = keyframe_times(playlist)
        # AND the segments are stream copies of the rendition: its video codec, size and frame rate, unchanged
        assert (variant.width, variant.height) == LADDER[variant.rendition]
        assert variant.frameRate == FPS
        assert variant.codecs == f"{avc_codec_of(ladder[variant.rendition])},mp4a.40.2"
    # AND a keyframe opens every segment, at the same instants in every variant
    assert keyframes["180p"] == keyframes["360p"]
    first = keyframes["180p"][0]
    assert [round(t - first, 3) for t in keyframes["180p"]] == [0.0, 2.0, 4.0, 6.0]


@pytest.mark.media
def test_declared_bandwidths_cover_what_was_measured_from_the_files(
    packaged: tuple[Packaging, PackagingResult],
) -> None:
    packaging, result = packaged
    assert result.package is not None

    for variant in result.package.variants:
        folder = packaging.file(f"hls/{variant.rendition}")
        segments = playlist_segments(folder / "index.m3u8")
        sizes = [(folder / uri).stat().st_size for uri, _ in segments]
        sizes[0] += (folder / "init.mp4").stat().st_size
        durations = [duration for _, duration in segments]
        # THEN BANDWIDTH is at least the peak segment bit rate (RFC 8216), and at least any full segment's rate
        assert variant.bandwidth >= rfc_peak_bitrate(sizes, durations, 2)
        full = [size * 8 / duration for size, duration in zip(sizes, durations, strict=True) if duration >= 1.9]
        assert variant.bandwidth >= max(full)
        assert variant.bandwidth == math.ceil(rfc_peak_bitrate(sizes, durations, 2))
        # AND AVERAGE-BANDWIDTH is every byte over the duration, rounded up
        assert variant.averageBandwidth == math.ceil(sum(sizes) * 8 / sum(durations))
        assert variant.averageBandwidth <= variant.bandwidth


@pytest.mark.media
def test_the_master_playlist_declares_the_measured_variants_and_ffprobe_opens_it(
    packaged: tuple[Packaging, PackagingResult],
) -> None:
    packaging, result = packaged
    assert result.package is not None
    master = packaging.file("hls/master.m3u8")

    lines = master.read_text().splitlines()
    assert lines[:3] == ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for index, variant in enumerate(result.package.variants):
        assert lines[3 + 2 * index] == (
            f"#EXT-X-STREAM-INF:BANDWIDTH={variant.bandwidth},AVERAGE-BANDWIDTH={variant.averageBandwidth},"
            f'RESOLUTION={variant.width}x{variant.height},CODECS="{variant.codecs}",FRAME-RATE=30.000'
        )
        assert lines[4 + 2 * index] == f"{variant.rendition}/index.m3u8"
    assert [v.rendition for v in result.package.variants] == ["180p", "360p"]

    # AND ffprobe reads the ladder from disk: one H.264 + AAC program per variant
    streams = json.loads(ffprobe("-show_streams", "-of", "json", str(master)))["streams"]
    video = sorted((s["codec_name"], s["width"], s["height"]) for s in streams if s["codec_type"] == "video")
    assert video == [("h264", 320, 180), ("h264", 640, 360)]
    assert [s["codec_name"] for s in streams if s["codec_type"] == "audio"] == ["aac", "aac"]


@pytest.mark.media
def test_the_poster_skips_the_black_opening_at_the_largest_size(packaged: tuple[Packaging, PackagingResult]) -> None:
    packaging, result = packaged
    assert result.package is not None
    poster = result.package.poster

    # THEN the poster is the first frame after the 1.5 s of black (10% is 0.65 s), at 640x360, and is not black
    assert poster.key == f"{PREFIX}poster.jpg"
    assert BLACK_SECONDS * 1000 <= poster.atMs <= BLACK_SECONDS * 1000 + 500
    assert (poster.width, poster.height) == image_size(packaging.file("poster.jpg")) == LADDER["360p"]
    assert mean_luma(packaging.file("poster.jpg")) > BLACK_MEAN_LUMA


@pytest.mark.media
def test_the_sprite_matches_its_vtt_index(packaged: tuple[Packaging, PackagingResult]) -> None:
    packaging, result = packaged
    assert result.package is not None
    thumbnails = result.package.thumbnails

    # THEN one 160x90 tile per 2 s (4 for 6.5 s), in one row, and the sprite is exactly that big
    assert (thumbnails.intervalSeconds, thumbnails.tiles, thumbnails.columns, thumbnails.rows) == (2, 4, 4, 1)
    assert (thumbnails.tileWidth, thumbnails.tileHeight) == (160, 90)
    sprite = packaging.file("thumbnails/sprite.jpg")
    assert image_size(sprite) == (thumbnails.width, thumbnails.height) == (640, 90)
    cues = vtt_cues(packaging.file("thumbnails/thumbnails.vtt").read_text())
    assert len(cues) == thumbnails.tiles == expected_tiles(6500, 2)
    assert vtt_ms(cues[-1][1]) == 6500
    for start, end, payload in cues:
        assert vtt_ms(end) > vtt_ms(start)
        name, _, box = payload.partition("#xywh=")
        x, y, w, h = (int(value) for value in box.split(","))
        assert name == "sprite.jpg"
        assert x + w <= thumbnails.width and y + h <= thumbnails.height
    # AND the first tile is the black opening, the others the pattern
    tiles = [_tile_luma(sprite, index, thumbnails.tileWidth, thumbnails.tileHeight) for index in range(4)]
    assert tiles[0] < BLACK_MEAN_LUMA < min(tiles[1:])


def _tile_luma(sprite: Path, index: int, width: int, height: int) -> float:
    """Mean grey level of tile `index` of a one-row sprite."""
    with Image.open(sprite) as image:
        tile = image.convert("L").crop((index * width, 0, (index + 1) * width, height))
        return ImageStat.Stat(tile).mean[0]


@pytest.mark.media
def test_a_small_tile_limit_raises_the_thumbnail_interval(packaging: Packaging, ladder: dict[str, Path]) -> None:
    packaging.add("180p", ladder["180p"])

    result = packaging.package(source("180p"), max_sprite_tiles=2, sprite_tile_width=96)

    assert result.package is not None
    thumbnails = result.package.thumbnails
    assert (thumbnails.intervalSeconds, thumbnails.tiles, thumbnails.tileWidth, thumbnails.tileHeight) == (4, 2, 96, 54)
    assert image_size(packaging.file("thumbnails/sprite.jpg")) == (192, 54)
    cues = vtt_cues(packaging.file("thumbnails/thumbnails.vtt").read_text())
    assert [(c[0], c[1]) for c in cues] == [("00:00:00.000", "00:00:04.000"), ("00:00:04.000", "00:00:06.500")]


@pytest.mark.media
def test_at_ntsc_rates_every_tile_shows_a_keyframe_and_the_last_cue_ends_with_the_video(packaging: Packaging) -> None:
    # GIVEN 180 frames at 29.97 fps (6.006 s, keyframes at 0, 2.002 and 4.004 s), a picture from the first frame
    path = make_rendition(packaging.tmp / "ntsc.mp4", 320, 180, seconds=6, black_seconds=0, rate="30000/1001")
    packaging.add("180p", path)

    result = packaging.package(source("180p"))

    # THEN three tiles, none of them empty, and the third cue running to 6.006 s
    assert result.package is not None
    thumbnails = result.package.thumbnails
    assert (thumbnails.tiles, thumbnails.columns, thumbnails.width) == (3, 3, 480)
    sprite = packaging.file("thumbnails/sprite.jpg")
    assert min(_tile_luma(sprite, index, 160, 90) for index in range(3)) > BLACK_MEAN_LUMA
    cues = vtt_cues(packaging.file("thumbnails/thumbnails.vtt").read_text())
    assert [vtt_ms(end) for _, end, _ in cues] == [2000, 4000, 6006]
    (variant,) = result.package.variants
    assert variant.frameRate == 29.97
    assert "FRAME-RATE=29.970" in packaging.file("hls/master.m3u8").read_text()
    # AND the poster is the frame at 10%: the picture starts at once
    assert result.package.poster.atMs == 600


@pytest.mark.media
def test_a_silent_all_black_rendition_is_packaged_with_the_poster_at_ten_percent(packaging: Packaging) -> None:
    # GIVEN one 3 s rendition without audio that is black throughout
    path = make_rendition(packaging.tmp / "dark.mp4", 320, 180, seconds=3, black_seconds=3, audio=False)
    packaging.add("180p", path)

    result = packaging.package(source("180p"))

    assert result.package is not None
    assert result.package.poster.atMs == 300
    (variant,) = result.package.variants
    assert variant.codecs == avc_codec_of(path)
    assert "mp4a" not in packaging.file("hls/master.m3u8").read_text()


# --- failures ---------------------------------------------------------------------------------------------------------


def failure(packaging: Packaging) -> dict[str, Any]:
    ((detail_type, detail),) = packaging.events.published
    assert detail_type == "Packaging Failed"
    assert detail["jobId"] == JOB_ID and detail["ownerId"] == OWNER_ID
    assert detail["error"]["code"] == "PACKAGING_FAILED"
    message = detail["error"]["message"]
    assert OUTPUTS not in message and "outputs/" not in message and JOB_ID not in message and "arn:" not in message
    assert str(packaging.work) not in message
    return detail


@pytest.mark.media
def test_a_missing_rendition_fails_the_package_and_uploads_nothing(
    packaging: Packaging, ladder: dict[str, Path]
) -> None:
    packaging.add("180p", ladder["180p"])  # 360p is not there

    result = packaging.package()

    assert result == PackagingResult(Outcome.FAILED, error_code="PACKAGING_FAILED")
    assert failure(packaging)["error"]["message"] == "rendition 360p is missing from the job's outputs"
    assert packaging.store.batches == []
    assert list(packaging.work.iterdir()) == []


def test_a_rendition_in_another_bucket_is_refused_before_anything_is_read(packaging: Packaging) -> None:
    result = packaging.package(source("180p", bucket="test-uploads"))

    assert result.outcome is Outcome.FAILED
    assert failure(packaging)["error"]["message"] == "rendition 180p is not in the outputs bucket"
    assert not packaging.work.exists()


@pytest.mark.media
def test_a_rendition_ffmpeg_cannot_read_fails_the_package(packaging: Packaging) -> None:
    broken = packaging.tmp / "broken.mp4"
    broken.write_text("not a movie at all\n" * 100)
    packaging.add("180p", broken)

    result = packaging.package(source("180p"))

    assert result.outcome is Outcome.FAILED
    message = failure(packaging)["error"]["message"]
    assert message.startswith("rendition 180p cannot be read: ")
    assert packaging.store.batches == []


@pytest.mark.media
def test_a_rendition_that_is_not_h264_fails_the_package(packaging: Packaging) -> None:
    mpeg4 = packaging.tmp / "mpeg4.mp4"
    subprocess.run(
        [
            *(FfmpegTools().ffmpeg_binary(), "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", "testsrc=size=320x180:rate=30:duration=1", "-c:v", "mpeg4", str(mpeg4)),
        ],
        check=True,
        env=tool_env(),
    )
    packaging.add("180p", mpeg4)

    assert packaging.package(source("180p")).outcome is Outcome.FAILED
    assert failure(packaging)["error"]["message"] == "rendition 180p is mpeg4, not H.264"


@pytest.mark.media
def test_a_remux_ffmpeg_refuses_fails_the_package_with_its_reason(
    packaging: Packaging, ladder: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an HLS command ffmpeg refuses (a segment length that is not a duration)
    original = service.hls_args

    def refused_hls_args(*args: Any, **kwargs: Any) -> list[str]:
        command = original(*args, **kwargs)
        command[command.index("-hls_time") + 1] = "two"
        return command

    monkeypatch.setattr(service, "hls_args", refused_hls_args)
    packaging.add("180p", ladder["180p"])

    result = packaging.package(source("180p"))

    assert result.outcome is Outcome.FAILED
    assert failure(packaging)["error"]["message"].startswith("rendition 180p cannot be remuxed: ")


def test_too_little_time_left_raises_so_the_message_is_retried(packaging: Packaging) -> None:
    with pytest.raises(NotEnoughTime):
        packaging.package(remaining_ms=20_000)
    assert packaging.events.published == []


@pytest.mark.media
def test_ffmpeg_stopped_at_the_deadline_raises_so_the_message_is_retried(
    packaging: Packaging, ladder: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_time(self: FfmpegTools, args: list[str], *, timeout_seconds: float) -> None:
        raise FfmpegTimedOut("ffmpeg was still running after 1 s")

    monkeypatch.setattr(FfmpegTools, "run_ffmpeg", out_of_time)
    packaging.add("180p", ladder["180p"])

    with pytest.raises(FfmpegTimedOut):
        packaging.package(source("180p"))
    assert packaging.events.published == []
    assert list(packaging.work.iterdir()) == []


# --- the job gate -----------------------------------------------------------------------------------------------------


class CountedTools(FfmpegTools):
    """ffmpeg as the packager runs it, counting the steps that ran."""

    def __init__(self) -> None:
        self.runs = 0

    def run_ffmpeg(self, args: list[str], *, timeout_seconds: float) -> None:
        self.runs += 1
        super().run_ffmpeg(args, timeout_seconds=timeout_seconds)


class WrongPosterTools(FfmpegTools):
    """ffmpeg as the packager runs it, but every poster reads back at the wrong size."""

    def read_image_size(self, path: Path) -> tuple[int, int]:
        width, height = super().read_image_size(path)
        return (width + 2, height) if path.name == "poster.jpg" else (width, height)


@pytest.mark.media
def test_a_step_that_fails_after_others_were_stored_never_stores_the_master_playlist(
    packaging: Packaging, ladder: dict[str, Path]
) -> None:
    # GIVEN a poster that does not read back, while the variants and the sprite package fine
    packaging.add_ladder(ladder)

    # WHEN the job is packaged (each step stores its files as soon as it is done)
    result = packaging.packager(tools=WrongPosterTools()).package(packaging_request(), lambda: 300_000)

    # THEN the package failed with the reason, and the master playlist, the one file a player starts from, was never
    # stored: whatever the other steps stored is named by nothing
    assert result.outcome is Outcome.FAILED
    assert failure(packaging)["error"]["message"].startswith("the package does not read back")
    uploaded = packaging.store.uploaded()
    assert f"{PREFIX}hls/master.m3u8" not in uploaded and f"{PREFIX}poster.jpg" not in uploaded
    assert list(packaging.work.iterdir()) == []


@pytest.mark.media
def test_a_later_attempts_package_names_its_attempt_in_the_report_and_on_every_file(
    packaging: Packaging, ladder: dict[str, Path]
) -> None:
    packaging.add_ladder(ladder)
    request = packaging_request().model_copy(update={"attempt": 2})

    result = packaging.packager().package(request, lambda: 300_000)

    assert result.outcome is Outcome.COMPLETED
    ((detail_type, detail),) = packaging.events.published
    assert (detail_type, detail["attempt"]) == ("Packaging Completed", 2)
    assert packaging.store.attempts == {2}


@pytest.mark.media
def test_a_job_canceled_while_it_is_packaged_stops_before_anything_is_stored(
    packaging: Packaging, ladder: dict[str, Path]
) -> None:
    # GIVEN a gate that says yes before the renditions are read, then no: the owner canceled during packaging
    packaging.add_ladder(ladder)
    gate, tools = WithdrawingGate(open_checks=1), CountedTools()

    # WHEN the job is packaged, asking the gate before every ffmpeg step
    with pytest.raises(WorkWithdrawn):
        packaging.packager(gate=gate, tools=tools, gate_check_seconds=0).package(packaging_request(), lambda: 300_000)

    # THEN it stopped before its first step: asked once before reading, then by each step that started (the two
    # variants, the poster and the sprite run side by side), nothing run, stored or announced, the working directory
    # gone
    assert 2 <= len(gate.checks) <= 1 + 4
    assert tools.runs == 0
    assert (packaging.store.uploaded(), packaging.events.published) == ([], [])
    assert list(packaging.work.iterdir()) == []


def test_renditions_gone_with_a_deleted_job_are_not_reported_as_a_failure(packaging: Packaging) -> None:
    # GIVEN a job deleted after its request was read: its renditions are gone with it
    gate = WithdrawingGate(open_checks=1)

    # WHEN it is packaged
    with pytest.raises(WorkWithdrawn):
        packaging.packager(gate=gate).package(packaging_request(), lambda: 300_000)

    # THEN the missing renditions are the deletion, not a Packaging Failed
    assert packaging.events.published == []
