"""What an upload is, decided by ffprobe: the probe summary, failures, the command lines, the decode check."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from functions.common.media_tools import ffprobe_path, tool_env
from functions.contracts.media import ACCEPTED_AUDIO_DEMUXERS, ACCEPTED_DEMUXERS, DEMUXER_WHITELIST
from functions.ingest.adapters import (
    check_decodes_to_end,
    decode_tail_args,
    ffprobe_args,
    probe_media,
    read_probe_json,
    tool_failure_detail,
)
from functions.ingest.service import (
    PROBE_WHITELIST,
    ProbedAudio,
    ProbedMedia,
    RejectionCode,
    UploadRejected,
    classify_probe_failure,
    summarize,
    tail_reach_seconds,
)
from tests.functions.ingest.conftest import MediaLibrary, ffprobe_json

# --------------------------------------------------------------------------------------------------------------
# Probe summary (ffprobe JSON in, the job's probe out)
# --------------------------------------------------------------------------------------------------------------


def test_summary_has_the_contract_shape() -> None:
    media = summarize(ffprobe_json(), size_bytes=6_750_000)

    assert isinstance(media, ProbedMedia)
    assert media.probe.model_dump(exclude_unset=True) == {
        "durationMs": 12_034,
        "width": 1920,
        "height": 1080,
        "codedWidth": 1920,
        "codedHeight": 1080,
        "rotation": 0,
        "videoCodec": "h264",
        "audioCodec": "aac",
        "hasAudio": True,
        "frameRate": 29.97,
        "formatName": "mov,mp4,m4a,3gp,3g2,mj2",
        "bitRate": 4_500_000,
        "sizeBytes": 6_750_000,
    }
    assert (media.video_stream_index, media.video_end_seconds) == (0, pytest.approx(12.012))


@pytest.mark.parametrize(
    ("side_data", "tags", "rotation", "display"),
    [
        ([{"side_data_type": "Display Matrix", "rotation": 90}], {}, 90, (1080, 1920)),
        ([{"side_data_type": "Display Matrix", "rotation": -90}], {}, 270, (1080, 1920)),
        ([{"side_data_type": "Display Matrix", "rotation": 180}], {}, 180, (1920, 1080)),
        ([{"side_data_type": "Display Matrix", "rotation": -270.0}], {}, 90, (1080, 1920)),
        ([], {"rotate": "90"}, 270, (1080, 1920)),
        ([], {"rotate": "180"}, 180, (1920, 1080)),
        ([{"side_data_type": "Content light level metadata"}], {}, 0, (1920, 1080)),
    ],
    ids=["matrix-90", "matrix-minus-90", "matrix-180", "matrix-minus-270", "legacy-tag-90", "legacy-tag-180", "none"],
)
def test_rotation_is_read_and_the_display_size_follows_it(
    side_data: list[dict[str, Any]], tags: dict[str, str], rotation: int, display: tuple[int, int]
) -> None:
    probe = summarize(ffprobe_json(side_data_list=side_data, tags=tags), size_bytes=1).probe

    assert (probe.rotation, probe.width, probe.height) == (rotation, *display)
    assert (probe.codedWidth, probe.codedHeight) == (1920, 1080)


def test_anamorphic_source_is_displayed_at_its_aspect_ratio() -> None:
    probe = summarize(ffprobe_json(width=720, height=480, sample_aspect_ratio="8:9"), size_bytes=1).probe

    assert (probe.width, probe.height, probe.codedWidth) == (640, 480, 720)


def test_cover_art_is_not_a_video_stream() -> None:
    raw = ffprobe_json(codec_name="mjpeg", disposition={"attached_pic": 1})
    raw["streams"][1].update(channels=2, sample_rate="44100")

    media = summarize(raw, size_bytes=1)

    assert isinstance(media, ProbedAudio)
    assert (media.probe.audioCodec, media.probe.videoCodec) == ("aac", None)


def test_cover_art_alone_is_neither_video_nor_audio() -> None:
    raw = ffprobe_json(codec_name="mjpeg", disposition={"attached_pic": 1})
    raw["streams"] = raw["streams"][:1]

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.NO_VIDEO_STREAM
    assert rejected.value.message == "the file has no video or audio stream"


def test_video_after_cover_art_is_found() -> None:
    raw = ffprobe_json(codec_name="mjpeg", disposition={"attached_pic": 1})
    raw["streams"].append({**copy.deepcopy(ffprobe_json()["streams"][0]), "index": 2, "codec_name": "hevc"})

    media = summarize(raw, size_bytes=1)

    assert isinstance(media, ProbedMedia)
    assert (media.video_stream_index, media.probe.videoCodec) == (2, "hevc")


def _audio_only(format_name: str = "mp3", **audio_changes: Any) -> dict[str, Any]:
    """ffprobe's JSON for a 12 s stereo MP3 at 44.1 kHz, with `audio_changes` on its stream."""
    raw = ffprobe_json()
    raw["streams"] = raw["streams"][1:]
    raw["streams"][0].update({"codec_name": "mp3", "channels": 2, "sample_rate": "44100", "bit_rate": "128000"})
    raw["streams"][0].update(audio_changes)
    raw["format"].update(format_name=format_name, probe_score=51, bit_rate="128400")
    return raw


