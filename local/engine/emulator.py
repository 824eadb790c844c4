"""The in-process AWS emulator: a moto server on 127.0.0.1 and boto3 clients pointed at it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from local.engine import moto_patches, write_gate
from local.engine.keep_alive import KeepAliveMotoServer
from local.permissions import enforcement
from local.permissions.roles import ADMIN_CREDENTIALS

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
FAKE_CREDENTIALS = ADMIN_CREDENTIALS


@dataclass
class Emulator:
    """A running moto server and a cache of boto3 clients for it (boto3 clients are thread-safe once built)."""

    region: str = REGION
    _server: KeepAliveMotoServer | None = None
    _endpoint: str = ""
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, port: int = 0) -> str:
        # Werkzeug logs every request at INFO; the local cloud's own log says what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        moto_patches.apply_all()
        enforcement.install()
        write_gate.install()
        self._server = KeepAliveMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self._endpoint = f"http://{host}:{port}"
        return self._endpoint

    @classmethod
    def attach(cls, endpoint: str, region: str) -> Emulator:
        """Clients for a moto server another process runs (the `status` command)."""
        return cls(region=region, _endpoint=endpoint)

    @property
    def endpoint(self) -> str:
        if not self._endpoint:
            raise RuntimeError("the emulator is not running")
        return self._endpoint

    def client(self, service: str, credentials: Mapping[str, str] | None = None) -> Any:
        """A client signing with the admin key (the local cloud's own control plane), or with `credentials` (a role's
        temporary credentials, as Lambda's environment holds them), whose calls the emulator authorizes."""
        credentials = credentials or FAKE_CREDENTIALS
        key = (service, credentials["AWS_ACCESS_KEY_ID"])
        with self._lock:
            if key not in self._clients:
                self._clients[key] = boto3.session.Session().client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.endpoint,
                    aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                    aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
                    aws_session_token=credentials["AWS_SESSION_TOKEN"],
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}, max_pool_connections=32),
                )
            return self._clients[key]

    def message_waiting(self, queue_url: str, seconds: float) -> bool:
        """Whether the queue at `queue_url` holds a visible message, waiting up to `seconds` for one to arrive.

        Asked of moto's queue in this process, so an idle poller costs no request: each ReceiveMessage is an HTTP
        call that botocore signs and the permission layer checks, and two dozen pollers asking once a second kept a
        tenth of a CPU busy in an idle cloud (Lambda's pollers long-poll instead). A poller asks this first and then
        receives over HTTP, with its role, as before. A message that becomes visible again when its visibility
        timeout ends notifies nothing, so it is seen when the wait ends; keep `seconds` short."""
        from moto.sqs.models import sqs_backends

        account, name = queue_url.rstrip("/").split("/")[-2:]
        regions = dict.get(sqs_backends, account)  # never creates an account's backends, as indexing would
        backend = regions.get(self.region) if regions is not None else None
        queue = backend.queues.get(name) if backend is not None else None
        if queue is None:
            return True  # not moto's (or gone): let the receive say so
        with queue._messages_lock:
            return bool(queue._messages_lock.wait_for(lambda: queue.messages, timeout=seconds))

    def function_environment(self) -> dict[str, str]:
        """What every local Lambda gets on top of its declared variables: the endpoint and the region (its role's
        credentials are its own)."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region}

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
