"""The checked-in event contracts match the registry, and Kafka messages match the contracts.

Plain synchronous tests: no broker, no database.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalog.service import DEFINITION as CATALOG
from exchange.service import DEFINITION as EXCHANGE
from ledger.service import DEFINITION as LEDGER
from shared.contracts.catalog import PoleRegistered
from shared.events.envelope import from_kafka, new_cloudevent, to_kafka
from shared.events.export import (
    ASYNCAPI_PATH,
    render_contracts,
    schema_path,
    stale_contracts,
    write_contracts,
)
from shared.events.registry import (
    CONSUMER_GROUPS,
    SERVICES,
    EventSpec,
    dead_letter_topic,
    json_schema,
    load_contracts,
    topic_name,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
TYPE_PATTERN = re.compile(
    r"^ptce\.(?P<service>[a-z]+)\.(?P<aggregate>[a-z_]+)\.(?P<fact>[a-z_]+)\.v(?P<version>[1-9][0-9]*)$"
)
DEAD_LETTER_HEADERS = {"dlq_reason", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_consumer"}


def _specs() -> list[EventSpec]:
    return sorted(load_contracts().values(), key=lambda spec: spec.type)


def _asyncapi() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / ASYNCAPI_PATH).read_text("utf-8"))
    return document


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/a/b``) to what it points to, or return ``node`` itself."""
    ref = node.get("$ref")
    if ref is None:
        return node
    assert isinstance(ref, str)
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    target: Any = document
    for part in ref.removeprefix("#/").split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(target, dict)
    return _resolve(document, target)


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` inside a JSON document."""
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _pole_registered() -> PoleRegistered:
    return PoleRegistered(
        pole_id=uuid.uuid4(),
        name="Pôle des Monts",
        time_zone="Europe/Paris",
        currency="EUR",
        version=1,
        registered_at=datetime(2025, 3, 1, 9, 30, tzinfo=UTC),
    )


def test_checked_in_contracts_are_current() -> None:
    stale = stale_contracts(REPO_ROOT)
    assert stale == [], f"contracts out of date: {stale}; run `make contracts` and commit them"


def test_stale_contracts_sees_missing_changed_and_extra_files(tmp_path: Path) -> None:
    written = write_contracts(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(render_contracts())
    assert stale_contracts(tmp_path) == []

    spec = _specs()[0]
    changed = tmp_path / schema_path(spec.type)
    changed.write_text(changed.read_text("utf-8").replace('"object"', '"array"'), "utf-8")
    extra = tmp_path / schema_path("ptce.catalog.pole.removed.v9")
    extra.write_text("{}\n", "utf-8")
    (tmp_path / ASYNCAPI_PATH).unlink()
    assert stale_contracts(tmp_path) == sorted(
        [ASYNCAPI_PATH, schema_path(spec.type), schema_path("ptce.catalog.pole.removed.v9")]
    )

    write_contracts(tmp_path)
    assert not extra.exists()
    assert stale_contracts(tmp_path) == []


def test_rendering_is_deterministic() -> None:
    assert render_contracts() == render_contracts()


def test_registry_is_not_empty() -> None:
    assert _specs(), "no event type registered"


@pytest.mark.parametrize("spec", _specs(), ids=lambda spec: spec.type)
def test_event_type_is_well_named(spec: EventSpec) -> None:
    match = TYPE_PATTERN.match(spec.type)
    assert match is not None, f"{spec.type} is not ptce.<service>.<aggregate>.<fact>.v<N>"
    assert match["service"] in SERVICES
    assert (match["service"], match["aggregate"], match["fact"], int(match["version"])) == (
        spec.service,
        spec.aggregate,
        spec.fact,
        spec.version,
    )
    assert spec.description, f"{spec.type}: document the payload class (its docstring)"


@pytest.mark.parametrize("spec", _specs(), ids=lambda spec: spec.type)
def test_payload_schema_is_a_closed_object(spec: EventSpec) -> None:
    # jsonschema is not among the locked dependencies: check the structure instead of
    # validating against the Draft 2020-12 meta-schema.
    schema = json_schema(spec)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False, f"{spec.type} must forbid unknown fields"
    properties = schema["properties"]
    assert isinstance(properties, dict)
    assert properties
    assert all(isinstance(value, dict) for value in properties.values())
    required = schema["required"]
    assert isinstance(required, list)
    assert set(required) <= set(properties)
    assert spec.key_field in required, f"{spec.type}: the key field must be required"
    assert schema["$id"] == f"urn:ptce:event:{spec.type}"
    for ref in _refs(schema):
        assert ref.startswith("#/$defs/"), f"{spec.type}: non-local reference {ref}"
        assert ref.removeprefix("#/$defs/") in schema.get("$defs", {}), f"dangling {ref}"


@pytest.mark.parametrize("spec", _specs(), ids=lambda spec: spec.type)
def test_checked_in_schema_file_is_the_payload_schema(spec: EventSpec) -> None:
    document = json.loads((REPO_ROOT / schema_path(spec.type)).read_text("utf-8"))
    assert document.pop("$schema") == "https://json-schema.org/draft/2020-12/schema"
    assert document == json_schema(spec)


def test_asyncapi_document_lists_every_event_under_its_producer() -> None:
    document = _asyncapi()
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "PTCE events"
    assert isinstance(document["info"]["version"], str)
    channels = document["channels"]
    operations = document["operations"]
    for service in SERVICES:
        topic = topic_name(service)
        assert channels[topic]["address"] == topic
        assert channels[dead_letter_topic(topic)]["address"] == dead_letter_topic(topic)

    for spec in _specs():
        topic = topic_name(spec.service)
        channel_messages = channels[topic]["messages"]
        assert spec.type in channel_messages, f"{spec.type} missing from channel {topic}"
        message = _resolve(document, channel_messages[spec.type])
        assert message["name"] == spec.type
        assert message["headers"]["properties"]["ce_type"]["const"] == spec.type
        assert message["headers"]["properties"]["ce_source"]["const"] == spec.source
        payload = message["payload"]
        assert payload["properties"].keys() == json_schema(spec)["properties"].keys()
        assert payload["required"] == json_schema(spec)["required"]
        assert payload["additionalProperties"] is False
        assert message["bindings"]["kafka"]["key"]["description"]

        others = [s for s in SERVICES if s != spec.service]
        assert all(spec.type not in channels[topic_name(s)]["messages"] for s in others)

        sends = [
            op
            for op in operations.values()
            if op["action"] == "send" and _resolve(document, op["channel"]) is channels[topic]
        ]
        assert len(sends) == 1, f"{spec.service} needs exactly one send operation on {topic}"
        assert spec.type in [_resolve(document, ref)["name"] for ref in sends[0]["messages"]]

        dead = channels[dead_letter_topic(topic)]["messages"]
        assert spec.type in dead
        dead_headers = _resolve(document, dead[spec.type])["headers"]
        assert set(dead_headers["required"]) == (
            set(message["headers"]["required"]) | DEAD_LETTER_HEADERS
        )


@pytest.mark.parametrize("request_id", [None, "req-42"])
def test_kafka_round_trip_matches_the_contract(request_id: str | None) -> None:
    load_contracts()
    payload = _pole_registered()
    spec = payload.event_spec
    event = new_cloudevent(payload, request_id=request_id)
    key, value, headers = to_kafka(event)

    received = from_kafka(key, value, headers)
    assert received.payload == payload
    assert received.type == spec.type
    assert received.source == spec.source
    assert received.subject == str(payload.pole_id)
    assert received.request_id == request_id
    assert key == str(payload.pole_id).encode()

    document = _asyncapi()
    message = _resolve(
        document, document["channels"][topic_name(spec.service)]["messages"][spec.type]
    )
    declared = message["headers"]
    names = [name for name, _ in headers]
    assert len(names) == len(set(names)), f"duplicate headers: {names}"
    optional = {"ce_requestid"} if request_id else set()
    assert set(names) == set(declared["required"]) | optional
    assert set(names) <= set(declared["properties"])
    for name, raw in headers:
        const = declared["properties"][name].get("const")
        if const is not None:
            assert raw.decode() == const, f"header {name}"


def test_the_readers_declared_for_each_topic_are_the_services_consumers() -> None:
    """A relay sends again, after a broker lost its data, what these groups had not confirmed:
    a reader missing from the list would lose events."""
    declared = {
        f"{definition.name}.{spec.name}": tuple(sorted(spec.source_services()))
        for definition in (CATALOG, EXCHANGE, LEDGER)
        for spec in definition.consumers
    }
    assert declared == CONSUMER_GROUPS
