"""CloudEvents 1.0 envelopes for the registered payloads, in Kafka's binary content mode.

The pair (source, id) identifies an event: consumers deduplicate on it, as the
CloudEvents specification suggests.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import ValidationError

from shared.events.registry import REGISTRY, EventPayload

REQUEST_ID_EXTENSION = "requestid"
_FORMAT = JSONFormat()


class MalformedEvent(Exception):
    """A message that is not a CloudEvent of a known shape: it can never be applied."""


def new_cloudevent(
    payload: EventPayload,
    *,
    event_id: str | None = None,
    time: datetime | None = None,
    request_id: str | None = None,
) -> CloudEvent:
    spec = payload.event_spec
    attributes: dict[str, Any] = {
        "id": event_id or str(uuid.uuid4()),
        "source": spec.source,
        "type": spec.type,
        "time": time or datetime.now(UTC),
        "subject": payload.aggregate_key(),
        "datacontenttype": "application/json",
        "partitionkey": payload.aggregate_key(),
    }
    if request_id:
        attributes[REQUEST_ID_EXTENSION] = request_id
    return CloudEvent(attributes, payload.model_dump(mode="json"))


def to_structured_json(event: CloudEvent) -> dict[str, Any]:
    """The event in the CloudEvents JSON format, as the outbox stores it."""
    parsed: dict[str, Any] = json.loads(_FORMAT.write(event))
    return parsed


def from_structured_json(document: dict[str, Any]) -> CloudEvent:
    event = _FORMAT.read(CloudEvent, json.dumps(document).encode())
    assert isinstance(event, CloudEvent)
    return event


def to_kafka(event: CloudEvent) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers (as the list of pairs aiokafka wants) in binary content mode."""
    message = kafka_binding.to_binary(event, _FORMAT)
    key = message.key.encode() if isinstance(message.key, str) else (message.key or b"")
    return key, message.value, list(message.headers.items())


@dataclass(frozen=True)
class ReceivedEvent:
    """An event read from Kafka: its envelope and, when its type is known, its typed payload."""

    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    request_id: str | None
    data: dict[str, Any]
    payload: EventPayload | None

    @property
    def known(self) -> bool:
        return self.payload is not None


def from_kafka(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...],
) -> ReceivedEvent:
    """Parse a Kafka message; raise MalformedEvent when it is not a valid event of a known shape."""
    try:
        message = kafka_binding.KafkaMessage(headers=dict(headers), key=key, value=value or b"")
        event = kafka_binding.from_binary(message, _FORMAT, CloudEvent)
    except Exception as exc:  # the SDK raises several unrelated types for a broken message
        raise MalformedEvent(f"not a CloudEvent: {exc}") from exc
    data = event.get_data()
    if not isinstance(data, dict):
        raise MalformedEvent("event data is not a JSON object")
    spec = REGISTRY.get(event.get_type())
    payload: EventPayload | None = None
    if spec is not None:
        if event.get_source() != spec.source:
            raise MalformedEvent(f"{spec.type} must come from {spec.source}")
        try:
            payload = spec.payload.model_validate(data)
        except ValidationError as exc:
            raise MalformedEvent(f"{spec.type} payload invalid: {exc}") from exc
    request_id = event.get_extension(REQUEST_ID_EXTENSION)
    return ReceivedEvent(
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        subject=event.get_subject(),
        time=event.get_time(),
        request_id=str(request_id) if request_id is not None else None,
        data=data,
        payload=payload,
    )
