"""The retry schedule, and how its waits are laid onto SQS's limits.

After attempt n fails, attempt n+1 is due `delays[n-1]` seconds later (with jitter); after the last attempt the
task is dead-lettered. Each attempt is a new task message, so its receive count starts again at zero.

AWS constraints that shape the waits: SQS delays a sent message by at most 900 s (DelaySeconds), and a received
message can be hidden by ChangeMessageVisibility for at most 12 h from its receipt. A wait longer than 15 minutes
is therefore sent with the 15-minute delay and, each time the task arrives early, deferred again by up to 11 h 45 m
(the 12 h limit less a margin for the time between receipt and the deferral). Every deferral is one more receive,
so the queue's maxReceiveCount must exceed the deferrals the longest wait needs (`receives_for_longest_wait`), or
SQS would dead-letter a healthy task before its schedule ends.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass

SQS_MAX_DELAY_SECONDS = 900
SQS_MAX_VISIBILITY_SECONDS = 43_200
DEFER_MARGIN_SECONDS = 900
DEFER_STEP_SECONDS = SQS_MAX_VISIBILITY_SECONDS - DEFER_MARGIN_SECONDS
DEFAULT_JITTER = 0.1
MAX_DELAY_SECONDS = 2 * 86_400  # a task must outlive its wait in the queue (retention 4 days)
MAX_RETRIES = 20
STANDARD_DELAYS = (5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400)
"""Standard Webhooks' example: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (about 75 h in all)."""


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between attempts, in seconds; one more attempt than delays."""

    delays: tuple[int, ...] = STANDARD_DELAYS
    """Seconds from a failed attempt to the next one, in order."""
    jitter: float = DEFAULT_JITTER
    """Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]."""

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    @property
    def longest_wait_seconds(self) -> float:
        """The longest any task can wait for its attempt, jitter included."""
        return max(self.delays, default=0) * (1 + self.jitter)

    def delay_after(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds until the attempt after `attempt` (1-based); None when `attempt` was the last."""
        if attempt < 1:
            raise ValueError(f"attempts count from 1, got {attempt}")
        if attempt > len(self.delays):
            return None
        return self.delays[attempt - 1] * (1 + self.jitter * (2 * rng.random() - 1))


def parse_schedule(values: Iterable[object]) -> RetrySchedule:
    """A schedule from config (a list of whole seconds); ValueError naming what is wrong."""
    delays = list(values)
    if not 1 <= len(delays) <= MAX_RETRIES:
        raise ValueError(f"webhook retry schedule has 1 to {MAX_RETRIES} delays, got {len(delays)}")
    for delay in delays:
        if isinstance(delay, bool) or not isinstance(delay, int) or not 1 <= delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"webhook retry delays are whole seconds from 1 to {MAX_DELAY_SECONDS}, got {delay!r}")
    return RetrySchedule(delays=tuple(delays))


def schedule_to_env(schedule: RetrySchedule) -> str:
    return ",".join(str(delay) for delay in schedule.delays)


def schedule_from_env(raw: str) -> RetrySchedule:
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if not all(item.isascii() and item.isdigit() for item in items):
        raise ValueError(f"webhook retry schedule is a comma list of seconds, got {raw!r}")
    return parse_schedule(int(item) for item in items)


def send_delay(wait_seconds: float) -> int:
    """DelaySeconds for a task due in `wait_seconds`: as much of the wait as SQS allows."""
    return min(max(0, math.ceil(wait_seconds)), SQS_MAX_DELAY_SECONDS)


def defer_seconds(remaining_seconds: float) -> int:
    """Visibility timeout that hides an early task until it is due, or for as long as one deferral may."""
    return min(max(1, math.ceil(remaining_seconds)), DEFER_STEP_SECONDS)


def deferrals_needed(wait_seconds: float) -> int:
    """Early receives a task due in `wait_seconds` goes through: the wait beyond its send delay, in deferral steps."""
    return math.ceil(max(0.0, wait_seconds - SQS_MAX_DELAY_SECONDS) / DEFER_STEP_SECONDS)


def receives_for_longest_wait(schedule: RetrySchedule) -> int:
    """Receives the longest-waiting task uses up before its attempt (add the failures you tolerate)."""
    return deferrals_needed(schedule.longest_wait_seconds)
