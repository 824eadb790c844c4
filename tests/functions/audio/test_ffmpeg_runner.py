"""Running ffmpeg: stderr returned, stdout streamed, the end of stderr when it fails, kills at the deadline."""

from __future__ import annotations

import sys

import pytest

from functions.audio.adapters import parse_audio_probe, run_ffmpeg, stream_ffmpeg
from functions.common.ffmpeg_runner import FfmpegFailed, FfmpegKilled, FfmpegTimedOut, stderr_tail
from functions.common.unit_worker import OutputUnreadable


def python(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_stderr_tail_keeps_the_last_lines_that_fit() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n\n"
    assert stderr_tail(text, limit=20) == "line 98\nline 99"


def test_run_ffmpeg_returns_what_it_wrote_to_stderr() -> None:
    script = "import sys; print('ignored'); sys.stderr.write('[Parsed_loudnorm_0] {\"input_i\" : \"-20\"}\\n')"
    assert run_ffmpeg(python(script), timeout_seconds=30) == '[Parsed_loudnorm_0] {"input_i" : "-20"}\n'


def test_run_ffmpeg_reports_the_stderr_tail_of_a_failing_command() -> None:
    script = "import sys; sys.stderr.write('noise\\nsource: Invalid data\\n'); sys.exit(1)"
    with pytest.raises(FfmpegFailed) as raised:
        run_ffmpeg(python(script), timeout_seconds=30)
    assert raised.value.stderr_tail == "noise\nsource: Invalid data"


def test_stream_ffmpeg_hands_over_all_of_stdout() -> None:
    chunks: list[bytes] = []
    script = "import sys; sys.stdout.buffer.write(bytes(range(256)) * 1000)"
    stream_ffmpeg(python(script), timeout_seconds=30, on_chunk=chunks.append)
    assert b"".join(chunks) == bytes(range(256)) * 1000


@pytest.mark.parametrize("chunked", [False, True])
def test_ffmpeg_is_killed_at_the_deadline(chunked: bool) -> None:
    with pytest.raises(FfmpegTimedOut):
        if chunked:
            stream_ffmpeg(["sleep", "30"], timeout_seconds=0.2, on_chunk=lambda chunk: None)
        else:
            run_ffmpeg(["sleep", "30"], timeout_seconds=0.2)


def test_ffmpeg_killed_by_a_signal_is_not_a_media_failure() -> None:
    with pytest.raises(FfmpegKilled):
        run_ffmpeg(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), timeout_seconds=30)


def test_the_output_probe_lists_every_stream_but_the_audio_as_unexpected() -> None:
    report = {
        "streams": [
            {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 2},
            {"codec_type": "video", "codec_name": "png"},
        ],
        "format": {"duration": "4.010000", "size": "66000"},
    }
    media = parse_audio_probe(report)
    assert (media.codec, media.durationMs, media.sampleRate, media.channels) == ("aac", 4010, 44100, 2)
    assert (media.bytes, media.otherStreams) == (66000, 1)
    with pytest.raises(OutputUnreadable, match="no audio stream"):
        parse_audio_probe({"streams": [{"codec_type": "video"}], "format": {}})
