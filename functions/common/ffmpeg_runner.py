"""ffmpeg and ffprobe as child processes, for the functions that run them on an upload (transcode, audio).

Each runs with a deadline (killed when it passes), in `media_tools.tool_env()` rather than the function's environment
(a parser of uploaded files has no use for the function's AWS credentials), and its exit is mapped to the domain:
an error exit is FfmpegFailed with the end of stderr (the input cannot be processed: permanent), the deadline is
FfmpegTimedOut and any other signal FfmpegKilled (both transient: SQS delivers the message again).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from functions.common.media_tools import ffprobe_path, tool_env

STDERR_TAIL_CHARS = 500
STDERR_KEPT_BYTES = 256 * 1024
"""The end of ffmpeg's stderr that is kept: what it reports last (errors, loudnorm's measurement) is there."""
PROBE_OPTIONS = ("-v", "error", "-protocol_whitelist", "file", "-print_format", "json", "-show_format", "-show_streams")
PROBE_TIMEOUT_SECONDS = 60


class FfmpegFailed(RuntimeError):
    """ffmpeg exited with an error: the input cannot be processed as planned. Permanent, not worth a retry."""

    def __init__(self, returncode: int, stderr_tail: str) -> None:
        super().__init__(stderr_tail or f"ffmpeg exited with status {returncode}")
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class FfmpegTimedOut(RuntimeError):
    """ffmpeg did not finish before the deadline and was killed. Raised so SQS delivers the message again."""


class FfmpegKilled(RuntimeError):
    """ffmpeg was killed by a signal it did not ask for (e.g. out of memory). Raised so SQS retries."""


def stderr_tail(text: str, limit: int = STDERR_TAIL_CHARS) -> str:
    """The last non-empty lines of `text` that fit in `limit` characters: where ffmpeg says what went wrong."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    tail: list[str] = []
    size = 0
    for line in reversed(lines):
        if tail and size + len(line) + 1 > limit:
            break
        tail.insert(0, line[-limit:])
        size += len(line) + 1
    return "\n".join(tail)


def _read_end(stderr_file: IO[bytes]) -> str:
    stderr_file.seek(0, 2)
    stderr_file.seek(max(0, stderr_file.tell() - STDERR_KEPT_BYTES))
    return stderr_file.read().decode("utf-8", "replace")


def run_process(args: list[str], *, timeout_seconds: float, read_stdout: Callable[[IO[bytes]], None] | None) -> str:
    """Run ffmpeg (`args`, no shell) and kill it at the deadline; its stdout goes to `read_stdout` (or nowhere), the
    end of its stderr is returned."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as stderr_file:
        process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if read_stdout else subprocess.DEVNULL,
            stderr=stderr_file,
            env=tool_env(),
        )

        def kill_at_deadline() -> None:
            timed_out.set()
            process.kill()

        watchdog = threading.Timer(timeout_seconds, kill_at_deadline)
        watchdog.start()
        try:
            if read_stdout is not None and process.stdout is not None:
                read_stdout(process.stdout)
            returncode = process.wait()
        finally:
            watchdog.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if timed_out.is_set():
            raise FfmpegTimedOut(f"ffmpeg was still running after {timeout_seconds:.0f} s")
        if returncode < 0:
            raise FfmpegKilled(f"ffmpeg was killed by signal {-returncode}")
        stderr = _read_end(stderr_file)
        if returncode > 0:
            raise FfmpegFailed(returncode, stderr_tail(stderr))
        return stderr


def probe_file(path: Path, *, timeout_seconds: float = PROBE_TIMEOUT_SECONDS) -> dict[str, Any]:
    """ffprobe's JSON (format and streams) for a local file; FfmpegFailed when it cannot be read, naming the file by
    its name alone."""
    try:
        result = subprocess.run(
            [ffprobe_path(), *PROBE_OPTIONS, str(path)],
            stdin=subprocess.DEVNULL,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        raise FfmpegTimedOut(f"ffprobe was still running after {timeout_seconds:.0f} s") from err
    if result.returncode != 0:
        # ffprobe names the file it could not read; callers pass the reason on to the client, who may know the file
        # by its name but has no business knowing the function's working directory.
        raise FfmpegFailed(result.returncode, stderr_tail(result.stderr.replace(str(path), path.name)))
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise FfmpegFailed(0, f"ffprobe printed no JSON: {err}") from err
