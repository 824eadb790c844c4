"""`python -m local ops`: the operator's view of a stack's queues, dead-letter queues and jobs.

The same commands work against the local cloud (its `.local/outputs.json`, through the running emulator) and against a
deployed stack (the JSON of `pulumi stack output --json`, with boto3's default credentials). Everything is found from
the stack's outputs: `deadLetterQueueUrls` (label -> DLQ URL; the label names the consuming function), each DLQ's
source queue (SQS's ListDeadLetterSourceQueues: the work queue whose RedrivePolicy points at it) and `jobsTable`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.contracts.events import SOURCE as EVENT_SOURCE
from local.cli.display import table, truncate

MAX_LISTED_PER_QUEUE = 100
"""`dlq list` and `requeue` look at no more than this many messages of one DLQ."""
LOOK_VISIBILITY_SECONDS = 30
"""How long a looked-at message stays hidden while a command pages through a DLQ; it is made visible again after."""
UPLOAD_KEY = re.compile(r"uploads/(?P<job_id>[A-Za-z0-9][A-Za-z0-9_-]{0,127})/source")
ERROR_ATTRIBUTES = ("ErrorMessage", "ERROR_MESSAGE", "reason")
"""Why a message was dead-lettered, where the sender said: Lambda's DLQ, EventBridge's target DLQ, the webhooks
function's parked tasks."""


class OperatorError(Exception):
    """A request the operator CLI refuses, with what to do instead."""


@dataclass
class Target:
    """A stack's outputs and boto3 clients that reach its resources."""

    outputs: dict[str, Any]
    client: Callable[[str], Any]
    description: str

    @property
    def dead_letter_queues(self) -> dict[str, str]:
        return dict(self.outputs.get("deadLetterQueueUrls") or {})


def local_target(state_dir: Path) -> Target:
    """The running local cloud: its outputs and the emulator's admin clients."""
    from local.engine.emulator import Emulator

    outputs_file, deployment_file = state_dir / "outputs.json", state_dir / "deployment.json"
    if not outputs_file.exists() or not deployment_file.exists():
        raise OperatorError(f"no local cloud is running for {state_dir}: start `python -m local up`")
    outputs = json.loads(outputs_file.read_text())
    region = json.loads(deployment_file.read_text())["region"]
    emulator = Emulator.attach(outputs["emulatorEndpoint"], region)
    return Target(outputs, emulator.client, f"the local cloud at {outputs['emulatorEndpoint']}")


def stack_target(outputs_file: Path, region: str | None) -> Target:
    """A deployed stack, from `pulumi stack output --json > FILE`, with boto3's default credential chain."""
    import boto3

    outputs = json.loads(outputs_file.read_text())
    if "deadLetterQueueUrls" not in outputs:
        raise OperatorError(f"{outputs_file} has no deadLetterQueueUrls: is it `pulumi stack output --json`?")
    session = boto3.session.Session(region_name=region)
    return Target(outputs, session.client, f"the stack of {outputs_file} ({session.region_name})")


# --- what a dead-lettered message is about ------------------------------------------------------------------------


@dataclass(frozen=True)
class Parsed:
    job_id: str | None
    what: str
    """The message's kind, as the pipeline's contracts name it."""
    error: str | None = None


def parse_body(body: str) -> Parsed:
    """The job a message is about, by the project's contracts: a fan-out message (`jobId`), a webhook delivery task
    (`kind`, `jobId`), an EventBridge event (`detail.jobId`, or MediaConvert's `detail.userMetadata.jobId`), an S3
    notification (`uploads/{jobId}/source`), or Lambda's on-failure record around one of those."""
    try:
        message = json.loads(body)
    except ValueError:
        return Parsed(None, "not JSON")
    if not isinstance(message, dict):
        return Parsed(None, "unknown")
    if "requestPayload" in message:  # Lambda's on-failure destination record (the tracker's)
        inner = parse_body(json.dumps(message["requestPayload"]))
        response = message.get("responsePayload") or {}
        error = response.get("errorMessage") if isinstance(response, dict) else None
        kind = response.get("errorType") if isinstance(response, dict) else None
        return Parsed(inner.job_id, f"on-failure: {inner.what}", f"{kind}: {error}" if kind else error)
    if message.get("kind") == "webhook-delivery":
        return Parsed(message.get("jobId"), f"webhook task {message.get('eventType')} #{message.get('attempt')}")
    if "detail-type" in message:
        detail = message.get("detail") or {}
        job_id = detail.get("jobId") or (detail.get("userMetadata") or {}).get("jobId")
        return Parsed(job_id, f"event {message['detail-type']}")
    if "Records" in message:
        for record in message["Records"] or []:
            key = ((record.get("s3") or {}).get("object") or {}).get("key", "")
            match = UPLOAD_KEY.fullmatch(key)
            if match:
                return Parsed(match.group("job_id"), "S3 notification")
        return Parsed(None, "S3 notification")
    if "jobId" in message and "renditions" in message:
        units = ",".join(r.get("name", "?") for r in message["renditions"])
        return Parsed(message["jobId"], f"fan-out {units}")
    return Parsed(message.get("jobId"), "unknown")


