"""The validated topic (SNS), where the fan-out messages go: ingest publishes a job's units, the tracker the stitch
of a segment-parallel rendition. Each consumer's queue subscribes with a filter policy on the message attributes."""

from __future__ import annotations

from typing import Any


class SnsFanOut:
    """The `FanOutTopic` port on the validated topic; SNS errors propagate (the caller's message is retried)."""

    def __init__(self, topic_arn: str, sns_client: Any) -> None:
        self._topic_arn = topic_arn
        self._sns = sns_client

    def publish(self, body: str, attributes: dict[str, dict[str, str]]) -> str:
        response = self._sns.publish(TopicArn=self._topic_arn, Message=body, MessageAttributes=attributes)
        return str(response["MessageId"])
