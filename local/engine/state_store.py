"""What survives a restart of the local cloud, kept under `<state dir>/state/<project>-<stack>/`.

- **Names** (`names.json`): Pulumi remembers each resource's physical name in its state. Here every declared resource
  (type and logical name) keeps the seed its random parts were drawn from: the engine's own (`name-1a2b3c4`, prefixes,
  API and CloudFront ids, mapping UUIDs) and moto's (KMS key ids, role ids, subscription and secret ARNs). The same
  declaration draws the same names on the next start; a new resource gets a new seed; one whose declared name changed
  gets its new name; one no longer declared is forgotten, as Pulumi forgets a deleted resource.
- **Data** (`snapshot.json`, `objects/`): S3 objects (the bodies content-addressed under `objects/`, with their
  metadata), DynamoDB items, SQS messages still held (DLQs and the `local-delivery-*` queues too, in-flight ones
  included, with their receive counts) and the MediaConvert stand-in's jobs. Captured every few seconds and on stop,
  read from moto's own objects in this process (SQS: receiving would change the messages; DynamoDB and the S3
  listing: over HTTP they held every write for seconds at a few hundred jobs), except a new object's bytes and
  headers, which the admin client GETs; at one instant
  (no request writes meanwhile: write_gate.py), written to a temp file and renamed; restored after the program's
  resources are created, into the resources of the same physical name (a replaced resource starts empty, as in AWS),
  with S3 notifications paused so restored objects trigger nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError
from moto.dynamodb.models import dynamodb_backends
from moto.moto_api._internal import mock_random
from moto.s3.models import s3_backends
from moto.sqs.models import Message, sqs_backends

from local.engine import moto_patches, write_gate
from local.engine.emulator import Emulator

log = logging.getLogger("local.engine.state_store")
SLOW_HOLD_SECONDS = 1.0  # a snapshot that held writes longer is worth a log line

STATE_FOLDER = "state"
NAMES_FILE = "names.json"
SNAPSHOT_FILE = "snapshot.json"
OBJECTS_FOLDER = "objects"
FORMAT = 1
DYNAMODB_BATCH = 25
# Files of a state directory that belong to the emulator's state, not to its configuration or its artifact cache.
RESET_TARGETS = (
    STATE_FOLDER, "jwt-key.pem", "auth.json", "deployment.json", "outputs.json", "workers.json", "tmp", "logs"
)  # fmt: skip


S3_PARTITION = "aws"  # moto keys its S3 backends by account, then partition


def _stamp(etag: str, last_modified: str, size: int) -> str:
    """What tells a capture that an object changed since it was last read: its ETag, its time and its size."""
    return f"{etag}|{last_modified}|{size}"


def _stamp_size(stamp: str) -> int:
    return int(stamp.rsplit("|", 1)[1])


class StateError(ValueError):
    """The saved state cannot be used as it is; the message says why and how to wipe it."""


def state_root(state_dir: Path, project: str, stack: str) -> Path:
    return state_dir / STATE_FOLDER / f"{project}-{stack}"


def reset_hint(saved_file: Path) -> str:
    """How to start over, for a file under `<state dir>/state/<project>-<stack>/`."""
    return f"run `python -m local reset --state-dir {saved_file.parents[2]}` to start with an empty local cloud"


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def _read_saved(path: Path, project: str, stack: str) -> dict[str, Any] | None:
    """A saved file's content, None when there is none; StateError when it is unreadable or not this stack's."""
    if not path.exists():
        return None
    try:
        saved = json.loads(path.read_text())
        header = (saved["format"], saved["project"], saved["stack"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise StateError(f"{path} is unreadable ({type(err).__name__}: {err}); {reset_hint(path)}") from err
    if header[0] != FORMAT:
        raise StateError(f"{path} is in format {header[0]}, not {FORMAT}; {reset_hint(path)}")
    if header[1:] != (project, stack):
        theirs = f"project {header[1]} stack {header[2]}"
        raise StateError(f"{path} holds {theirs}, not project {project} stack {stack}; {reset_hint(path)}")
    return dict(saved)


def wipe(state_dir: Path) -> list[Path]:
    """Removes the emulator's state from a state directory (keeping the artifact cache, config layers and the CDN key,
    which is stack config); returns what it removed."""
    removed = []
    for name in RESET_TARGETS:
        target = state_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        else:
            continue
        removed.append(target)
    return removed


# --- names --------------------------------------------------------------------------------------------------------


class ResourceRandom(random.Random):
    """Where the engine draws the random parts of physical names and ids: seeded per resource by StableNames."""

    def token_hex(self, nbytes: int) -> str:
        return self.randbytes(nbytes).hex()

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.getrandbits(128), version=4)


resource_random = ResourceRandom()


class StableNames:
    """Per declared resource, the seed of its random names, remembered across starts (see the module docstring)."""

    def __init__(self, path: Path, project: str, stack: str) -> None:
        self._path, self._project, self._stack = path, project, stack
        saved = _read_saved(path, project, stack) or {"resources": {}}
        try:
            self._remembered = {key: int(entry["seed"]) for key, entry in saved["resources"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise StateError(f"{path} is unreadable ({type(err).__name__}: {err}); {reset_hint(path)}") from err
        self._declared: dict[str, dict[str, Any]] = {}

    @contextmanager
    def declaring(self, token: str, name: str) -> Iterator[None]:
        """While one resource is created: the engine's and moto's random draws come from its seed."""
        key = self._key(token, name)
        seed = self._remembered.get(key) or secrets.randbits(63)
        resource_random.seed(seed)
        mock_random.seed(seed)
        try:
            yield
        finally:
            self._declared[key] = {"seed": seed}
            resource_random.seed(secrets.randbits(63))
            mock_random.seed(secrets.randbits(63))

    def _key(self, token: str, name: str) -> str:
        """Type and name; Pulumi allows the same pair under parents of different types, so a repeat of it in one
        evaluation is told apart by its order (a program declares in the same order each time)."""
        key, repeat = f"{token}::{name}", 1
        while key in self._declared:
            repeat += 1
            key = f"{token}::{name}#{repeat}"
        return key

    def record(self, token: str, name: str, physical_id: str) -> None:
        """The id the last declaration of (token, name) got, for the reader of names.json."""
        key, repeat = f"{token}::{name}", 1
        while f"{token}::{name}#{repeat + 1}" in self._declared:
            repeat += 1
            key = f"{token}::{name}#{repeat}"
        self._declared[key]["id"] = physical_id

    def save(self) -> None:
        """Called once the program evaluated: what it declared now is what the next start remembers."""
        content = {"format": FORMAT, "project": self._project, "stack": self._stack, "resources": self._declared}
        _write_atomically(self._path, json.dumps(content, indent=2, sort_keys=True).encode())


# --- data ---------------------------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """JSON for DynamoDB items and SQS attributes: bytes become {"__bytes__": base64}."""
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [_encode(v) for v in value]
    return value


def _scanned(attributes: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes as moto holds them (binary values base64 text at the top level, bytes when nested) in the
    shape a Scan through boto3 returns (binary values bytes)."""
    return {name: _attribute_value(value) for name, value in attributes.items()}