class NotReplayable(OperatorError):
    """An on-failure record whose event cannot be put on a bus again."""


def replayed_event(letter: DeadLetter, bus_name: str | None) -> dict[str, Any]:
    """The PutEvents entry of an on-failure record's event: the pipeline's own events only (AWS refuses a put with an
    `aws.*` source, such as MediaConvert's state changes or the sweep's schedule: those jobs are closed by the sweep at
    their deadline)."""
    record = json.loads(letter.body)
    payload = record.get("requestPayload") if isinstance(record, dict) else None
    if not isinstance(payload, dict) or "detail-type" not in payload:
        raise NotReplayable(f"{letter.message_id} is not an on-failure record of an EventBridge event")
    source = str(payload.get("source"))
    if source != EVENT_SOURCE or not bus_name:
        raise NotReplayable(f"{letter.what} comes from {source}: only the pipeline's own events can be put again")
    detail = json.dumps(payload.get("detail") or {}, separators=(",", ":"))
    return {"Source": source, "DetailType": str(payload["detail-type"]), "Detail": detail, "EventBusName": bus_name}


@dataclass(frozen=True)
class DeadLetter:
    """One message in a DLQ, as the operator sees it."""

    queue: str
    """The DLQ's label in deadLetterQueueUrls: the function that consumed it."""
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, Any]
    job_id: str | None
    what: str
    error: str | None
    sent_at_ms: int
    receives: int

    def age(self, now_ms: int) -> str:
        return human_age((now_ms - self.sent_at_ms) / 1000)


def human_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _dead_letter(label: str, message: dict[str, Any]) -> DeadLetter:
    parsed = parse_body(message["Body"])
    attributes = message.get("MessageAttributes") or {}
    said = next((attributes[n]["StringValue"] for n in ERROR_ATTRIBUTES if n in attributes), None)
    code = (attributes.get("ERROR_CODE") or {}).get("StringValue")
    error = said or parsed.error
    if code and said:
        error = f"{code}: {said}"
    system = message.get("Attributes") or {}
    return DeadLetter(
        queue=label,
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        body=message["Body"],
        attributes=attributes,
        job_id=parsed.job_id,
        what=parsed.what,
        error=error,
        sent_at_ms=int(system.get("SentTimestamp", "0")),
        receives=int(system.get("ApproximateReceiveCount", "1")),
    )


