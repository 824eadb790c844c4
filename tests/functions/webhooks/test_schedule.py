"""The retry schedule and how its waits fit SQS: delays with jitter, send delays, deferrals, receive budget."""

from __future__ import annotations

import random

import pytest

from functions.webhooks.service import (
    DEFER_STEP_SECONDS,
    STANDARD_DELAYS,
    RetrySchedule,
    defer_seconds,
    deferrals_needed,
    parse_schedule,
    receives_for_longest_wait,
    schedule_from_env,
    schedule_to_env,
    send_delay,
)


def test_the_default_schedule_backs_off_over_about_three_days_in_ten_attempts() -> None:
    schedule = RetrySchedule()
    assert schedule.delays == STANDARD_DELAYS == (5, 300, 1800, 7200, 18_000, 36_000, 50_400, 72_000, 86_400)
    assert schedule.attempts == 10
    assert 75 * 3600 < sum(schedule.delays) < 76 * 3600
    assert schedule.longest_wait_seconds == pytest.approx(86_400 * 1.1)


def test_each_delay_is_jittered_within_ten_percent_and_the_last_attempt_has_no_successor() -> None:
    schedule = RetrySchedule()
    rng = random.Random(7)
    for attempt, delay in enumerate(schedule.delays, start=1):
        samples = [schedule.delay_after(attempt, rng) for _ in range(200)]
        assert all(sample is not None and 0.9 * delay <= sample <= 1.1 * delay for sample in samples)
        assert len({round(sample or 0, 6) for sample in samples}) > 100  # jittered, not constant
    assert schedule.delay_after(10, rng) is None
    assert RetrySchedule(delays=(10,), jitter=0).delay_after(1, rng) == 10
    with pytest.raises(ValueError, match="count from 1"):
        schedule.delay_after(0, rng)


def test_waits_are_laid_onto_sqs_limits() -> None:
    assert [send_delay(s) for s in (0, 0.2, 5, 899.5, 900, 3600, 86_400)] == [0, 1, 5, 900, 900, 900, 900]
    assert DEFER_STEP_SECONDS == 43_200 - 900  # 12 h visibility from receipt, less a margin
    assert [defer_seconds(s) for s in (0.1, 30, 42_300, 90_000)] == [1, 30, 42_300, 42_300]
    # A wait beyond the 15-minute send delay is covered by 11 h 45 m deferrals, one receive each.
    assert [deferrals_needed(s) for s in (5, 900, 901, 900 + 42_300, 900 + 42_301, 95_040)] == [0, 0, 1, 1, 2, 3]
    assert receives_for_longest_wait(RetrySchedule()) == 3
    assert receives_for_longest_wait(RetrySchedule(delays=(1, 2, 3))) == 0


def test_a_task_deferred_step_by_step_is_due_on_time_within_the_receives_budgeted() -> None:
    """Simulate the longest wait: send delay, then deferrals until due; count the early receives."""
    schedule = RetrySchedule()
    wait = schedule.longest_wait_seconds
    elapsed, early_receives = float(send_delay(wait)), 0
    while elapsed < wait - 1:
        elapsed += defer_seconds(wait - elapsed)
        early_receives += 1
    assert early_receives == receives_for_longest_wait(schedule)
    assert wait - 1 <= elapsed <= wait + 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([], "1 to 20 delays"),
        (list(range(1, 22)), "1 to 20 delays"),
        ([5, 0], "whole seconds"),
        ([5, 2 * 86_400 + 1], "whole seconds"),
        ([5, 1.5], "whole seconds"),
        ([True], "whole seconds"),
        (["5"], "whole seconds"),
    ],
)
def test_invalid_schedules_are_refused(values: list[object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_schedule(values)


def test_the_schedule_travels_through_the_environment_unchanged() -> None:
    schedule = parse_schedule([1, 2, 30])
    assert schedule_to_env(schedule) == "1,2,30"
    assert schedule_from_env(" 1, 2 ,30 ") == schedule
    with pytest.raises(ValueError, match="comma list"):
        schedule_from_env("1,two")
