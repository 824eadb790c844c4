"""Test-only fault injection for the local cloud: installed by `tests/e2e/faulty_cloud.py`, never by `local` itself.

It wraps the local cloud's runtime classes in the cloud's own process:

- `Worker.invoke` (one Lambda invocation): `throw` reports a handler exception (before or after the handler ran),
  `crash` SIGKILLs the worker at a random moment of the invocation, `timeout` does the same and reports Lambda's
  `Sandbox.Timedout` (as if the deadline had come then), `kill_encode` SIGKILLs a transcode worker and its ffmpeg
  while the encode runs;
- `SqsEventSource._poll_once` (S3, SNS and EventBridge into SQS, then Lambda): `duplicate` sends a copy of a received
  message back to its queue (the upstream publisher delivering twice) or leaves a handled one undeleted (SQS
  redelivering it); `reorder` shuffles each batch and holds messages back for a second or two;
- `AsyncDeliveryLoop._deliver` (EventBridge to Lambda): the same two, on the local delivery queue.

What to inject is read from `faults.json` in the state directory whenever it changes: named plans, and the plan of
each job (job IDs appear in every message and event), so batches under different faults run side by side in one cloud
and anything of no listed job passes untouched. Every decision comes from a seeded generator keyed by the plan, the hop
and its call count, so a run is reproducible as far as thread scheduling allows. Each injected fault is appended to
`faults-injected.jsonl`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from local.runtime import event_sources, workers
from local.runtime.workers import FunctionError, FunctionTimeout, WorkerCrashed

FAULTS_FILE = "faults.json"
INJECTED_FILE = "faults-injected.jsonl"
JOB_ID = re.compile(r"\b[0-9A-HJKMNP-TV-Z]{26}\b")
ENCODER = "ffmpeg"
ENCODE_WATCH_SECONDS = 10.0
HOLD_BACK_SECONDS = (1, 3)


@dataclass(frozen=True)
class FaultPlan:
    """What to inject: shares of invocations per function-name fragment, and shares of messages at every hop."""

    name: str = "none"
    seed: int = 0
    throw: dict[str, float] = field(default_factory=dict)
    crash: dict[str, float] = field(default_factory=dict)
    timeout: dict[str, float] = field(default_factory=dict)
    kill_encode: float = 0.0
    """Share of transcode invocations killed, worker and ffmpeg, while ffmpeg runs."""
    duplicate: float = 0.0
    reorder: float = 0.0

    def invocation_fault(self, function: str, roll: float) -> str | None:
        """The fault for one invocation of `function`, given a uniform roll in [0, 1)."""
        shares = [(kind, _share(getattr(self, kind), function)) for kind in ("throw", "crash", "timeout")]
        if "transcode" in function:
            shares.append(("kill_encode", self.kill_encode))
        threshold = 0.0
        for kind, share in shares:
            threshold += share
            if roll < threshold:
                return kind
        return None


def _share(shares: dict[str, float], function: str) -> float:
    return sum(share for fragment, share in shares.items() if fragment in function)


def save_faults(state_dir: Path, plans: list[FaultPlan], jobs: dict[str, str]) -> None:
    """Writes what the injector reads: the plans by name, and each job's plan name."""
    document = {"plans": [asdict(plan) for plan in plans], "jobs": jobs}
    temporary = state_dir / f"{FAULTS_FILE}.tmp"
    temporary.write_text(json.dumps(document))
    temporary.replace(state_dir / FAULTS_FILE)