class DeadLetterQueue:
    """A DLQ of the stack: look at its messages, move them back to their source queue."""

    def __init__(self, target: Target, label: str) -> None:
        if label not in target.dead_letter_queues:
            known = ", ".join(sorted(target.dead_letter_queues))
            raise OperatorError(f"no DLQ labelled {label!r}; the stack's DLQs: {known}")
        self.label = label
        self.target = target
        self.url = target.dead_letter_queues[label]
        self._sqs = target.client("sqs")
        self._events = target.client("events")

    def source_queue(self) -> str | None:
        """The work queue whose RedrivePolicy names this DLQ; None for a DLQ SQS did not fill (the tracker's holds
        Lambda's on-failure records of the EventBridge events it was invoked with)."""
        sources = self._sqs.list_dead_letter_source_queues(QueueUrl=self.url).get("queueUrls", [])
        if len(sources) > 1:
            raise OperatorError(f"the {self.label} DLQ is the DLQ of several queues: {', '.join(sources)}")
        return str(sources[0]) if sources else None

    def destination(self, source: str | None) -> str:
        return source.rsplit("/", 1)[-1] if source else f"the {self.target.outputs.get('eventBusName')} bus"

    def send_back(self, letter: DeadLetter, source: str | None) -> None:
        """To its source queue; or, for an on-failure record, its event put on the pipeline's bus again, where the
        same rule delivers it to the same function. Raises NotReplayable (the message stays) for what cannot be."""
        if source is not None:
            self.move_back(letter, source)
            return
        self._events.put_events(Entries=[replayed_event(letter, self.target.outputs.get("eventBusName"))])
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt_handle)

    def look(self, limit: int = MAX_LISTED_PER_QUEUE) -> Iterator[DeadLetter]:
        """Up to `limit` messages, each hidden for LOOK_VISIBILITY_SECONDS while the caller decides; `release` shows
        the ones it keeps again."""
        depth = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"])
        limit = min(limit, int(depth["Attributes"]["ApproximateNumberOfMessages"]))
        seen: set[str] = set()
        while len(seen) < limit:
            # A short wait makes SQS answer from all of its servers (short polling samples some, and may answer
            # nothing from a queue that holds messages).
            batch = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=min(10, limit - len(seen)),
                VisibilityTimeout=LOOK_VISIBILITY_SECONDS,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            fresh = [m for m in batch if m["MessageId"] not in seen]
            if not fresh:
                return
            for message in fresh:
                seen.add(message["MessageId"])
                yield _dead_letter(self.label, message)

    def release(self, letters: list[DeadLetter]) -> None:
        """Looked-at messages visible again at once: they stay in the DLQ as they were."""
        for start in range(0, len(letters), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": letter.receipt_handle, "VisibilityTimeout": 0}
                for i, letter in enumerate(letters[start : start + 10])
            ]
            self._sqs.change_message_visibility_batch(QueueUrl=self.url, Entries=entries)

    def move_back(self, letter: DeadLetter, source_url: str) -> None:
        """Sent to the source queue first, deleted from the DLQ after: a failure between leaves a duplicate (every
        consumer is idempotent), never a loss."""
        kwargs: dict[str, Any] = {"QueueUrl": source_url, "MessageBody": letter.body}
        if letter.attributes:
            kwargs["MessageAttributes"] = {
                name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
                for name, value in letter.attributes.items()
            }
        self._sqs.send_message(**kwargs)
        self._sqs.delete_message(QueueUrl=self.url, ReceiptHandle=letter.receipt_handle)


# --- commands -----------------------------------------------------------------------------------------------------


def _attribute(attributes: dict[str, str], name: str) -> str:
    return attributes.get(name, "-")


def _oldest_age_metric(target: Target, queue_name: str) -> str:
    """ApproximateAgeOfOldestMessage, CloudWatch's latest 1-minute maximum (SQS has no such queue attribute)."""
    now = time.time()
    answer = target.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_name}],
        StartTime=now - 900,
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(answer.get("Datapoints", []), key=lambda p: p["Timestamp"])
    return human_age(points[-1]["Maximum"]) if points else "-"


@dataclass
class QueueRow:
    label: str
    kind: str
    url: str
    attributes: dict[str, str] = field(default_factory=dict)
    oldest: str = "-"


def queue_rows(target: Target, cloudwatch: bool) -> list[QueueRow]:
    """Every work queue and DLQ: depth from GetQueueAttributes; the oldest message's age from CloudWatch for a stack
    (`cloudwatch`), and for a DLQ from its messages' SentTimestamp (looked at and left in place)."""
    sqs = target.client("sqs")
    rows: list[QueueRow] = []
    now_ms = int(time.time() * 1000)
    for label, dlq_url in sorted(target.dead_letter_queues.items()):
        dlq = DeadLetterQueue(target, label)
        for source in sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", []):
            rows.append(QueueRow(label, "work", source))
        letters = list(dlq.look())
        dlq.release(letters)
        oldest = min((letter.sent_at_ms for letter in letters), default=None)
        rows.append(QueueRow(label, "DLQ", dlq_url, oldest=human_age((now_ms - oldest) / 1000) if oldest else "-"))
    for row in rows:
        row.attributes = sqs.get_queue_attributes(QueueUrl=row.url, AttributeNames=["All"])["Attributes"]
        if cloudwatch and row.kind == "work":
            row.oldest = _oldest_age_metric(target, row.url.rsplit("/", 1)[-1])
    return rows


def command_queues(target: Target, cloudwatch: bool) -> int:
    rows = queue_rows(target, cloudwatch)
    print(f"Queues of {target.description}")
    print(
        table(
            ("function", "queue", "kind", "visible", "in flight", "delayed", "oldest"),
            [
                (
                    r.label,
                    r.url.rsplit("/", 1)[-1],
                    r.kind,
                    _attribute(r.attributes, "ApproximateNumberOfMessages"),
                    _attribute(r.attributes, "ApproximateNumberOfMessagesNotVisible"),
                    _attribute(r.attributes, "ApproximateNumberOfMessagesDelayed"),
                    r.oldest,
                )
                for r in rows
            ],
        )
    )
    return 0


def list_dead_letters(target: Target, labels: list[str]) -> list[DeadLetter]:
    letters: list[DeadLetter] = []
    for label in labels:
        dlq = DeadLetterQueue(target, label)
        found = list(dlq.look())
        dlq.release(found)
        letters += found
    return letters


