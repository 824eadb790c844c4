"""The HLS text the packager reads and writes, and what it measures from it: pure functions, no ffmpeg."""

from __future__ import annotations

from fractions import Fraction

import pytest

from functions.common.unit_worker import OutputUnreadable
from functions.contracts.playback import HlsVariant
from functions.packager.service import (
    Bandwidth,
    MediaPlaylist,
    PlaylistSegment,
    RenditionMedia,
    RenditionRefused,
    aac_codec,
    absorb_short_last_segment,
    avc_codec_from_probe,
    avc_codec_from_record,
    codecs_attribute,
    find_avc_configuration,
    master_playlist,
    media_playlist_text,
    parse_media_playlist,
    variant_bandwidth,
)

FFMPEG_PLAYLIST = """#EXTM3U
#EXT-X-VERSION:7
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MAP:URI="init.mp4"
#EXTINF:2.000000,
seg_00000.m4s
#EXTINF:2.002000,
seg_00001.m4s
#EXTINF:0.500000,
seg_00002.m4s
#EXT-X-ENDLIST
"""


def variant(rendition: str, **overrides: object) -> HlsVariant:
    values: dict[str, object] = {
        "rendition": rendition,
        "key": f"outputs/job/hls/{rendition}/index.m3u8",
        "bandwidth": 1_234_567,
        "averageBandwidth": 1_000_001,
        "width": 1280,
        "height": 720,
        "codecs": "avc1.64001f,mp4a.40.2",
        "frameRate": 29.97,
        "segments": 3,
    }
    return HlsVariant.model_validate(values | overrides)


def media(**overrides: object) -> RenditionMedia:
    values: dict[str, object] = {
        "width": 1280,
        "height": 720,
        "durationMs": 6000,
        "frameRate": 30.0,
        "videoCodec": "h264",
        "profile": "High",
        "level": 31,
        "audioCodec": "aac",
        "audioProfile": "LC",
    }
    return RenditionMedia(**(values | overrides))  # type: ignore[arg-type]


# --- parsing a media playlist ---------------------------------------------------------------------------------------


def test_a_media_playlist_gives_its_target_init_segment_and_exact_durations() -> None:
    playlist = parse_media_playlist(FFMPEG_PLAYLIST)

    assert playlist.targetDuration == 2
    assert playlist.initUri == "init.mp4"
    assert [(s.uri, s.duration) for s in playlist.segments] == [
        ("seg_00000.m4s", Fraction(2)),
        ("seg_00001.m4s", Fraction("2.002")),
        ("seg_00002.m4s", Fraction(1, 2)),
    ]


def test_titles_after_the_duration_and_unknown_tags_are_ignored() -> None:
    text = '#EXTM3U\n#EXT-X-MAP:URI="init.mp4",BYTERANGE="10@0"\n#EXTINF:1.5,a title\n#EXT-X-FOO:1\nseg_1.m4s\n'

    playlist = parse_media_playlist(text)

    assert playlist.targetDuration is None
    assert [(s.uri, s.duration) for s in playlist.segments] == [("seg_1.m4s", Fraction(3, 2))]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "does not start with #EXTM3U"),
        ("#EXT-X-VERSION:7\n#EXTINF:2,\nseg.m4s\n", "does not start with #EXTM3U"),
        ("#EXTM3U\n#EXT-X-ENDLIST\n", "no segments"),
        ("#EXTM3U\nseg.m4s\n", "no EXTINF duration"),
        ("#EXTM3U\n#EXTINF:2,\n", "ends with a duration"),
        ("#EXTM3U\n#EXTINF:two,\nseg.m4s\n", "not a number"),
        ("#EXTM3U\n#EXTINF:-1,\nseg.m4s\n", "negative"),
        ("#EXTM3U\n#EXT-X-TARGETDURATION:2.5\n#EXTINF:2,\nseg.m4s\n", "target duration"),
        ('#EXTM3U\n#EXT-X-MAP:BYTERANGE="1@0"\n#EXTINF:2,\nseg.m4s\n', "names no URI"),
        ("#EXTM3U\n#EXTINF:2,\n../other-job/seg.m4s\n", "outside its folder"),
        ("#EXTM3U\n#EXTINF:2,\nhttps://example.com/seg.m4s\n", "outside its folder"),
        ('#EXTM3U\n#EXT-X-MAP:URI="/etc/passwd"\n#EXTINF:2,\nseg.m4s\n', "outside its folder"),
    ],
)
def test_a_playlist_that_is_not_what_ffmpeg_writes_does_not_read_back(text: str, reason: str) -> None:
    with pytest.raises(OutputUnreadable, match=reason):
        parse_media_playlist(text)


