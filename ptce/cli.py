"""The ``ptce`` command: run the system, its services and its chores."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from shared.settings import ServiceSettings

app = typer.Typer(
    help="PTCE: pool and value the shared resources of a pôle territorial.", no_args_is_help=True
)
db_app = typer.Typer(help="Databases and migrations.", no_args_is_help=True)
kafka_app = typer.Typer(help="The broker's topics.", no_args_is_help=True)
events_app = typer.Typer(help="Events in the outbox.", no_args_is_help=True)
contracts_app = typer.Typer(help="Event contracts (JSON Schema, AsyncAPI).", no_args_is_help=True)
settings_app = typer.Typer(help="Configuration.", no_args_is_help=True)
pole_app = typer.Typer(help="Poles (tenants).", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger's journal.", no_args_is_help=True)
for sub, name in [
    (db_app, "db"),
    (kafka_app, "kafka"),
    (events_app, "events"),
    (contracts_app, "contracts"),
    (settings_app, "settings"),
    (pole_app, "pole"),
    (ledger_app, "ledger"),
]:
    app.add_typer(sub, name=name)


class Service(StrEnum):
    catalog = "catalog"
    exchange = "exchange"
    ledger = "ledger"


def _settings(service: Service) -> ServiceSettings:
    from shared.settings import SETTINGS_BY_SERVICE

    return SETTINGS_BY_SERVICE[service.value]()


def _configure_logging(service: str) -> None:
    from shared.logging import configure_logging
    from shared.settings import KernelSettings

    kernel = KernelSettings()
    configure_logging(service=service, level=kernel.log_level, fmt=kernel.log_format)


@app.command()
def dev(
    data_dir: Annotated[
        Path, typer.Option(help="Where the embedded servers keep their data.")
    ] = Path(".ptce"),
    fresh: Annotated[bool, typer.Option(help="Delete the data directory first.")] = False,
    demo: Annotated[bool, typer.Option(help="Load the demo data.")] = True,
) -> None:
    """Run the whole system: embedded PostgreSQL and broker, the three services, demo data."""
    from ptce.dev import run_dev

    raise typer.Exit(run_dev(data_dir=data_dir, fresh=fresh, demo=demo))


@app.command()
def serve(
    service: Service,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int | None, typer.Option(help="Port (default: <SERVICE>_HTTP_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Processes serving HTTP (one per CPU to use); each runs the relay and "
            "consumers too unless <SERVICE>_RUN_WORKERS=false.",
        ),
    ] = 1,
) -> None:
    """Run a service's HTTP API (and its relay and consumers unless <SERVICE>_RUN_WORKERS=false)."""
    import uvicorn

    settings = _settings(service)
    _configure_logging(service.value)
    uvicorn.run(
        f"ptce.serving:{service.value}",
        factory=True,
        host=host,
        port=port or settings.http_port,
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


@app.command()
def worker(service: Service) -> None:
    """Run a service's outbox relay and consumers only (no HTTP), until SIGTERM or Ctrl-C."""
    import importlib

    import uvloop

    from shared.runtime import ServiceRuntime

    settings = _settings(service)
    _configure_logging(service.value)
    definition = importlib.import_module(f"{service.value}.service").DEFINITION

    async def main() -> None:
        runtime = ServiceRuntime(definition, settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        runtime.start_workers()
        try:
            await stop.wait()
        finally:
            await runtime.stop()

    # The event loop uvicorn runs the APIs on: the relay's and consumers' I/O costs less.
    uvloop.run(main())


@db_app.command("upgrade")
def db_upgrade(
    service: Annotated[list[Service] | None, typer.Argument(help="Default: all three.")] = None,
) -> None:
    """Apply a service's migrations up to the latest (creating its database when missing)."""
    from ptce.dev import ensure_database
    from shared.migrations import upgrade

    for one in service or list(Service):
        url = _settings(one).database_url
        asyncio.run(ensure_database(url))
        upgrade(one.value, url)
        typer.echo(f"{one.value}: migrations applied")


@kafka_app.command("create-topics")
def kafka_create_topics() -> None:
    """Create every topic and dead-letter topic (idempotent)."""
    from shared.kafka import create_topics
    from shared.settings import KernelSettings

    created = asyncio.run(create_topics(KernelSettings()))
    typer.echo(f"created: {', '.join(created)}" if created else "all topics exist")


@events_app.command("republish")
def events_republish(
    service: Service,
    since: Annotated[datetime, typer.Option(help="Re-send the events created since this instant.")],
) -> None:
    """Send a service's events again (e.g. after the in-memory broker lost them)."""
    from shared.db import create_engine
    from shared.outbox import republish_since

    if since.tzinfo is None:
        raise typer.BadParameter(
            "give a time zone, e.g. 2026-11-23T10:00:00+01:00", param_hint="--since"
        )

    async def main() -> int:
        engine = create_engine(_settings(service).database_url, pool_size=1)
        try:
            return await republish_since(engine, since)
        finally:
            await engine.dispose()

    typer.echo(f"{service.value}: {asyncio.run(main())} events queued for publication")


@contracts_app.command("export")
def contracts_export(
    root: Annotated[Path, typer.Option(help="Project root.")] = Path("."),
) -> None:
    """Write the JSON Schema of every event and the AsyncAPI document under contracts/."""
    from shared.events.export import write_contracts
    from shared.events.registry import load_contracts

    load_contracts()
    for path in write_contracts(root):
        typer.echo(str(path))


@settings_app.command("doc")
def settings_doc() -> None:
    """Print the configuration table (Markdown) from the settings classes."""
    from ptce.settings_doc import render_settings_table

    typer.echo(render_settings_table(), nl=False)


@pole_app.command("create")
def pole_create(  # noqa: PLR0917 - one option per parameter, as Typer wants
    name: Annotated[str, typer.Option(help="The pole's name.")],
    coordinator_name: Annotated[
        str, typer.Option(help="Legal name of the organisation that coordinates the pole.")
    ],
    siret: Annotated[str, typer.Option(help="That organisation's SIRET (14 digits).")],
    street: Annotated[str, typer.Option(help="Its street address.")],
    postal_code: Annotated[str, typer.Option(help="Its postal code.")],
    commune: Annotated[str, typer.Option(help="Its commune.")],
    insee_code: Annotated[str, typer.Option(help="The commune's INSEE code.")],
    category: Annotated[str, typer.Option(help="Its category.")] = "association",
    territory: Annotated[str, typer.Option(help="The pole's territory.")] = "",
    time_zone: Annotated[str, typer.Option(help="IANA time zone.")] = "Europe/Paris",
    currency: Annotated[str, typer.Option(help="ISO 4217 currency.")] = "EUR",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Create a pole, its coordinating organisation and that organisation's first
    coordinator API client; the client's secret is printed once."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from pydantic import ValidationError

    from catalog.members import RegisterMember
    from catalog.poles import RegisterPole, create_pole_with_coordinator
    from catalog.service import DEFINITION
    from shared.runtime import ServiceRuntime

    try:
        pole_command = RegisterPole(
            name=name, territory=territory, time_zone=time_zone, currency=currency
        )
        coordinator = RegisterMember(
            legal_name=coordinator_name,
            siret=siret,
            category=category,
            is_ess=True,
            street=street,
            postal_code=postal_code,
            commune=commune,
            insee_code=insee_code,
            joined_on=datetime.now(ZoneInfo(pole_command.time_zone)).date(),
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc

    async def main() -> dict[str, str]:
        runtime = ServiceRuntime(DEFINITION, _settings(Service.catalog))
        try:
            created = await create_pole_with_coordinator(
                runtime.uow(), pole_command, coordinator, label="first coordinator (CLI)"
            )
        finally:
            await runtime.stop()
        return {
            "pole_id": str(created.pole.id),
            "name": created.pole.name,
            "coordinator_member_id": str(created.coordinator.id),
            "client_id": created.client.client.id,
            "client_secret": created.client.secret,
        }

    result = asyncio.run(main())
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(f"pole {result['name']} created: {result['pole_id']}")
    typer.echo(f"coordinator client: {result['client_id']}")
    typer.echo(f"client secret (shown once): {result['client_secret']}")


@ledger_app.command("verify")
def ledger_verify(
    pole: Annotated[
        uuid.UUID | None, typer.Option(help="Only this pole (default: every pole with entries).")
    ] = None,
) -> None:
    """Recompute the hash chain of every pole's journal, and compare the running totals the
    reports read with the journal's lines; exit code 1 if a chain is broken or totals differ."""
    from ledger.journal import ChainCheck, poles_with_entries, verify_chain
    from ledger.trust import totals_differences
    from shared.db import create_engine, create_session_factory

    async def main() -> list[tuple[uuid.UUID, int, ChainCheck, int]]:
        engine = create_engine(_settings(Service.ledger).database_url, pool_size=1)
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session:
                counts = await poles_with_entries(session)
            checks = []
            for pole_id in [pole] if pole is not None else list(counts):
                async with sessions() as session:
                    check = await verify_chain(session, pole_id)
                    differences = await totals_differences(session, pole_id)
                checks.append((pole_id, counts.get(pole_id, 0), check, differences))
            return checks
        finally:
            await engine.dispose()

    checks = asyncio.run(main())
    for pole_id, count, check, differences in checks:
        state = "intact" if check.intact else f"broken at position {check.broken_at}"
        totals = (
            "running totals agree"
            if not differences
            else f"{differences} running totals differ from the lines (ptce ledger rebuild-totals)"
        )
        typer.echo(f"{pole_id}: {count} entries, {state}; {totals}")
    if not checks:
        typer.echo("no journal to verify")
    if any(not check.intact or differences for _, _, check, differences in checks):
        raise typer.Exit(1)


@ledger_app.command("rebuild-totals")
def ledger_rebuild_totals(
    pole: Annotated[
        uuid.UUID | None, typer.Option(help="Only this pole (default: every pole with entries).")
    ] = None,
) -> None:
    """Compute the running totals the reports read again from the journal's lines (after a
    bulk load with the triggers off, or when `ptce ledger verify` finds them different)."""
    from ledger.journal import poles_with_entries
    from ledger.trust import rebuild_totals
    from shared.db import create_engine, create_session_factory

    async def main() -> list[uuid.UUID]:
        engine = create_engine(_settings(Service.ledger).database_url, pool_size=1)
        try:
            sessions = create_session_factory(engine)
            async with sessions() as session:
                poles = [pole] if pole is not None else list(await poles_with_entries(session))
            for pole_id in poles:
                async with sessions() as session, session.begin():
                    await rebuild_totals(session, pole_id)
            return poles
        finally:
            await engine.dispose()

    for pole_id in asyncio.run(main()):
        typer.echo(f"{pole_id}: running totals rebuilt")


@ledger_app.command("reconcile")
def ledger_reconcile(
    pole: Annotated[uuid.UUID | None, typer.Option(help="Only this pole.")] = None,
) -> None:
    """Compare the exchange's completed exchanges with the journal; exit code 1 on any
    difference. Reads EXCHANGE_DATABASE_URL and LEDGER_DATABASE_URL."""
    from ledger.trust import Reconciliation, reconcile
    from shared.db import create_engine, create_session_factory

    async def main() -> Reconciliation:
        engines = [
            create_engine(_settings(service).database_url, pool_size=1)
            for service in (Service.exchange, Service.ledger)
        ]
        try:
            exchange, ledger = (create_session_factory(engine) for engine in engines)
            async with exchange() as on_exchange, ledger() as on_ledger:
                return await reconcile(on_exchange, on_ledger, pole)
        finally:
            for engine in engines:
                await engine.dispose()

    outcome = asyncio.run(main())
    for difference in outcome.differences:
        typer.echo(f"{difference.request_id}: {difference.problem}")
    typer.echo(f"{outcome.exchanges} completed exchanges, {len(outcome.differences)} differences")
    if outcome.differences:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