def command_dlq_list(target: Target, label: str | None) -> int:
    labels = [label] if label else sorted(target.dead_letter_queues)
    letters = list_dead_letters(target, labels)
    now_ms = int(time.time() * 1000)
    rows = [
        (
            letter.queue,
            letter.job_id or "?",
            truncate(letter.what, 48),
            truncate(letter.error or "-", 60),
            letter.age(now_ms),
            letter.receives,
            letter.message_id,
        )
        for letter in letters
    ]
    print(table(("function", "job", "message", "error", "age", "receives", "message id"), rows))
    print(f"\n{len(letters)} message(s) in {len(labels)} DLQ(s) (at most {MAX_LISTED_PER_QUEUE} looked at per queue)")
    return 0


@dataclass
class Redriven:
    moved: list[DeadLetter] = field(default_factory=list)
    left: list[tuple[DeadLetter, str]] = field(default_factory=list)
    """Messages that stay in the DLQ, with why."""

    def send_back(self, dlq: DeadLetterQueue, letter: DeadLetter, source: str | None) -> None:
        """Sent back and counted as moved; one that cannot be is shown again in its DLQ and counted as left."""
        try:
            dlq.send_back(letter, source)
        except NotReplayable as err:
            dlq.release([letter])
            self.left.append((letter, str(err)))
            return
        self.moved.append(letter)


def redrive(
    target: Target, label: str, *, rate: float, limit: int, sleep: Callable[[float], None] = time.sleep
) -> Redriven:
    """Sends up to `limit` messages back (to the DLQ's source queue, or their events to the bus), no faster than
    `rate` per second."""
    dlq = DeadLetterQueue(target, label)
    source = dlq.source_queue()
    result = Redriven()
    interval = 1 / rate
    next_at = time.monotonic()
    for letter in dlq.look(limit):
        wait = next_at - time.monotonic()
        if wait > 0:
            sleep(wait)
        next_at = time.monotonic() + interval
        result.send_back(dlq, letter, source)
    return result


def command_dlq_redrive(target: Target, label: str, rate: float, limit: int) -> int:
    if rate <= 0 or limit <= 0:
        raise OperatorError("--rate and --max must be positive")
    result = redrive(target, label, rate=rate, limit=limit)
    dlq = DeadLetterQueue(target, label)
    print(
        f"moved {len(result.moved)} message(s) from the {label} DLQ back to "
        f"{dlq.destination(dlq.source_queue())} (at most {rate:g}/s)"
    )
    for letter, why in result.left:
        print(f"left {letter.message_id} in the {label} DLQ: {why}", file=sys.stderr)
    return 0


def requeue(target: Target, job_id: str, labels: list[str]) -> Redriven:
    """Every message of `job_id` in the DLQs, sent back; the others are left as they were."""
    result = Redriven()
    for label in labels:
        dlq = DeadLetterQueue(target, label)
        letters = list(dlq.look())
        mine = [letter for letter in letters if letter.job_id == job_id]
        dlq.release([letter for letter in letters if letter.job_id != job_id])
        source = dlq.source_queue() if mine else None
        for letter in mine:
            result.send_back(dlq, letter, source)
    if not result.moved:
        if result.left:
            raise OperatorError(result.left[0][1])
        where = f"the {labels[0]} DLQ" if len(labels) == 1 else "any DLQ"
        raise OperatorError(f"no message of job {job_id} in {where} (at most {MAX_LISTED_PER_QUEUE} looked at each)")
    return result


def command_requeue(target: Target, job_id: str, label: str | None) -> int:
    result = requeue(target, job_id, [label] if label else sorted(target.dead_letter_queues))
    for letter in result.moved:
        print(f"requeued {letter.what} of job {job_id} from the {letter.queue} DLQ ({letter.message_id})")
    for letter, why in result.left:
        print(f"left {letter.what} in the {letter.queue} DLQ: {why}", file=sys.stderr)
    return 0


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def job_record(target: Target, job_id: str) -> dict[str, Any] | None:
    from boto3.dynamodb.types import TypeDeserializer

    from functions.common.jobs_table import from_dynamo

    item = target.client("dynamodb").get_item(TableName=target.outputs["jobsTable"], Key={"jobId": {"S": job_id}})
    if "Item" not in item:
        return None
    deserializer = TypeDeserializer()
    return dict(from_dynamo({k: deserializer.deserialize(v) for k, v in item["Item"].items()}))


