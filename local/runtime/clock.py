"""The local clock: service-side waits (schedules, a failed message's visibility, async retry back-off, event age)
run compressed; a function's own timeout never is."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LocalClock:
    """Maps AWS service durations onto local time: `scale` 0.01 turns five minutes into three seconds."""

    scale: float = 0.01
    minimum_seconds: float = 0.2

    def seconds(self, aws_seconds: float) -> float:
        return max(self.minimum_seconds, aws_seconds * self.scale)
