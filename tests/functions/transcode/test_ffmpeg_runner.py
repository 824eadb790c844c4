"""Running ffmpeg: the end of stderr when it fails, and a kill at the deadline."""

from __future__ import annotations

import sys

import pytest

from functions.common.ffmpeg_runner import FfmpegFailed, FfmpegTimedOut, stderr_tail
from functions.transcode.adapters import run_ffmpeg


def test_stderr_tail_keeps_the_last_lines_that_fit() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n\n"
    assert stderr_tail(text, limit=20) == "line 98\nline 99"
    assert stderr_tail("x" * 50, limit=10) == "x" * 10


def test_run_ffmpeg_reports_the_stderr_tail_of_a_failing_command() -> None:
    script = "import sys; print('out_time_us=1'); sys.stderr.write('noise\\nsource: Invalid data\\n'); sys.exit(1)"
    lines: list[str] = []
    with pytest.raises(FfmpegFailed) as raised:
        run_ffmpeg([sys.executable, "-c", script], timeout_seconds=30, on_progress_line=lines.append)
    assert raised.value.stderr_tail == "noise\nsource: Invalid data"
    assert lines == ["out_time_us=1\n"]


def test_run_ffmpeg_kills_a_command_at_the_deadline() -> None:
    with pytest.raises(FfmpegTimedOut):
        run_ffmpeg(["sleep", "30"], timeout_seconds=0.2, on_progress_line=lambda line: None)
