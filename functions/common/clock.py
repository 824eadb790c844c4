"""The one clock the functions read: epoch milliseconds, the unit of every time on a job record."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
