"""The job gate: its answers read from the jobs table (moto), and how often a watched piece of work asks it."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from functions.common.job_gate import AttemptWatch, DynamoJobGate, WorkWithdrawn
from tests.functions.job_gate_samples import WithdrawingGate, cancel, ensure_running, move_to_next_attempt

JOB_ID = "01JGATE0000000000000000000"


def reason(gate: DynamoJobGate, attempt: int, job_id: str = JOB_ID) -> str | None:
    try:
        gate.check(job_id, attempt)
    except WorkWithdrawn as withdrawn:
        assert (withdrawn.job_id, withdrawn.attempt) == (job_id, attempt)
        return withdrawn.reason
    return None


def test_the_gate_withdraws_the_work_of_a_canceled_job_and_of_another_attempt(jobs_table: Any) -> None:
    gate = DynamoJobGate("jobs")
    ensure_running(JOB_ID)
    assert reason(gate, 1) is None
    assert reason(gate, 1, job_id="01JNOSUCHJOB00000000000000") == "the job no longer exists"

    move_to_next_attempt(JOB_ID)
    assert (reason(gate, 1), reason(gate, 2)) == ("the job runs attempt 2 now", None)

    cancel(JOB_ID)
    assert reason(gate, 2) == "the job was deleted"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_watch_asks_at_once_when_told_and_otherwise_every_few_seconds() -> None:
    gate, clock = WithdrawingGate(), Clock()
    watch = AttemptWatch(gate, JOB_ID, 2, every_seconds=5, clock=clock)

    watch.check_if_due()  # never asked yet: asks
    clock.now += 4.9
    watch.check_if_due()  # asked 4.9 s ago: does not
    clock.now += 0.1
    watch.check_if_due()  # 5 s: asks
    watch.check()  # always asks

    assert gate.checks == [(JOB_ID, 2)] * 3


class UnreachableGate:
    def check(self, job_id: str, attempt: int) -> None:
        raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "GetItem")


def test_a_read_that_fails_stops_no_encode_but_fails_the_check_before_an_output_is_stored() -> None:
    watch = AttemptWatch(UnreachableGate(), JOB_ID, 1, every_seconds=0)

    watch.check_if_due()  # from ffmpeg's progress: logged, the encode goes on

    with pytest.raises(ClientError):
        watch.check()  # before storing: the message is retried