class Injector:
    """The plans (re-read when their file changes), their seeded dice, and the record of what was injected."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._plans: dict[str, FaultPlan] = {}
        self._plan_of_job: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._counts: dict[str, int] = {}
        self._handled: set[str] = set()

    def _reload(self) -> None:
        path = self.state_dir / FAULTS_FILE
        try:
            status = path.stat()
        except FileNotFoundError:
            return
        stamp = (status.st_mtime_ns, status.st_size)
        with self._lock:
            if stamp == self._stamp:
                return
            document = json.loads(path.read_text())
            self._plans = {plan["name"]: FaultPlan(**plan) for plan in document["plans"]}
            self._plan_of_job = dict(document["jobs"])
            self._stamp = stamp

    def plan_for(self, payload: Any) -> FaultPlan | None:
        """The plan of the first listed job `payload` mentions; None when it concerns no listed job."""
        self._reload()
        text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        with self._lock:
            for job_id in JOB_ID.findall(text):
                if job_id in self._plan_of_job:
                    return self._plans.get(self._plan_of_job[job_id])
        return None

    def roll(self, plan: FaultPlan, hop: str) -> float:
        """A uniform number for the next decision at `hop`, from the plan's seed and the hop's call count."""
        key = f"{plan.name}:{hop}"
        with self._lock:
            count = self._counts.get(key, 0)
            self._counts[key] = count + 1
        return random.Random(f"{plan.seed}:{key}:{count}").random()

    def first_time(self, key: str) -> bool:
        """True once per key: a message is duplicated or held back at most once, so faults never loop."""
        with self._lock:
            if key in self._handled:
                return False
            self._handled.add(key)
            return True

    def record(self, plan: FaultPlan, kind: str, where: str, payload: Any) -> None:
        entry = {
            "plan": plan.name,
            "kind": kind,
            "where": where,
            "jobIds": sorted(set(JOB_ID.findall(json.dumps(payload, default=str)))),
            "at": time.time(),
        }
        with self._lock, (self.state_dir / INJECTED_FILE).open("a") as log:
            log.write(json.dumps(entry) + "\n")


def read_injected(state_dir: Path) -> list[dict[str, Any]]:
    path = state_dir / INJECTED_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- invocations ------------------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (from /proc; the worker's ffmpeg runs as its child)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            direct = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, direct):
            found += [child, *_children(child)]
    return found


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _kill_tree(pid: int) -> None:
    for process in [*_children(pid), pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process, signal.SIGKILL)


def _encoder_running(pid: int) -> bool:
    return any(_name(child).startswith(ENCODER) for child in _children(pid))


class Killer:
    """A thread that SIGKILLs a worker and its children once `ready()` holds, or at the deadline, unless stopped."""

    def __init__(self, pid: int, ready: Callable[[], bool], deadline_seconds: float) -> None:
        self.caught_ready = False
        """The kill came when `ready()` held (for kill_encode: while ffmpeg ran)."""
        self._pid = pid
        self._ready = ready
        self._deadline = time.monotonic() + deadline_seconds
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"fault-killer-{pid}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            self.caught_ready = self._ready()
            if self.caught_ready or time.monotonic() > self._deadline:
                _kill_tree(self._pid)
                return
            self._done.wait(0.005)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def _faulty_worker_invoke(injector: Injector, original: Callable[..., Any]) -> Callable[..., Any]:
    def invoke(worker: workers.Worker, event: Any, request_id: str) -> Any:
        function = worker.spec.name
        plan = injector.plan_for(event)
        roll = injector.roll(plan, f"invoke:{function}") if plan else 1.0
        kind = plan.invocation_fault(function, roll) if plan else None
        if plan is None or kind is None:
            return original(worker, event, request_id)
        injector.record(plan, kind, function, event)
        if kind == "throw":
            # A handler exception, reported before the handler ran or after its side effects, half the time each.
            if roll * 1000 % 2 >= 1:
                original(worker, event, request_id)
            raise FunctionError(function, {"errorType": "InjectedFault", "errorMessage": f"injected throw ({kind})"})
        if kind == "kill_encode":
            ready: Callable[[], bool] = lambda: _encoder_running(worker.pid)  # noqa: E731
            watch_seconds = ENCODE_WATCH_SECONDS
        else:
            # Killed a moment into the invocation: before, during or after the handler's own work.
            ready, watch_seconds = (lambda: False), (roll * 1000 % 1) * 0.3
        killer = Killer(worker.pid, ready, watch_seconds)
        try:
            original(worker, event, request_id)
        except WorkerCrashed:
            pass
        finally:
            killer.stop()
        worker.kill()
        if killer.caught_ready:
            injector.record(plan, "killed_mid_encode", function, event)
        if kind == "timeout":
            message = f"Task timed out after {worker.spec.timeout_seconds} s (injected)"
            raise FunctionTimeout(function, {"errorType": "Sandbox.Timedout", "errorMessage": message})
        raise WorkerCrashed(function, {"errorType": "Runtime.ExitError", "errorMessage": f"injected {kind}: SIGKILL"})

    return invoke


# --- deliveries -------------------------------------------------------------------------------------------------


def _send_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    """ReceiveMessage's message attributes in SendMessage's shape."""
    keys = ("DataType", "StringValue", "BinaryValue")
    return {name: {k: value[k] for k in keys if k in value} for name, value in attributes.items()}


def _hold_back(sqs: Any, queue_url: str, message: dict[str, Any], roll: float) -> None:
    """The message becomes visible again in a second or few, after messages received later."""
    low, high = HOLD_BACK_SECONDS
    seconds = low + int(roll * 1000) % (high - low + 1)
    sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=seconds)


@dataclass
class Hop:
    """One delivery hop: a queue the local cloud receives from, and its name in the injected-faults record."""

    injector: Injector
    name: str
    sqs: Any
    queue_url: str

    def duplicate(self, plan: FaultPlan, message: dict[str, Any]) -> None:
        """Sends a copy of the message back to its queue: the publisher (S3, SNS, EventBridge) delivering twice."""
        roll = self.injector.roll(plan, f"duplicate:{self.queue_url}") if plan.duplicate else 1.0
        if roll < plan.duplicate and self.injector.first_time(f"copy:{message['MessageId']}"):
            self.injector.record(plan, "duplicate", self.name, message["Body"])
            attributes = _send_attributes(message.get("MessageAttributes", {}))
            extra = {"MessageAttributes": attributes} if attributes else {}
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["Body"], **extra)

    def hold_back(self, plan: FaultPlan, message: dict[str, Any]) -> bool:
        """Holds the message back for a second or few, so later ones overtake it; True when it did."""
        return self._hidden(plan, message, share=plan.reorder, roll_key="reorder", once_key="hold", kind="reorder")

    def redeliver(self, plan: FaultPlan, message: dict[str, Any]) -> bool:
        """Leaves a handled message undeleted, so SQS delivers it again; True when it did."""
        return self._hidden(
            plan, message, share=plan.duplicate, roll_key="redeliver", once_key="redeliver", kind="redeliver"
        )

    def _hidden(
        self, plan: FaultPlan, message: dict[str, Any], *, share: float, roll_key: str, once_key: str, kind: str
    ) -> bool:
        """For `share` of the messages (each at most once): hidden a while, so SQS hands it over again later."""
        roll = self.injector.roll(plan, f"{roll_key}:{self.queue_url}") if share else 1.0
        if roll < share and self.injector.first_time(f"{once_key}:{message['MessageId']}"):
            self.injector.record(plan, kind, self.name, message["Body"])
            _hold_back(self.sqs, self.queue_url, message, roll)
            return True
        return False


def _sqs_hop(injector: Injector, source: event_sources.SqsEventSource) -> Hop:
    # The local cloud's own credentials: these moves are the fault's doing, not the function's.
    return Hop(injector, source.name, source._aws.client("sqs"), source.queue_url)


def _faulty_sqs_receive(injector: Injector, original: Callable[..., Any]) -> Callable[..., Any]:
    """SqsEventSource._receive_batch, with duplicated, held-back and shuffled messages."""

    def receive_batch(source: event_sources.SqsEventSource) -> list[dict[str, Any]]:
        messages = original(source)
        if not messages:
            return messages
        hop = _sqs_hop(injector, source)
        delivered = []
        for message in messages:
            plan = injector.plan_for(message["Body"])
            if plan is not None:
                hop.duplicate(plan, message)
                if hop.hold_back(plan, message):
                    continue
            delivered.append(message)
        if any(injector.plan_for(m["Body"]) for m in delivered):
            # Reordered within the batch too: no handler may rely on the order of a batch's records.
            random.Random(len(delivered)).shuffle(delivered)
        return delivered

    return receive_batch


def _faulty_sqs_settle(injector: Injector, original: Callable[..., Any]) -> Callable[..., Any]:
    """SqsEventSource._settle, with some handled messages left undeleted: SQS delivers them again."""

    def settle(source: event_sources.SqsEventSource, succeeded: list[Any], failed: list[Any]) -> None:
        hop = _sqs_hop(injector, source)
        kept = []
        for message in succeeded:
            plan = injector.plan_for(message["Body"])
            if plan is None or not hop.redeliver(plan, message):
                kept.append(message)
        original(source, kept, failed)

    return settle


def _faulty_async_deliver(injector: Injector, original: Callable[..., Any]) -> Callable[..., Any]:
    """AsyncDeliveryLoop._deliver (EventBridge to Lambda), with duplicated and held-back events."""

    def deliver(loop: event_sources.AsyncDeliveryLoop, message: dict[str, Any]) -> None:
        plan = injector.plan_for(message["Body"])
        if plan is not None:
            hop = Hop(injector, loop.name, loop.emulator.client("sqs"), loop.delivery.queue_url)
            hop.duplicate(plan, message)
            if hop.hold_back(plan, message):
                loop._slots.release()  # what _deliver does once it is done with a message
                return
        original(loop, message)

    return deliver


def install(state_dir: Path) -> Injector:
    """Wraps the runtime classes of this process; a cloud started after this call injects what `faults.json` says."""
    injector = Injector(state_dir)
    workers.Worker.invoke = _faulty_worker_invoke(injector, workers.Worker.invoke)  # type: ignore[method-assign]
    source = event_sources.SqsEventSource
    source._receive_batch = _faulty_sqs_receive(injector, source._receive_batch)  # type: ignore[method-assign]
    source._settle = _faulty_sqs_settle(injector, source._settle)  # type: ignore[method-assign]
    loop = event_sources.AsyncDeliveryLoop
    loop._deliver = _faulty_async_deliver(injector, loop._deliver)  # type: ignore[method-assign]
    return injector
