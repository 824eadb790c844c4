"""The adapter that puts the pipeline's events (`functions/contracts/events.py`) on its custom bus."""

from __future__ import annotations

import json
from typing import Any

from functions.common.clients import aws_client
from functions.contracts.events import SOURCE, DetailType, EventDetail


class EventPublishFailed(RuntimeError):
    pass


class EventPublisher:
    def __init__(self, bus_name: str, events_client: Any = None) -> None:
        self._bus_name = bus_name
        self._client = events_client or aws_client("events")

    def publish(self, detail_type: DetailType | str, detail: EventDetail) -> None:
        entry = {
            "Source": SOURCE,
            "DetailType": str(detail_type),
            "Detail": json.dumps(detail.to_detail(), separators=(",", ":"), default=str),
            "EventBusName": self._bus_name,
        }
        response = self._client.put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failure = response["Entries"][0]
            raise EventPublishFailed(f"{detail_type}: {failure.get('ErrorCode')} {failure.get('ErrorMessage')}")
