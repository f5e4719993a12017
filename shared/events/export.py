"""The event contracts as files: one JSON Schema per event type, and an AsyncAPI document.

``render_contracts()`` builds them from the registry; ``write_contracts()`` checks them in
(``make contracts``); ``stale_contracts()`` tells which checked-in files are out of date, so
that a test catches a payload changed without its contract.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from shared.events.envelope import REQUEST_ID_EXTENSION
from shared.events.registry import (
    SERVICES,
    EventSpec,
    dead_letter_topic,
    json_schema,
    load_contracts,
    topic_name,
)

CONTRACTS_DIR = "contracts"
SCHEMAS_DIR = f"{CONTRACTS_DIR}/schemas"
ASYNCAPI_PATH = f"{CONTRACTS_DIR}/asyncapi.yaml"

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
MALFORMED_MESSAGE = "ptce.dead-letter.malformed"
GENERATED_NOTICE = "# Generated from shared/contracts/ by `make contracts`: do not edit.\n"

# The header of the dead-letter topics, in the order the consumer appends them.
DEAD_LETTER_HEADERS: dict[str, str] = {
    "dlq_reason": "Why the consumer gave up on the message (at most 1000 characters).",
    "dlq_topic": "The topic the message was read from.",
    "dlq_partition": "The partition the message was read from (decimal).",
    "dlq_offset": "The offset of the message in that partition (decimal).",
    "dlq_consumer": "The consumer group that dead-lettered it: "
    "`<prefix><consuming service>.<consumer name>`.",
}


def schema_path(event_type: str) -> str:
    return f"{SCHEMAS_DIR}/{event_type}.json"


def _specs() -> list[EventSpec]:
    return sorted(load_contracts().values(), key=lambda spec: spec.type)


def _dump_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_document(spec: EventSpec) -> dict[str, Any]:
    """The JSON Schema (Draft 2020-12) of one event's payload, as checked in."""
    return {"$schema": JSON_SCHEMA_DIALECT, **json_schema(spec)}


def _rewrite_refs(node: Any, prefix: str) -> Any:
    """A copy of ``node``, its ``#/$defs/X`` references made ``#/components/schemas/<prefix>X``."""
    if isinstance(node, dict):
        rewritten: dict[str, Any] = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                rewritten[key] = f"#/components/schemas/{prefix}{value.removeprefix('#/$defs/')}"
            else:
                rewritten[key] = _rewrite_refs(value, prefix)
        return rewritten
    if isinstance(node, list):
        return [_rewrite_refs(item, prefix) for item in node]
    return copy.deepcopy(node)


def _inline_payload(spec: EventSpec, shared_schemas: dict[str, Any]) -> dict[str, Any]:
    """The payload schema to inline in the AsyncAPI document.

    Its ``$defs`` move to ``components.schemas`` (named ``<event type>.<definition>``), since a
    ``#/$defs/...`` reference would otherwise resolve against the root of the AsyncAPI document;
    its ``$id`` goes, for the same reason (the checked-in schema file keeps it).
    """
    schema = json_schema(spec)
    prefix = f"{spec.type}."
    for name, definition in sorted(schema.pop("$defs", {}).items()):
        shared_schemas[f"{prefix}{name}"] = _rewrite_refs(definition, prefix)
    schema.pop("$id", None)
    payload: dict[str, Any] = _rewrite_refs(schema, prefix)
    return payload


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "description": description, **extra}


def _cloudevent_headers(spec: EventSpec) -> dict[str, Any]:
    """The Kafka headers of an event in CloudEvents binary content mode."""
    key_description = f"The aggregate id: the payload's `{spec.key_field}`."
    properties: dict[str, Any] = {
        "ce_specversion": _string("CloudEvents specification version.", const="1.0"),
        "ce_id": _string(
            "Event id; with `ce_source` it identifies the event, consumers deduplicate on it."
        ),
        "ce_source": _string("The producing service.", const=spec.source),
        "ce_type": _string("The event type.", const=spec.type),
        "ce_time": _string("When the fact happened (RFC 3339).", format="date-time"),
        "ce_subject": _string(key_description),
        "ce_partitionkey": _string(
            f"CloudEvents partitioning extension; equal to the Kafka key. {key_description}"
        ),
        f"ce_{REQUEST_ID_EXTENSION}": _string(
            "Extension: id of the request that caused the event, when there was one."
        ),
        "content-type": _string("Content type of the message value.", const="application/json"),
    }
    required = [name for name in properties if name != f"ce_{REQUEST_ID_EXTENSION}"]
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": True,
    }


def _dead_letter_headers(base: dict[str, Any] | None) -> dict[str, Any]:
    """The headers of a dead-lettered message: the original ones (if known) plus ``dlq_*``."""
    headers: dict[str, Any] = copy.deepcopy(base) if base is not None else {"type": "object"}
    properties: dict[str, Any] = headers.setdefault("properties", {})
    required: list[str] = headers.setdefault("required", [])
    for name, description in DEAD_LETTER_HEADERS.items():
        properties[name] = _string(description)
        required.append(name)
    headers["additionalProperties"] = True
    return headers


def _kafka_binding(spec: EventSpec, payload: dict[str, Any]) -> dict[str, Any]:
    key_schema: dict[str, Any] = {
        key: value
        for key, value in payload.get("properties", {}).get(spec.key_field, {}).items()
        if key != "title"
    }
    key_schema["description"] = (
        f"The aggregate id (payload field `{spec.key_field}`), UTF-8 encoded: "
        f"one {spec.aggregate}'s events share a partition, so they stay in order."
    )
    return {"kafka": {"key": key_schema, "bindingVersion": KAFKA_BINDING_VERSION}}


