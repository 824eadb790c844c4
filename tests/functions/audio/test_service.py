"""The audio service's pure parts: the ffmpeg commands, loudnorm's report, the waveform's peaks, the output check."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from functions.audio.adapters import FfmpegTools
from functions.audio.service import (
    AudioMedia,
    Loudness,
    PeakAccumulator,
    audio_problems,
    decode_args,
    encode_args,
    format_whitelist,
    loudnorm_filter,
    measure_args,
    output_key,
    output_sample_rate,
    parse_loudnorm_report,
    plan_signature,
    unit_problem,
    waveform_levels,
)
from functions.common.media_tools import ffmpeg_path
from functions.contracts.jobs import Probe
from functions.contracts.media import AUDIO_DEMUXER_WHITELIST
from tests.functions.audio.conftest import AUDIO_UNIT, WAVEFORM_UNIT, make_tone, source_probe

LOUDNORM_STDERR = """\
Input #0, wav, from 'source':
  Duration: 00:00:04.00, bitrate: 1536 kb/s
[Parsed_loudnorm_1 @ 0x2e0e7b00]
{
\t"input_i" : "-52.25",
\t"input_tp" : "-48.50",
\t"input_lra" : "0.00",
\t"input_thresh" : "-62.25",
\t"output_i" : "-22.95",
\t"output_tp" : "-19.27",
\t"output_lra" : "0.00",
\t"output_thresh" : "-32.95",
\t"normalization_type" : "linear",
\t"target_offset" : "-0.05"
}
"""
PROBE = Probe(durationMs=4000, hasAudio=True, audioCodec="mp3", formatName="mp3", channels=2, sampleRate=44100)


def measured(**overrides: float) -> Loudness:
    values = {"integrated": -30.0, "truePeak": -20.0, "range": 3.0, "threshold": -40.0, "offset": 0.1}
    return Loudness(**(values | overrides))  # type: ignore[arg-type]


# --- loudnorm -----------------------------------------------------------------------------------------------------


def test_the_loudnorm_report_is_read_from_the_end_of_stderr() -> None:
    report = parse_loudnorm_report("[mp3 @ 0x1] {not json}\n" + LOUDNORM_STDERR)
    assert report == Loudness(-52.25, -48.5, 0.0, -62.25, -0.05, "linear")
    assert report.measurable


@pytest.mark.parametrize("stderr", ["", "Stream mapping: ...", '{\n"input_i" : "loud"\n}', '{"input_i": "-20"}'])
def test_no_report_or_a_broken_one_is_none(stderr: str) -> None:
    assert parse_loudnorm_report(stderr) is None


def test_silence_and_very_short_clips_are_not_measurable() -> None:
    silence = LOUDNORM_STDERR.replace('"-52.25"', '"-inf"').replace('"-0.05"', '"inf"')
    report = parse_loudnorm_report(silence)
    assert report is not None and math.isinf(report.integrated)
    assert not report.measurable
    assert not measured(integrated=-70.5, threshold=-80.5).measurable


def test_the_second_pass_applies_the_measurements_linearly() -> None:
    text = loudnorm_filter(-23, measured())
    assert text == (
        "loudnorm=I=-23:TP=-1.5:LRA=11:measured_I=-30.00:measured_TP=-20.00:measured_LRA=3.00"
        ":measured_thresh=-40.00:offset=0.10:linear=true:print_format=json"
    )


def test_measurements_loudnorm_would_read_as_missing_are_moved_a_hundredth() -> None:
    # A steady tone measures 0 LU of range, and -60 LUFS gates at exactly -70: loudnorm takes both for "not given"
    text = loudnorm_filter(-16.5, measured(integrated=-60.0, range=0.0, threshold=-70.0))
    assert "I=-16.5:" in text
    assert ":measured_LRA=0.01:" in text
    assert ":measured_thresh=-70.01:" in text


def test_measure_and_encode_commands(tmp_path: Path) -> None:
    source, output = tmp_path / "source", tmp_path / "audio.m4a"
    measure = measure_args("ffmpeg", source, probe=PROBE, loudness_target=-23)
    assert measure[-5:-3] == ["-af", "aformat=channel_layouts=stereo,loudnorm=I=-23:TP=-1.5:LRA=11:print_format=json"]
    assert measure[-3:] == ["-f", "null", "-"]
    encode = encode_args("ffmpeg", source, output, probe=PROBE, bitrate=96, loudness_target=-23, measured=measured())
    for flags in (
        ["-protocol_whitelist", "file", "-format_whitelist", "mp3", "-i", str(source)],
        ["-map", "0:a:0", "-vn", "-sn", "-dn"],
        ["-ar", "44100", "-ac", "2", "-c:a", "aac", "-b:a", "96k", "-map_metadata", "-1"],
        ["-movflags", "+faststart", "-f", "mp4", "-y", str(output)],
    ):
        assert " ".join(flags) in " ".join(encode)
    assert encode[encode.index("-af") + 1].startswith("aformat=channel_layouts=stereo,loudnorm=I=-23:")
    quiet = encode_args("ffmpeg", source, output, probe=PROBE, bitrate=96, loudness_target=-23, measured=None)
    assert quiet[quiet.index("-af") + 1] == "aformat=channel_layouts=stereo"


def test_mono_stays_mono() -> None:
    mono = PROBE.model_copy(update={"channels": 1})
    encode = encode_args("ffmpeg", Path("s"), Path("o"), probe=mono, bitrate=64, loudness_target=-23, measured=None)
    assert "aformat=channel_layouts=mono" in encode
    assert encode[encode.index("-ac") + 1] == "1"


@pytest.mark.parametrize(("rate", "expected"), [(44100, 44100), (22050, 22050), (96000, 48000), (7350, 48000)])
def test_the_output_keeps_the_sources_rate_when_aac_has_it(rate: int, expected: int) -> None:
    assert output_sample_rate(PROBE.model_copy(update={"sampleRate": rate})) == expected
    assert output_sample_rate(PROBE.model_copy(update={"sampleRate": None})) == 48000


@pytest.mark.parametrize(
    ("format_name", "whitelist"),
    [
        ("mp3", "mp3"),
        ("ogg", "ogg"),
        ("mov,mp4,m4a,3gp,3g2,mj2", "mov,mp4,m4a,3gp,3g2,mj2"),
        ("hls", AUDIO_DEMUXER_WHITELIST),
        (None, AUDIO_DEMUXER_WHITELIST),
    ],
)
def test_only_an_accepted_audio_demuxer_is_allowed(format_name: str | None, whitelist: str) -> None:
    assert format_whitelist(PROBE.model_copy(update={"formatName": format_name})) == whitelist


def test_decode_command_is_mono_16_bit_at_8_khz_on_stdout() -> None:
    args = decode_args("ffmpeg", Path("source"), probe=PROBE)
    assert " ".join(args).endswith("-ac 1 -ar 8000 -c:a pcm_s16le -f s16le pipe:1")
    assert "-format_whitelist" in args and "-protocol_whitelist" in args


@pytest.mark.media
def test_a_steady_tone_is_normalised_with_a_static_gain(tmp_path: Path) -> None:
    # GIVEN a tone measuring 0 LU of loudness range (which loudnorm alone would take for "not measured")
    source = make_tone(tmp_path / "tone", "wav", gain_db=-10)
    probe = Probe(**source_probe(source))
    tools, ffmpeg = FfmpegTools(), ffmpeg_path()
    measuring = measure_args(ffmpeg, source, probe=probe, loudness_target=-23)
    first = parse_loudnorm_report(tools.run_ffmpeg(measuring, timeout_seconds=60))
    assert first is not None and first.range == 0.0

    # WHEN the second pass runs with its measurements
    output = tmp_path / "out.m4a"
    encoding = encode_args(ffmpeg, source, output, probe=probe, bitrate=128, loudness_target=-23, measured=first)
    second = parse_loudnorm_report(tools.run_ffmpeg(encoding, timeout_seconds=60))

    # THEN loudnorm ran in linear mode (one gain, dynamics untouched), not its dynamic fallback
    assert second is not None and second.normalizationType == "linear"


# --- the waveform -------------------------------------------------------------------------------------------------


def s16le(*samples: int) -> bytes:
    return b"".join(sample.to_bytes(2, "little", signed=True) for sample in samples)


def test_peaks_are_taken_per_block_across_chunk_boundaries() -> None:
    peaks = PeakAccumulator(expected_samples=0, columns=4)
    assert peaks.block == 16
    data = s16le(*([100] * 16 + [-32768] + [5] * 15 + [7] * 16 + [-3]))
    for start in range(0, len(data), 7):  # odd-sized chunks split samples in two
        peaks.feed(data[start : start + 7])
    assert peaks.samples == 49
    assert peaks.columns(4) == [100, 32768, 7, 3]


def test_columns_group_blocks_evenly_and_repeat_them_when_there_are_fewer() -> None:
    peaks = PeakAccumulator(expected_samples=0, columns=2)
    peaks.feed(s16le(*[i * 100 for i in range(1, 9) for _ in range(16)]))
    assert peaks.columns(4) == [200, 400, 600, 800]
    assert peaks.columns(16) == [100, 100, 200, 200, 300, 300, 400, 400, 500, 500, 600, 600, 700, 700, 800, 800]


def test_nothing_decoded_gives_flat_columns() -> None:
    assert PeakAccumulator(expected_samples=8000, columns=10).columns(10) == [0] * 10


def test_blocks_are_sized_from_the_expected_duration() -> None:
    # 15 minutes at 8 kHz in 1800 columns: 4 blocks a column, whatever the duration
    assert PeakAccumulator(expected_samples=900 * 8000, columns=1800).block == 1000


def test_levels_are_scaled_to_the_loudest_column_but_not_beyond_the_floor() -> None:
    assert waveform_levels([16384, 8192, 0]) == [1.0, 0.5, 0.0]
    # -46 dBFS of hiss is drawn at half the height of the -40 dBFS floor, not blown up to full height
    hiss = round(32768 * 10 ** (-46 / 20))
    assert waveform_levels([hiss]) == [pytest.approx(0.5, abs=0.01)]
    assert waveform_levels([0, 0]) == [0.0, 0.0]


# --- plans and checks ---------------------------------------------------------------------------------------------


def test_keys_and_plans_are_deterministic() -> None:
    assert output_key("job-1", AUDIO_UNIT) == "outputs/job-1/audio.m4a"
    assert output_key("job-1", WAVEFORM_UNIT) == "outputs/job-1/waveform.png"
    assert plan_signature(AUDIO_UNIT, -23) == "aac 128k loudnorm I=-23:TP=-1.5:LRA=11"
    assert plan_signature(AUDIO_UNIT.model_copy(update={"audioBitrateKbps": None}), -16.5).startswith("aac 128k ")
    assert plan_signature(WAVEFORM_UNIT, -23) == "png 1800x280"


def test_units_this_function_cannot_make_are_named() -> None:
    assert unit_problem(AUDIO_UNIT) is None and unit_problem(WAVEFORM_UNIT) is None
    assert unit_problem(AUDIO_UNIT.model_copy(update={"format": None})) is None
    assert (
        unit_problem(WAVEFORM_UNIT.model_copy(update={"format": "webp"})) == "a waveform unit is made as png, not webp"
    )
    assert "at most 8192" in (unit_problem(WAVEFORM_UNIT.model_copy(update={"width": 100_000})) or "")


def test_output_problems() -> None:
    good = AudioMedia(codec="aac", durationMs=4000, sampleRate=44100, channels=2, bytes=65000, otherStreams=0)
    assert audio_problems(good, PROBE) == []
    bad = AudioMedia(codec="mp3", durationMs=0, sampleRate=48000, channels=2, bytes=0, otherStreams=1)
    assert audio_problems(bad, PROBE) == [
        "audio codec is mp3, expected aac",
        "has 1 stream(s) besides the audio, expected none",
        "duration is zero",
        "file is empty",
        "sample rate is 48000, expected 44100",
    ]