def _attribute_value(value: dict[str, Any]) -> dict[str, Any]:
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": _binary(inner)}
    if kind == "BS":
        return {"BS": [_binary(member) for member in inner]}
    if kind == "M":
        return {"M": {name: _attribute_value(member) for name, member in inner.items()}}
    if kind == "L":
        return {"L": [_attribute_value(member) for member in inner]}
    return {kind: inner}


def _binary(value: str | bytes) -> bytes:
    return base64.b64decode(value) if isinstance(value, str) else bytes(value)


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


OBJECT_HEADERS = {
    "ContentType": "contentType",
    "CacheControl": "cacheControl",
    "ContentDisposition": "contentDisposition",
    "ContentEncoding": "contentEncoding",
    "ContentLanguage": "contentLanguage",
    "ServerSideEncryption": "serverSideEncryption",
    "SSEKMSKeyId": "sseKmsKeyId",
}


class DataSnapshot:
    """Captures the emulator's data to disk and restores it into a fresh emulator (see the module docstring)."""

    def __init__(self, root: Path, project: str, stack: str, emulator: Emulator, account_id: str) -> None:
        self._root, self._project, self._stack = root, project, stack
        self._emulator, self._account = emulator, account_id
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], dict[str, Any]] = {}
        """What the last capture saved of each object, so an unchanged one is not read again."""

    @property
    def path(self) -> Path:
        return self._root / SNAPSHOT_FILE

    def load(self) -> dict[str, Any] | None:
        saved = _read_saved(self.path, self._project, self._stack)
        if saved is not None:
            for section in ("buckets", "tables", "queues", "mediaconvertJobs"):
                if not isinstance(saved.get(section), dict | list):
                    raise StateError(f"{self.path} has no {section}; {reset_hint(self.path)}")
        return saved

    # --- capture -------------------------------------------------------------------------------------------

    def capture(self, mediaconvert_jobs: Callable[[], list[dict[str, Any]]]) -> None:
        """Everything at one instant: no request writes while it is read (write_gate.py)."""
        with self._lock:
            started = time.monotonic()
            with write_gate.writes_held():
                content = {
                    "format": FORMAT,
                    "project": self._project,
                    "stack": self._stack,
                    "savedAt": time.time(),
                    "buckets": self._capture_buckets(),
                    "tables": self._capture_tables(),
                    "queues": self._capture_queues(),
                    "mediaconvertJobs": mediaconvert_jobs(),
                }
            held = time.monotonic() - started
            if held > SLOW_HOLD_SECONDS:
                log.info("snapshot: writes held %.2f s", held)
            _write_atomically(self.path, json.dumps(content).encode())
            self._forget_unreferenced_objects(content["buckets"])

    def _capture_buckets(self) -> dict[str, dict[str, Any]]:
        s3 = self._emulator.client("s3")
        buckets: dict[str, dict[str, Any]] = {}
        for name, listed in self._listed_objects().items():
            entries = buckets.setdefault(name, {})
            for key, stamp in listed.items():
                entry = self._capture_object(s3, name, key, stamp)
                if entry is not None:
                    entries[key] = entry
        return buckets

    def _listed_objects(self) -> dict[str, dict[str, str]]:
        """Each bucket's objects as ListObjectsV2 lists them (moto's own listing, in this process), each with the
        stamp that tells whether it changed. Over HTTP the listing of every bucket held writes about 0.4 s at 250
        jobs, growing with the objects; an object's bytes, when it is new, are still read over HTTP."""
        backend = s3_backends[self._account][S3_PARTITION]
        listed: dict[str, dict[str, str]] = {}
        for name, bucket in list(backend.buckets.items()):
            keys, _, _, _ = backend.list_objects(bucket, prefix=None, delimiter=None, marker=None, max_keys=None)
            listed[name] = {key.name: _stamp(key.etag, key.last_modified_ISO8601, key.size) for key in keys}
        return listed

    def _capture_object(self, s3: Any, bucket: str, key: str, stamp: str) -> dict[str, Any] | None:
        known = self._objects.get((bucket, key))
        if known is not None and known["stamp"] == stamp:
            return known
        try:
            answer = s3.get_object(Bucket=bucket, Key=key)
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None  # deleted since it was listed
            raise
        body = answer["Body"].read()
        blob = hashlib.sha256(body).hexdigest()
        blob_path = self._root / OBJECTS_FOLDER / blob
        if not blob_path.exists():
            _write_atomically(blob_path, body)
        entry = {"stamp": stamp, "blob": blob, "metadata": answer.get("Metadata") or {}}
        entry.update({saved: answer[header] for header, saved in OBJECT_HEADERS.items() if answer.get(header)})
        self._objects[(bucket, key)] = entry
        return entry

    def _forget_unreferenced_objects(self, buckets: dict[str, dict[str, Any]]) -> None:
        referenced = {entry["blob"] for entries in buckets.values() for entry in entries.values()}
        self._objects = {(bucket, key): entry for bucket, entries in buckets.items() for key, entry in entries.items()}
        folder = self._root / OBJECTS_FOLDER
        if folder.is_dir():
            for blob in folder.iterdir():
                if blob.name not in referenced and not blob.name.startswith("."):
                    blob.unlink(missing_ok=True)

    def _capture_tables(self) -> dict[str, list[Any]]:
        """Every item of every table, as a Scan returns it, read from moto's tables in this process: a Scan over HTTP
        takes seconds at a few hundred jobs, and every write waits for the capture (DynamoDB's requests are
        serialized meanwhile, as moto_patches.py serializes them anyway)."""
        tables: dict[str, list[Any]] = {}
        backend = dynamodb_backends[self._account][self._emulator.region]
        with moto_patches.dynamodb_requests_held():
            for name, table in list(backend.tables.items()):
                tables[name] = [_encode(_scanned(item.to_json()["Attributes"])) for item in table.all_items()]
        return tables

    def _capture_queues(self) -> dict[str, list[dict[str, Any]]]:
        queues: dict[str, list[dict[str, Any]]] = {}
        for name, queue in list(sqs_backends[self._account][self._emulator.region].queues.items()):
            with queue._messages_lock:
                messages = list(queue._messages)
            queues[name] = [
                {
                    "id": m.id,
                    "body": m.body,
                    "messageAttributes": _encode(m.message_attributes),
                    "systemAttributes": _encode(m.system_attributes),
                    "senderId": m.sender_id,
                    "sentTimestamp": m.sent_timestamp,
                    "firstReceiveTimestamp": m.approximate_first_receive_timestamp,
                    "receiveCount": m.approximate_receive_count,
                    "groupId": m.group_id,
                    "deduplicationId": m.deduplication_id,
                    "sequenceNumber": m.sequence_number,
                }
                for m in messages
            ]
        return queues

    # --- restore -------------------------------------------------------------------------------------------

    def restore(self, saved: dict[str, Any]) -> dict[str, int]:
        """Puts the saved data into the resources of the same name that exist now; returns counts restored."""
        try:
            counts = {
                "items": self._restore_tables(saved["tables"]),
                "objects": self._restore_buckets(saved["buckets"]),
                "messages": self._restore_queues(saved["queues"]),
            }
        except (KeyError, TypeError, ValueError, AttributeError, OSError, ClientError) as err:
            reason = f"{type(err).__name__}: {err}"
            raise StateError(f"{self.path} could not be restored ({reason}); {reset_hint(self.path)}") from err
        log.info("restored %(items)d items, %(objects)d objects, %(messages)d messages", counts)
        return counts

    def _restore_tables(self, tables: dict[str, list[Any]]) -> int:
        dynamodb = self._emulator.client("dynamodb")
        existing = {name for page in dynamodb.get_paginator("list_tables").paginate() for name in page["TableNames"]}
        restored = 0
        for table, items in tables.items():
            if table not in existing:
                log.warning("table %s is no longer declared: its %d saved items are not restored", table, len(items))
                continue
            for start in range(0, len(items), DYNAMODB_BATCH):
                requests = [{"PutRequest": {"Item": _decode(item)}} for item in items[start : start + DYNAMODB_BATCH]]
                pending: dict[str, Any] = {table: requests}
                while pending:
                    pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
            restored += len(items)
        return restored

    def _restore_buckets(self, buckets: dict[str, dict[str, Any]]) -> int:
        s3 = self._emulator.client("s3")
        existing = {bucket["Name"] for bucket in s3.list_buckets().get("Buckets", [])}
        restored = 0
        with moto_patches.s3_notifications_paused():
            for bucket, entries in buckets.items():
                if bucket not in existing:
                    log.warning(
                        "bucket %s is no longer declared: its %d objects are not restored", bucket, len(entries)
                    )
                    continue
                for key, entry in entries.items():
                    self._restore_object(s3, bucket, key, entry)
                    restored += 1
        self._remember_restored(buckets)
        return restored

    def _remember_restored(self, buckets: dict[str, dict[str, Any]]) -> None:
        """The restored objects as the next capture will list them, so it does not read them all again (seconds
        of held writes at a few thousand objects); the blobs are the saved ones."""
        blobs = self._root / OBJECTS_FOLDER
        for bucket, listed in self._listed_objects().items():
            entries = buckets.get(bucket, {})
            for key, stamp in listed.items():
                entry = entries.get(key)
                if entry is not None and (blobs / entry["blob"]).stat().st_size == _stamp_size(stamp):
                    self._objects[(bucket, key)] = {**entry, "stamp": stamp}

    def _restore_object(self, s3: Any, bucket: str, key: str, entry: dict[str, Any]) -> None:
        request: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Body": (self._root / OBJECTS_FOLDER / entry["blob"]).read_bytes(),
            "Metadata": entry.get("metadata") or {},
        }
        request.update({header: entry[saved] for header, saved in OBJECT_HEADERS.items() if entry.get(saved)})
        try:
            s3.put_object(**request)
        except ClientError:
            # A key the object was encrypted under that no longer exists: the bucket's own default applies.
            s3.put_object(**{k: v for k, v in request.items() if k not in ("ServerSideEncryption", "SSEKMSKeyId")})
        self._objects.pop((bucket, key), None)

    def _restore_queues(self, queues: dict[str, list[dict[str, Any]]]) -> int:
        existing = sqs_backends[self._account][self._emulator.region].queues
        restored = 0
        for name, messages in queues.items():
            queue = existing.get(name)
            if queue is None:
                log.warning("queue %s is no longer declared: its %d messages are not restored", name, len(messages))
                continue
            with queue._messages_lock:
                for saved in messages:
                    message = Message(saved["id"], saved["body"], _decode(saved["systemAttributes"]))
                    message.message_attributes = _decode(saved["messageAttributes"])
                    message.sender_id = saved["senderId"]
                    message.sent_timestamp = saved["sentTimestamp"]
                    message.approximate_first_receive_timestamp = saved["firstReceiveTimestamp"]
                    message.approximate_receive_count = saved["receiveCount"]
                    message.group_id = saved["groupId"]
                    message.deduplication_id = saved["deduplicationId"]
                    message.sequence_number = saved["sequenceNumber"]
                    # In flight when the cloud stopped: its consumer is gone, so it is visible again at once.
                    queue._messages.append(message)
                    restored += 1
                queue._messages_lock.notify_all()
        return restored