def history_lines(job: dict[str, Any] | None, letters: list[DeadLetter]) -> list[tuple[int, str]]:
    """What is known of a job's past, oldest first: its creation, every write the jobs table recorded in its history
    (functions/common/job_history.py: what changed and which function wrote it), and every DLQ message of it."""
    events: list[tuple[int, str]] = []
    if job is not None:
        events.append((job["createdAt"], "created (AWAITING_UPLOAD) by api"))
        for entry in job.get("history") or []:
            changes = "; ".join(str(change) for change in entry.get("changes") or [])
            events.append((int(entry["at"]), f"v{entry.get('version')} {entry.get('by')}: {changes}"))
    for letter in letters:
        events.append((letter.sent_at_ms, f"{letter.what} dead-lettered in {letter.queue}: {letter.error or '-'}"))
    return sorted(events, key=lambda e: e[0])


def command_history(target: Target, job_id: str) -> int:
    job = job_record(target, job_id)
    letters = [
        letter for letter in list_dead_letters(target, sorted(target.dead_letter_queues)) if letter.job_id == job_id
    ]
    if job is None and not letters:
        raise OperatorError(f"no job {job_id} in {target.outputs['jobsTable']} and no message of it in any DLQ")
    if job is not None:
        print(f"job {job_id}: {job.get('mediaType') or '-'} {job['status']} (owner {job['ownerId']})")
        rows = [
            (
                name,
                r["status"],
                r.get("progress", 0),
                (r.get("error") or {}).get("code") or r.get("reason") or "",
            )
            for name, r in sorted(job.get("renditions", {}).items(), key=lambda kv: (kv[1].get("order", 0), kv[0]))
        ]
        print(table(("unit", "status", "progress", "error or reason"), rows))
    else:
        print(f"job {job_id}: no record (expired from the table?), only its dead-lettered messages")
    print()
    print(table(("when (UTC)", "what"), [(_when(ms), what) for ms, what in history_lines(job, letters)]))
    return 0


# --- the command line ---------------------------------------------------------------------------------------------


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """`ops` and its subcommands, on `python -m local`'s parser."""
    target = argparse.ArgumentParser(add_help=False)
    where = target.add_mutually_exclusive_group()
    where.add_argument("--local", action="store_true", help="the running local cloud (the default)")
    where.add_argument("--stack-outputs", metavar="FILE", help="`pulumi stack output --json` of a deployed stack")
    target.add_argument("--region", help="AWS region of the deployed stack (default: boto3's)")
    ops = commands.add_parser("ops", help="operator tools: queues, dead-letter queues, requeue, job history")
    actions = ops.add_subparsers(dest="ops_command", required=True, metavar="COMMAND")
    parents = [common, target]

    queues = actions.add_parser("queues", parents=parents, help="every work queue and DLQ: depth and oldest age")
    queues.set_defaults(run=command_ops, action=lambda t, a: command_queues(t, cloudwatch=bool(a.stack_outputs)))

    dlq = actions.add_parser("dlq", help="dead-letter queues")
    dlq_actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    listing = dlq_actions.add_parser("list", parents=parents, help="each DLQ's messages: job, function, error, age")
    listing.add_argument("name", nargs="?", help="one DLQ, by its label in deadLetterQueueUrls (default: all)")
    listing.set_defaults(run=command_ops, action=lambda t, a: command_dlq_list(t, a.name))
    moving = dlq_actions.add_parser("redrive", parents=parents, help="move a DLQ's messages back, at a bounded rate")
    moving.add_argument("name", help="the DLQ, by its label in deadLetterQueueUrls")
    moving.add_argument("--rate", type=float, default=10, help="messages per second at most (default 10)")
    moving.add_argument("--max", type=int, default=1000, help="messages to move at most (default 1000)")
    moving.set_defaults(run=command_ops, action=lambda t, a: command_dlq_redrive(t, a.name, a.rate, a.max))

    again = actions.add_parser("requeue", parents=parents, help="send one job's dead-lettered messages back")
    again.add_argument("job_id")
    again.add_argument("--dlq", help="look only in this DLQ (default: all)")
    again.set_defaults(run=command_ops, action=lambda t, a: command_requeue(t, a.job_id, a.dlq))

    history = actions.add_parser("history", parents=parents, help="what the record and the DLQs tell of a job")
    history.add_argument("job_id")
    history.set_defaults(run=command_ops, action=lambda t, a: command_history(t, a.job_id))


def command_ops(args: argparse.Namespace) -> int:
    try:
        if args.stack_outputs:
            target = stack_target(Path(args.stack_outputs), args.region)
        else:
            state = Path(args.state_dir) if args.state_dir else Path(args.project_dir) / ".local"
            target = local_target(state)
        return int(args.action(target, args))
    except OperatorError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