def test_audio_only_is_audio_with_its_own_probe() -> None:
    media = summarize(_audio_only(), size_bytes=192_000)

    assert isinstance(media, ProbedAudio)
    assert media.probe.model_dump(exclude_unset=True) == {
        "durationMs": 12_034,
        "audioCodec": "mp3",
        "hasAudio": True,
        "channels": 2,
        "sampleRate": 44_100,
        "formatName": "mp3",
        "bitRate": 128_400,
        "sizeBytes": 192_000,
    }


def test_audio_bit_rate_and_duration_fall_back_to_the_stream() -> None:
    raw = _audio_only()
    del raw["format"]["bit_rate"], raw["format"]["duration"]

    probe = summarize(raw, size_bytes=1).probe

    assert (probe.bitRate, probe.durationMs) == (128_000, 12_000)


@pytest.mark.parametrize("format_name", ["avi", "mpegts", "flv"])
def test_audio_only_in_a_video_only_container_is_unsupported(format_name: str) -> None:
    with pytest.raises(UploadRejected) as rejected:
        summarize(_audio_only(format_name), size_bytes=1)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT
    assert "not an accepted audio container" in rejected.value.message


@pytest.mark.parametrize("format_name", ["mp3", "aac", "wav", "flac", "ogg"])
def test_video_in_an_audio_only_container_is_unsupported(format_name: str) -> None:
    raw = ffprobe_json()
    raw["format"]["format_name"] = format_name

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT
    assert "not an accepted video container" in rejected.value.message


def test_audio_the_demuxer_only_guessed_is_not_trusted() -> None:
    raw = _audio_only()
    raw["format"]["probe_score"] = 25

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT
    assert "probe score 25" in rejected.value.detail


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"codec_name": None}, RejectionCode.UNSUPPORTED_FORMAT),
        ({"channels": 0}, RejectionCode.CORRUPT_MEDIA),
        ({"sample_rate": None}, RejectionCode.CORRUPT_MEDIA),
        ({"duration": "N/A"}, RejectionCode.CORRUPT_MEDIA),
    ],
    ids=["no-codec", "no-channels", "no-sample-rate", "no-duration"],
)
def test_unreadable_audio_is_rejected(changes: dict[str, Any], code: RejectionCode) -> None:
    raw = _audio_only(**changes)
    raw["format"]["duration"] = None

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is code


@pytest.mark.parametrize("format_name", ["hls", "concat", "dash", "image2", "png_pipe", "tty", "lavfi", ""])
def test_format_outside_the_allow_list_is_unsupported(format_name: str) -> None:
    raw = ffprobe_json()
    raw["format"]["format_name"] = format_name

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT


@pytest.mark.parametrize(
    ("video_changes", "format_changes"),
    [
        ({"duration": None}, {"duration": None}),
        ({"duration": "N/A"}, {"duration": "0.000000"}),
        ({"duration": "nan"}, {"duration": "inf"}),
        ({"width": 0}, {}),
        ({"height": None}, {}),
    ],
    ids=["no-duration", "zero-duration", "not-finite", "zero-width", "no-height"],
)
def test_unreadable_duration_or_size_is_corrupt(video_changes: dict[str, Any], format_changes: dict[str, Any]) -> None:
    raw = ffprobe_json(**video_changes)
    raw["format"].update(format_changes)

    with pytest.raises(UploadRejected) as rejected:
        summarize(raw, size_bytes=1)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA


