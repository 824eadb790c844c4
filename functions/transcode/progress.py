"""Turning ffmpeg's `-progress` output (key=value lines) into a few throttled percentages. Pure."""

from __future__ import annotations


def out_time_us(line: str) -> int | None:
    """Microseconds of output written so far, from an `out_time_us=` line; None for any other line or `N/A`."""
    key, _, value = line.strip().partition("=")
    if key != "out_time_us":
        return None
    value = value.strip()
    return int(value) if value.lstrip("-").isdigit() else None


class ProgressMilestones:
    """Reports each multiple of `step` percent once as the encode passes it; never 0 or 100 (start and end are
    announced by the Progress 0 and Completed events)."""

    def __init__(self, duration_ms: int, step: int = 25) -> None:
        self._duration_us = duration_ms * 1000
        self._step = step
        self._reported = 0

    def feed(self, line: str) -> int | None:
        """The milestone this line crosses, if any."""
        written = out_time_us(line)
        if written is None or self._duration_us <= 0:
            return None
        percent = min(99, written * 100 // self._duration_us)
        milestone = percent // self._step * self._step
        if milestone <= self._reported:
            return None
        self._reported = milestone
        return milestone