# --- bandwidth ------------------------------------------------------------------------------------------------------


def test_the_init_segment_counts_with_the_first_segment_in_the_peak_and_the_average() -> None:
    # GIVEN three 2 s segments of 100 kB, the first fetched after a 50 kB init segment
    sizes, durations = [100_000, 100_000, 100_000], [Fraction(2)] * 3

    bandwidth = variant_bandwidth(50_000, sizes, durations)

    # THEN the first segment peaks at 150 kB over 2 s, and the average is 350 kB over 6 s
    assert bandwidth == Bandwidth(peak=600_000, average=466_667)


def test_bandwidths_are_rounded_up_exactly() -> None:
    # 1001 bytes in 2.002 s is exactly 4000 bits/s; 1002 bytes is 4003.996..., which rounds up to 4004.
    assert variant_bandwidth(0, [1001], [Fraction("2.002")]) == Bandwidth(peak=4000, average=4000)
    assert variant_bandwidth(0, [1002], [Fraction("2.002")]) == Bandwidth(peak=4004, average=4004)


def test_the_peak_is_the_busiest_single_segment_the_last_one_included() -> None:
    # GIVEN two full segments and a 1 s last one holding a whole keyframe
    sizes, durations = [100_000, 120_000, 80_000], [Fraction(2), Fraction(2), Fraction(1)]

    # THEN every segment's own rate is covered: the last one's 640 kbit/s is the peak
    assert variant_bandwidth(0, sizes, durations).peak == 640_000


def test_the_peak_is_never_below_the_average() -> None:
    assert variant_bandwidth(0, [1_000, 1_000_000], [Fraction(1), Fraction(4)]).peak == 2_000_000
    assert variant_bandwidth(1_000, [10_000], [Fraction(1, 2)]) == Bandwidth(peak=176_000, average=176_000)


def test_a_last_segment_shorter_than_half_a_segment_is_absorbed_by_the_one_before() -> None:
    # GIVEN a playlist whose tail after the last 2 s boundary is one frame long
    playlist = MediaPlaylist(
        targetDuration=2,
        initUri="init.mp4",
        segments=[
            PlaylistSegment("seg_00000.m4s", Fraction(2)),
            PlaylistSegment("seg_00001.m4s", Fraction(2)),
            PlaylistSegment("seg_00002.m4s", Fraction(1, 30)),
        ],
    )

    absorbed = absorb_short_last_segment(playlist, 2)

    # THEN the last two are one segment of 2 s and a frame, and the target duration still covers every EXTINF
    assert absorbed is not None
    assert [(s.uri, s.duration) for s in absorbed.segments] == [
        ("seg_00000.m4s", Fraction(2)),
        ("seg_00001.m4s", Fraction(61, 30)),
    ]
    assert absorbed.targetDuration == 2
    text = media_playlist_text(absorbed)
    assert [s.uri for s in parse_media_playlist(text).segments] == ["seg_00000.m4s", "seg_00001.m4s"]
    assert "#EXT-X-TARGETDURATION:2\n" in text
    assert "#EXTINF:2.033333,\nseg_00001.m4s\n#EXT-X-ENDLIST" in text


def test_a_tail_of_half_a_segment_or_more_is_kept_and_the_target_covers_a_longer_merge() -> None:
    def playlist(*durations: Fraction) -> MediaPlaylist:
        segments = [PlaylistSegment(f"seg_{i:05d}.m4s", d) for i, d in enumerate(durations)]
        return MediaPlaylist(targetDuration=2, initUri="init.mp4", segments=segments)

    assert absorb_short_last_segment(playlist(Fraction(2), Fraction(1)), 2) is None
    assert absorb_short_last_segment(playlist(Fraction(1, 2)), 2) is None  # nothing before it
    merged = absorb_short_last_segment(playlist(Fraction(2), Fraction(9, 10)), 2)
    assert merged is not None and merged.targetDuration == 3  # 2.9 s rounds to 3


@pytest.mark.parametrize(
    ("sizes", "durations"),
    [([], []), ([1], [Fraction(1), Fraction(1)]), ([0], [Fraction(0)])],
)
def test_segments_that_do_not_add_up_do_not_read_back(sizes: list[int], durations: list[Fraction]) -> None:
    with pytest.raises(OutputUnreadable):
        variant_bandwidth(0, sizes, durations)