def test_stream_duration_stands_in_for_a_missing_container_duration() -> None:
    raw = ffprobe_json()
    del raw["format"]["duration"], raw["format"]["bit_rate"]

    probe = summarize(raw, size_bytes=1).probe

    assert (probe.durationMs, probe.bitRate) == (12_012, None)


def test_frame_rate_falls_back_to_the_stream_rate() -> None:
    assert summarize(ffprobe_json(avg_frame_rate="0/0", r_frame_rate="25/1"), size_bytes=1).probe.frameRate == 25
    assert summarize(ffprobe_json(avg_frame_rate="0/0", r_frame_rate="0/0"), size_bytes=1).probe.frameRate == 0


def test_video_end_counts_from_the_stream_start() -> None:
    """MPEG-TS timestamps start where the broadcast clock was, not at zero."""
    raw = ffprobe_json(start_time="1.400000", duration=None)
    raw["format"].update(format_name="mpegts", start_time="1.400000", duration="4.000000")

    media = summarize(raw, size_bytes=1)

    assert media.video_end_seconds == pytest.approx(5.4)


# --------------------------------------------------------------------------------------------------------------
# ffprobe failures and command lines
# --------------------------------------------------------------------------------------------------------------

HLS_REFUSED = """[hls @ 0x982b340] [debug] Format hls probed with size=2048 and score=100
[hls @ 0x982b340] [error] Format not on whitelist 'mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts,flv'
[error] file:/tmp/ingest-x/source: Invalid argument"""
MP4_WITHOUT_INDEX = """[mov @ 0x1] [debug] Format mov,mp4,m4a,3gp,3g2,mj2 probed with size=2048 and score=100
[mov @ 0x1] [error] moov atom not found
[error] file:/tmp/ingest-x/source: Invalid data found when processing input"""
FLAC_CUT_SHORT = """[flac @ 0x1] [debug] Format flac probed with size=2048 and score=100
[error] file:/tmp/ingest-x/source: Invalid data found when processing input"""
NOTHING_RECOGNISED = "[error] file:/tmp/ingest-x/source: Invalid data found when processing input"
GUESSED = """[mpegts @ 0x1] [debug] Format mpegts probed with size=2048 and score=2
[error] file:/tmp/ingest-x/source: Invalid data found when processing input"""


@pytest.mark.parametrize(
    ("stderr", "code", "says"),
    [
        (HLS_REFUSED, RejectionCode.UNSUPPORTED_FORMAT, "hls"),
        (MP4_WITHOUT_INDEX, RejectionCode.CORRUPT_MEDIA, "looks like video but is truncated"),
        (FLAC_CUT_SHORT, RejectionCode.CORRUPT_MEDIA, "looks like audio but is truncated"),
        (NOTHING_RECOGNISED, RejectionCode.UNSUPPORTED_FORMAT, "not an image, audio or video"),
        (GUESSED, RejectionCode.UNSUPPORTED_FORMAT, "not an image, audio or video"),
    ],
    ids=["playlist", "truncated", "truncated-audio", "text", "low-score-guess"],
)
def test_probe_failure_is_classified(stderr: str, code: RejectionCode, says: str) -> None:
    rejection = classify_probe_failure(stderr)

    assert rejection.code is code
    assert says in rejection.message
    assert "/tmp" not in rejection.message
    assert rejection.detail  # the log keeps ffprobe's own words


