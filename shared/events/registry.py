"""The registry of event types: every integration event is a pydantic payload registered here.

A type is named ``ptce.<service>.<aggregate>.<past-tense-fact>.v<N>``; its topic is
the producing service's (``<service>.events``) and its Kafka key is the aggregate id,
so one aggregate's events stay in order.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

SERVICES = ("catalog", "exchange", "ledger")
_TYPE_PATTERN = re.compile(
    r"^ptce\.(?P<service>catalog|exchange|ledger)\.(?P<aggregate>[a-z_]+)\.(?P<fact>[a-z_]+)\.v(?P<version>[1-9][0-9]*)$"
)


class EventPayload(BaseModel):
    """Base of every event payload: immutable, and strict about unknown fields on the way in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_spec: ClassVar[EventSpec]

    def aggregate_key(self) -> str:
        return str(getattr(self, self.event_spec.key_field))


@dataclass(frozen=True)
class EventSpec:
    type: str
    service: str
    aggregate: str
    fact: str
    version: int
    key_field: str
    payload: builtins.type[EventPayload]
    description: str

    @property
    def source(self) -> str:
        return f"/{self.service}"


REGISTRY: dict[str, EventSpec] = {}

P = TypeVar("P", bound=type[EventPayload])


def event(type_: str, *, key: str) -> Callable[[P], P]:
    """Register a payload class as the data of the event type ``type_``, keyed by field ``key``."""
    match = _TYPE_PATTERN.match(type_)
    if match is None:
        raise ValueError(f"event type {type_!r} is not ptce.<service>.<aggregate>.<fact>.v<N>")

    def register(cls: P) -> P:
        payload: type[EventPayload] = cls
        if type_ in REGISTRY:
            raise ValueError(f"event type {type_!r} registered twice")
        if key not in payload.model_fields:
            raise ValueError(f"{cls.__name__} has no key field {key!r}")
        spec = EventSpec(
            type=type_,
            service=match["service"],
            aggregate=match["aggregate"],
            fact=match["fact"],
            version=int(match["version"]),
            key_field=key,
            payload=cls,
            description=(cls.__doc__ or "").strip(),
        )
        cls.event_spec = spec
        REGISTRY[type_] = spec
        return cls

    return register


def topic_name(service: str, prefix: str = "") -> str:
    """The topic a service publishes its events to."""
    return f"{prefix}{service}.events"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"


# Who reads each service's topic: consumer group (``<service>.<consumer name>``, before the
# topic prefix) -> the services whose topics it reads. A relay needs it to know which groups
# must have confirmed (committed past) an event before a broker's loss no longer matters to
# it; a test checks it against the consumers the services declare.
CONSUMER_GROUPS: dict[str, tuple[str, ...]] = {
    "exchange.catalog-copy": ("catalog",),
    "ledger.catalog-copy": ("catalog",),
    "ledger.exchange-valuation": ("exchange",),
}


def consumer_groups_of(service: str, prefix: str = "") -> list[str]:
    """The consumer groups that read ``service``'s topic."""
    return sorted(f"{prefix}{group}" for group, read in CONSUMER_GROUPS.items() if service in read)


def all_topics(prefix: str = "") -> list[str]:
    topics = [topic_name(service, prefix) for service in SERVICES]
    return topics + [dead_letter_topic(t) for t in topics]


def load_contracts() -> dict[str, EventSpec]:
    """Import every contract module so that the registry is complete."""
    from shared.contracts import catalog, exchange, ledger  # noqa: F401

    return REGISTRY


def json_schema(spec: EventSpec) -> dict[str, Any]:
    schema: dict[str, Any] = spec.payload.model_json_schema()
    schema["$id"] = f"urn:ptce:event:{spec.type}"
    schema["title"] = spec.type
    return schema