# --- codecs ---------------------------------------------------------------------------------------------------------

AVCC_HIGH_31 = bytes([1, 0x64, 0x00, 0x1F, 0xFF, 0xE1, 0x00, 0x04, 0x67, 0x64, 0x00, 0x1F])


def boxed(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def test_the_avcc_record_is_found_inside_an_init_segment_and_gives_the_codec_exactly() -> None:
    # GIVEN an init segment whose sample entry holds an avcC box, after a stray "avcC" in another box's bytes
    init = boxed(b"ftyp", b"iso6") + boxed(b"free", b"avcC!") + boxed(b"moov", boxed(b"avcC", AVCC_HIGH_31))

    record = find_avc_configuration(init)

    assert record == AVCC_HIGH_31
    assert avc_codec_from_record(record) == "avc1.64001f"


def test_x264_constrained_baseline_keeps_its_own_constraint_flags() -> None:
    # x264's ultrafast signals Constrained Baseline as constraint_set0+1 (0xc0), which only the record tells.
    assert avc_codec_from_record(bytes([1, 0x42, 0xC0, 0x0D])) == "avc1.42c00d"


def test_no_avcc_box_means_no_record() -> None:
    assert find_avc_configuration(boxed(b"ftyp", b"iso6") + boxed(b"moov", b"")) is None
    assert find_avc_configuration(b"avcC") is None
    with pytest.raises(OutputUnreadable):
        avc_codec_from_record(b"\x01\x64")


@pytest.mark.parametrize(
    ("profile", "level", "codec"),
    [
        ("High", 31, "avc1.64001f"),
        ("High", 40, "avc1.640028"),
        ("Main", 30, "avc1.4d401e"),
        ("Constrained Baseline", 30, "avc1.42e01e"),
        ("Baseline", 13, "avc1.42000d"),
    ],
)
def test_without_a_record_the_codec_comes_from_the_profile_name_and_level(profile: str, level: int, codec: str) -> None:
    assert avc_codec_from_probe(profile, level) == codec


@pytest.mark.parametrize(("profile", "level"), [("High 10", 31), ("High", None), (None, 31), ("High", 0)])
def test_a_profile_or_level_without_a_codec_string_is_refused(profile: str | None, level: int | None) -> None:
    with pytest.raises(RenditionRefused):
        avc_codec_from_probe(profile, level)


def test_aac_profiles_map_to_their_object_types() -> None:
    assert [aac_codec(p) for p in ("LC", None, "HE-AAC", "HE-AACv2")] == [
        "mp4a.40.2",
        "mp4a.40.2",
        "mp4a.40.5",
        "mp4a.40.29",
    ]
    with pytest.raises(RenditionRefused):
        aac_codec("Main")


def test_codecs_name_the_audio_only_when_there_is_audio() -> None:
    assert codecs_attribute(media(), AVCC_HIGH_31) == "avc1.64001f,mp4a.40.2"
    assert codecs_attribute(media(audioCodec=None, audioProfile=None), AVCC_HIGH_31) == "avc1.64001f"
    assert codecs_attribute(media(profile="Main", level=30), None) == "avc1.4d401e,mp4a.40.2"


# --- the master playlist --------------------------------------------------------------------------------------------


def test_the_master_playlist_lists_every_variant_in_ladder_order_with_relative_uris() -> None:
    ladder = [
        variant("720p", frameRate=29.97),
        variant("1080p", bandwidth=5_000_001, averageBandwidth=4_000_000, width=1920, height=1080, frameRate=30.0),
    ]

    assert master_playlist(ladder) == (
        "#EXTM3U\n"
        "#EXT-X-VERSION:7\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=1234567,AVERAGE-BANDWIDTH=1000001,RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"'
        ",FRAME-RATE=29.970\n"
        "720p/index.m3u8\n"
        '#EXT-X-STREAM-INF:BANDWIDTH=5000001,AVERAGE-BANDWIDTH=4000000,RESOLUTION=1920x1080,CODECS="avc1.64001f,mp4a.40.2"'
        ",FRAME-RATE=30.000\n"
        "1080p/index.m3u8\n"
    )


def test_a_frame_rate_is_written_with_three_decimals() -> None:
    text = master_playlist([variant("480p", frameRate=23.976023976)])
    assert ",FRAME-RATE=23.976\n" in text