@pytest.mark.parametrize("whitelist", [DEMUXER_WHITELIST, PROBE_WHITELIST], ids=["video", "probe"])
def test_whitelist_holds_containers_only(whitelist: str) -> None:
    demuxers = set(whitelist.split(","))
    assert {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv"} <= demuxers
    assert not demuxers & {"hls", "applehttp", "dash", "concat", "image2", "tty", "lavfi", "data", "subfile"}
    assert not any(name.endswith("_pipe") for name in demuxers)
    assert set(ACCEPTED_DEMUXERS) == {"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi", "mpegts", "flv"}


def test_the_probe_may_use_the_video_and_the_audio_demuxers_and_nothing_else() -> None:
    assert set(PROBE_WHITELIST.split(",")) == set(DEMUXER_WHITELIST.split(",")) | {"mp3", "aac", "wav", "flac", "ogg"}
    assert set(PROBE_WHITELIST.split(",")) == set(",".join((*ACCEPTED_DEMUXERS, *ACCEPTED_AUDIO_DEMUXERS)).split(","))


@pytest.mark.parametrize(
    ("args", "whitelist"),
    [
        (ffprobe_args(Path("/tmp/x/source")), PROBE_WHITELIST),
        (decode_tail_args(Path("/tmp/x/source"), stream_index=0, from_seconds=1.5), DEMUXER_WHITELIST),
    ],
    ids=["probe", "decode-tail"],
)
def test_media_tools_read_only_the_local_file_with_allowed_demuxers(args: list[str], whitelist: str) -> None:
    """The probe may meet audio; the tail decode runs on videos only, so it may use only the video demuxers."""
    assert args[args.index("-protocol_whitelist") + 1] == "file"
    assert args[args.index("-format_whitelist") + 1] == whitelist
    assert args[-1] == "file:/tmp/x/source"
    assert "-f" not in args  # the demuxer is found by probing content, then checked against the whitelist


def _tail_output(*entries: dict[str, object]) -> str:
    return json.dumps({"packets_and_frames": list(entries)})


def _packet(pts: str, **more: str) -> dict[str, object]:
    return {"type": "packet", "pts_time": pts, **more}


def _frame(**times: object) -> dict[str, object]:
    return {"type": "frame", **times}


@pytest.mark.parametrize(
    ("output", "reach"),
    [
        pytest.param(
            _tail_output(_packet("4.0"), _packet("4.1"), _packet("4.033"), _frame(best_effort_timestamp_time="4.0")),
            4.1,
            id="the-latest-packet-in-presentation-order",
        ),
        pytest.param(
            _tail_output(
                _packet("3.9"),
                _frame(best_effort_timestamp_time="3.900000", side_data_list=[{}]),
                _frame(best_effort_timestamp_time="3.966667", side_data_list=[{"side_data_type": "SEI"}]),
            ),
            3.966667,
            id="a-frame-later-than-every-packet-side-data-on-every-frame",
        ),
        pytest.param(
            _tail_output(
                _packet("N/A", dts_time="2.2"),
                _frame(best_effort_timestamp_time="N/A", pts_time="1.5"),
                _frame(pkt_dts_time="1.6"),
            ),
            2.2,
            id="falls-back-to-dts-for-packets-and-pts-then-dts-for-frames",
        ),
        pytest.param(_tail_output(_packet("9.0"), _packet("9.5")), None, id="packets-but-no-frame-decoded"),
        pytest.param(_tail_output(_packet("9.0"), _frame(best_effort_timestamp_time="N/A")), None, id="no-frame-time"),
        pytest.param(_tail_output(), None, id="nothing-read"),
        pytest.param(json.dumps({"frames": [{"pts_time": "1.0"}]}), None, id="another-shape"),
        pytest.param(json.dumps({}), None, id="no-section"),
        pytest.param("", None, id="empty-output"),
        pytest.param('{"packets_and_frames": [', None, id="cut-off-output"),
        pytest.param("[1, 2]", None, id="not-an-object"),
    ],
)
def test_how_far_the_tail_reaches_is_read_from_its_packets_once_a_keyframe_decoded(
    output: str, reach: float | None
) -> None:
    assert tail_reach_seconds(output) == reach


def test_the_tail_check_decodes_keyframes_only_and_lists_every_packet() -> None:
    """A full decode of an 8 s GOP before the tail cost a 1080p job up to 0.9 s on its critical path."""
    args = decode_tail_args(Path("/tmp/x/source"), stream_index=0, from_seconds=1.5)
    assert args[args.index("-skip_frame") + 1] == "nokey"
    shown = args[args.index("-show_entries") + 1]
    assert shown.startswith("packet=pts_time,dts_time:frame=")


def test_a_silent_tool_failure_still_says_how_the_tool_ended() -> None:
    killed = subprocess.CompletedProcess(["/opt/bin/ffprobe", "-i", "x"], returncode=-11, stdout="", stderr="")
    failed = subprocess.CompletedProcess(["ffprobe"], returncode=1, stdout="", stderr="[error] Invalid data\n")

    assert tool_failure_detail(killed) == "ffprobe killed by signal 11, no error output; stdout began ''"
    assert tool_failure_detail(failed) == "ffprobe exited 1: [error] Invalid data"


# --------------------------------------------------------------------------------------------------------------
# ffprobe on real files
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.media
def test_hls_and_concat_fixtures_are_playlists_ffprobe_would_follow(media: MediaLibrary) -> None:
    """The playlist fixtures are real: without the whitelists, ffprobe opens them and the files they name."""
    for playlist, expected in ((media.hls_playlist, "hls"), (media.concat_script, "concat")):
        result = subprocess.run(
            [ffprobe_path(), "-v", "error", "-of", "json", "-show_format", "-show_streams", playlist.name],
            cwd=playlist.parent,
            capture_output=True,
            text=True,
            env=tool_env(),
            check=True,
        )
        probed = json.loads(result.stdout)
        assert probed["format"]["format_name"] == expected
        # The picture's size is only in the media files the playlist names: they were opened.
        video = [(s["codec_name"], s["width"], s["height"]) for s in probed["streams"] if s["codec_type"] == "video"]
        assert video == [("h264", 320, 240)]


@pytest.mark.media
def test_playlist_is_refused_when_opened_not_after_reading_it(media: MediaLibrary) -> None:
    with pytest.raises(UploadRejected) as rejected:
        read_probe_json(media.hls_playlist)

    assert rejected.value.code is RejectionCode.UNSUPPORTED_FORMAT
    assert "not on whitelist" in rejected.value.detail


@pytest.mark.media
def test_truncated_file_with_index_first_probes_but_fails_the_decode_check(media: MediaLibrary) -> None:
    path = media.truncated_faststart
    probed = probe_media(path, size_bytes=path.stat().st_size)  # the header is intact: ffprobe alone accepts it
    assert isinstance(probed, ProbedMedia)
    assert probed.probe.durationMs >= 900

    with pytest.raises(UploadRejected) as rejected:
        check_decodes_to_end(path, probed)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert rejected.value.probe == probed.probe


@pytest.mark.media
def test_a_whole_file_whose_last_keyframes_do_not_decode_fails_the_decode_check(media: MediaLibrary) -> None:
    """Every packet is where the index says (the tail reaches the end), but not one keyframe there decodes."""
    path = media.zeroed_tail_faststart
    probed = probe_media(path, size_bytes=path.stat().st_size)
    assert isinstance(probed, ProbedMedia)

    with pytest.raises(UploadRejected) as rejected:
        check_decodes_to_end(path, probed)

    assert rejected.value.code is RejectionCode.CORRUPT_MEDIA
    assert rejected.value.message == "the video's frames could not be decoded"


@pytest.mark.media
def test_complete_file_passes_the_decode_check(media: MediaLibrary) -> None:
    path = media.small
    probed = probe_media(path, size_bytes=path.stat().st_size)
    assert isinstance(probed, ProbedMedia)
    check_decodes_to_end(path, probed)


@pytest.mark.parametrize(("demuxer", "image_format"), [("tiff_pipe", "TIFF"), ("bmp_pipe", "BMP")])
def test_an_image_in_a_format_not_accepted_is_named_in_plain_words(demuxer: str, image_format: str) -> None:
    """TIFF and BMP have no accepted signature, so ffprobe sees them and names its image demuxer: the client reads
    the format and what is accepted, not ffmpeg's demuxer name."""
    stderr = f"""[{demuxer} @ 0x1] [debug] Format {demuxer} probed with size=2048 and score=75
[{demuxer} @ 0x1] [error] Format not on whitelist '{PROBE_WHITELIST}'
[error] file:/tmp/ingest-x/source: Invalid argument"""

    rejection = classify_probe_failure(stderr)

    assert rejection.code is RejectionCode.UNSUPPORTED_FORMAT
    assert rejection.message == (
        f"the file is a {image_format} image, which is not accepted; images must be JPEG, PNG, WEBP, GIF or AVIF"
    )
    assert "_pipe" not in rejection.message
    assert "not on whitelist" in rejection.detail
