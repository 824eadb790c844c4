"""The local cloud's MediaConvert: a stand-in that speaks the service's API to the real botocore client and runs jobs
with ffmpeg against the emulated S3, announcing them on the emulated default event bus.

- API (`server.py`, `model.py`): CreateJob, GetJob, ListJobs, CancelJob and DescribeEndpoints on 127.0.0.1, parsed
  and validated by botocore's service model. A job whose settings the stand-in cannot honour is refused with
  BadRequestException naming the setting (`settings.py`), as MediaConvert refuses invalid settings.
- Jobs (`jobs.py`): queues, the request-token minute, states. A job waits in a bounded queue
  (TooManyRequestsException when full) for one of `concurrency` worker threads; a PAUSED queue keeps its jobs SUBMITTED.
- Runs (`runner.py`): input from S3, ffmpeg (`outputs/ffmpeg.py`) makes each FILE_GROUP MP4, outputs to S3 under
  MediaConvert's names (`outputs/naming.py`), events (`events.py`).

Every function worker gets `AWS_ENDPOINT_URL_MEDIACONVERT` (`function_environment`), which boto3 reads by itself, as it
reads `AWS_ENDPOINT_URL` for the moto server: a function that calls MediaConvert reaches the stand-in without knowing.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from local.mediaconvert.events import EventPublisher
from local.mediaconvert.jobs import Job, JobStatus, JobStore
from local.mediaconvert.model import bad_request, too_many_requests
from local.mediaconvert.runner import JobRunner
from local.mediaconvert.server import MediaConvertServer
from local.mediaconvert.settings import SettingsNotHonoured, read_job_settings
from local.permissions.roles import RoleNotAssumable
from local.runtime.clock import LocalClock

log = logging.getLogger("local.mediaconvert.service")

ENDPOINT_VARIABLE = "AWS_ENDPOINT_URL_MEDIACONVERT"
MAX_PENDING_JOBS = 100
POLL_SECONDS = 0.5


class Clients(Protocol):
    def client(self, service: str, credentials: Mapping[str, str] | None = None) -> Any: ...


RoleCredentials = Callable[[str], Mapping[str, str]]
"""A role ARN → temporary credentials of that role for MediaConvert (raises RoleNotAssumable if it may not)."""
Authorizer = Callable[[str, Mapping[str, str], dict[str, Any]], None]
"""(operation, request headers, params) → None, or raises ServiceError(403, ForbiddenException, ...)."""


@dataclass(frozen=True)
class StandInOptions:
    account_id: str
    region: str
    work_dir: Path
    clock: LocalClock
    concurrency: int = 1
    max_pending_jobs: int = MAX_PENDING_JOBS
    port: int = 0


class MediaConvertStandIn:
    def __init__(
        self,
        clients: Clients,
        options: StandInOptions,
        role_credentials: RoleCredentials | None = None,
        authorize: Authorizer | None = None,
    ) -> None:
        """`role_credentials` makes jobs read and write S3 as the role they pass (the local cloud's case; without it,
        with `clients`' own); `authorize` checks each API call's caller."""
        self.options = options
        self._role_credentials = role_credentials
        self.jobs = JobStore(options.region, options.account_id)
        self._events = EventPublisher(clients.client("events"), options.account_id)
        self._stopping = threading.Event()
        self._pending: queue.Queue[Job] = queue.Queue(maxsize=options.max_pending_jobs)
        self._runner = JobRunner(
            store=self.jobs,
            events=self._events,
            s3_for=lambda role: clients.client("s3", role_credentials(role) if role_credentials else None),
            work_root=options.work_dir,
            status_interval=options.clock.seconds,
            stopping=self._stopping,
        )
        self._server = MediaConvertServer(
            {
                "CreateJob": self.create_job,
                "GetJob": self.get_job,
                "ListJobs": self.list_jobs,
                "CancelJob": self.cancel_job,
                "DescribeEndpoints": self.describe_endpoints,
            },
            port=options.port,
            authorize=authorize,
        )
        self._workers: list[threading.Thread] = []

    @property
    def endpoint(self) -> str:
        return self._server.endpoint

    def function_environment(self) -> dict[str, str]:
        """What every local Lambda gets so that boto3's MediaConvert client reaches the stand-in."""
        return {ENDPOINT_VARIABLE: self.endpoint}

    def add_queue(self, name: str, arn: str | None = None, status: str = "ACTIVE") -> None:
        self.jobs.add_queue(name, arn, status)

    def export_jobs(self) -> list[dict[str, Any]]:
        return self.jobs.export()

    def restore_jobs(self, saved: list[dict[str, Any]]) -> int:
        """Jobs from a snapshot; the unfinished ones are queued to run again. Returns how many were queued."""
        queued = 0
        for record in saved:
            job = self.jobs.restore(record, read_job_settings(record["settings"]))
            if job is None:
                log.warning("MediaConvert job %s: its queue %s is gone; not restored", record["id"], record["queue"])
            elif job.status is JobStatus.SUBMITTED:
                self._admit(job)
                queued += 1
        return queued

    def start(self) -> None:
        self.options.work_dir.mkdir(parents=True, exist_ok=True)
        self._server.start()
        for index in range(self.options.concurrency):
            worker = threading.Thread(target=self._work, name=f"mediaconvert-{index}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def stop(self) -> None:
        self._stopping.set()
        self._server.stop()
        for worker in self._workers:
            worker.join(timeout=10)

    def _work(self) -> None:
        while not self._stopping.is_set():
            try:
                job = self._pending.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self._runner.run(job)

    def _admit(self, job: Job) -> None:
        if job.queue.status != "ACTIVE":
            return
        try:
            self._pending.put_nowait(job)
        except queue.Full as err:
            raise too_many_requests(f"{self.options.max_pending_jobs} jobs are waiting already") from err

    # --- operations (botocore parameters in, output parameters out) -----------------------------------------

    def create_job(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("JobTemplate"):
            raise bad_request("job templates are not emulated by the local MediaConvert")
        try:
            spec = read_job_settings(params["Settings"])
        except SettingsNotHonoured as err:
            raise bad_request(str(err)) from err
        if self._role_credentials is not None:
            try:
                self._role_credentials(params["Role"])
            except RoleNotAssumable as err:
                raise bad_request(f"Unable to assume role: {err}") from err
        job, created, described = self.jobs.create(params, spec, self._admit)
        if created:
            log.info("MediaConvert job %s submitted to %s", job.id, job.queue.name)
        return {"Job": described}

    def get_job(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Job": self.jobs.describe(self.jobs.get(params["Id"]))}

    def list_jobs(self, params: dict[str, Any]) -> dict[str, Any]:
        jobs, token = self.jobs.list(
            queue=params.get("Queue"),
            status=params.get("Status"),
            order=params.get("Order"),
            max_results=params.get("MaxResults"),
            next_token=params.get("NextToken"),
        )
        return {"Jobs": jobs, "NextToken": token}

    def cancel_job(self, params: dict[str, Any]) -> dict[str, Any]:
        job, finished = self.jobs.cancel(params["Id"])
        if finished:
            self._events.publish(job, "CANCELED")
        return {}

    def describe_endpoints(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"Endpoints": [{"Url": self.endpoint}]}