def _event_message(spec: EventSpec, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": spec.type,
        "title": f"{spec.aggregate} {spec.fact} (v{spec.version})",
        "summary": spec.description or spec.type,
        "contentType": "application/json",
        "correlationId": {
            "description": "The request that caused the event.",
            "location": f"$message.header#/ce_{REQUEST_ID_EXTENSION}",
        },
        "headers": _cloudevent_headers(spec),
        "payload": payload,
        "bindings": _kafka_binding(spec, payload),
    }


def _dead_letter_message(spec: EventSpec, message: dict[str, Any]) -> dict[str, Any]:
    dead = copy.deepcopy(message)
    dead["title"] = f"{message['title']}, dead-lettered"
    dead["summary"] = f"A {spec.type} event a consumer could not apply, as it was read."
    dead["headers"] = _dead_letter_headers(message["headers"])
    return dead


def _malformed_message() -> dict[str, Any]:
    return {
        "name": MALFORMED_MESSAGE,
        "title": "malformed message, dead-lettered",
        "summary": "A message that is not a CloudEvent of a known shape, copied as it was read "
        "(key, value and headers unchanged).",
        "headers": _dead_letter_headers(None),
        "payload": {"description": "The original value, whatever it was."},
    }


def _ref(*parts: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)}


def _info_version(specs: list[EventSpec]) -> str:
    """``<highest event version>.<number of event types>.0``: moves as types come or get bumped."""
    return f"{max((spec.version for spec in specs), default=0)}.{len(specs)}.0"


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 description of every topic, dead-letter topic and event type."""
    specs = _specs()
    shared_schemas: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in specs:
        messages[spec.type] = _event_message(spec, _inline_payload(spec, shared_schemas))
    for spec in specs:
        messages[f"{spec.type}.dlq"] = _dead_letter_message(spec, messages[spec.type])
    messages[MALFORMED_MESSAGE] = _malformed_message()

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for service in sorted(SERVICES):
        topic = topic_name(service)
        produced = [spec for spec in specs if spec.service == service]
        channels[topic] = {
            "address": topic,
            "title": f"{service} events",
            "description": f"The events the {service} service publishes, keyed by aggregate id.",
            "messages": {spec.type: _ref("components", "messages", spec.type) for spec in produced},
        }
        if produced:
            operations[f"{service}.publish"] = {
                "action": "send",
                "title": f"{service} publishes its events",
                "summary": f"The {service} service relays its outbox to `{topic}`.",
                "channel": _ref("channels", topic),
                "messages": [_ref("channels", topic, "messages", spec.type) for spec in produced],
            }
    for service in sorted(SERVICES):
        topic = topic_name(service)
        dead = dead_letter_topic(topic)
        dead_messages = {
            spec.type: _ref("components", "messages", f"{spec.type}.dlq")
            for spec in specs
            if spec.service == service
        }
        dead_messages[MALFORMED_MESSAGE] = _ref("components", "messages", MALFORMED_MESSAGE)
        channels[dead] = {
            "address": dead,
            "title": f"{service} events, dead-lettered",
            "description": f"Messages of `{topic}` a consumer gave up on: the original key, "
            "value and headers, plus `dlq_*` headers telling where it came from and why.",
            "messages": dead_messages,
        }

    components: dict[str, Any] = {"messages": messages}
    if shared_schemas:
        components = {"schemas": dict(sorted(shared_schemas.items())), **components}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "PTCE events",
            "version": _info_version(specs),
            "description": (
                "Integration events between the catalog, exchange and ledger services.\n\n"
                "Every event is a CloudEvents 1.0 event in Kafka binary content mode: the "
                "attributes are `ce_*` headers, the value is the JSON payload, the key is the "
                "aggregate id. A type is named `ptce.<service>.<aggregate>.<fact>.v<N>`; a "
                "service publishes on `<service>.events`. Topic names get the deployment's "
                "`KAFKA_TOPIC_PREFIX`, if any. Generated by `make contracts`: do not edit."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": components,
    }


def render_contracts() -> dict[str, str]:
    """Relative path (under ``contracts/``) to content, of every contract file."""
    files = {schema_path(spec.type): _dump_json(schema_document(spec)) for spec in _specs()}
    # A JSON round trip unshares repeated objects, which YAML would dump as anchors and aliases.
    document = json.loads(json.dumps(asyncapi_document()))
    files[ASYNCAPI_PATH] = GENERATED_NOTICE + yaml.safe_dump(
        document, sort_keys=False, allow_unicode=True, width=100
    )
    return dict(sorted(files.items()))


def _checked_in_schemas(root: Path) -> set[str]:
    folder = root / SCHEMAS_DIR
    if not folder.is_dir():
        return set()
    return {f"{SCHEMAS_DIR}/{path.name}" for path in folder.glob("*.json")}


def write_contracts(root: Path) -> list[Path]:
    """Write every contract file under ``root``, remove stale schemas; return the files written."""
    files = render_contracts()
    written: list[Path] = []
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        written.append(path)
    for stale in sorted(_checked_in_schemas(root) - files.keys()):
        (root / stale).unlink()
    return written


def stale_contracts(root: Path) -> list[str]:
    """Relative paths of the contract files that are missing, different or no longer wanted."""
    files = render_contracts()
    stale: list[str] = []
    for relative, content in files.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(relative)
    stale.extend(_checked_in_schemas(root) - files.keys())
    return sorted(stale)
