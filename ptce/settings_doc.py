"""The configuration table of docs/configuration.md, generated from the settings classes."""

from __future__ import annotations

from pydantic.fields import FieldInfo

from shared.settings import SETTINGS_BY_SERVICE, KernelSettings, ServiceSettings


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=False)
    if value == "":
        return '`""`'
    return f"`{value}`"


def render_settings_table() -> str:
    lines = [
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for name, field in KernelSettings.model_fields.items():
        lines.append(f"| `{name.upper()}` | {_default(field)} | {field.description} |")
    service_only = [n for n in ServiceSettings.model_fields if n not in KernelSettings.model_fields]
    for service, cls in SETTINGS_BY_SERVICE.items():
        for name in service_only:
            field = cls.model_fields[name]
            lines.append(
                f"| `{service.upper()}_{name.upper()}` | {_default(field)} | {field.description} |"
            )
    extra = [
        ("PTCE_DEV_POSTGRES_PORT", "55432", "`ptce dev`: port of the embedded PostgreSQL."),
        ("PTCE_DEV_KAFKA_PORT", "19092", "`ptce dev`: port of the embedded broker."),
        (
            "PTCE_TEST_POSTGRES_URL",
            "(none)",
            "Tests: use this PostgreSQL server "
            "(`postgresql://user@host:port`) instead of starting one.",
        ),
        (
            "PTCE_TEST_KAFKA_BOOTSTRAP_SERVERS",
            "(none)",
            "Tests: use this broker instead of starting one.",
        ),
    ]
    for name, default, meaning in extra:
        lines.append(f"| `{name}` | `{default}` | {meaning} |")
    return "\n".join(lines) + "\n"
