"""`ptce worker SERVICE`: a service's relay and consumers as a process of their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from catalog.poles import RegisterPole, register_pole
from catalog.service import DEFINITION as CATALOG
from exchange.models import pole as exchange_pole
from exchange.service import DEFINITION as EXCHANGE
from ptce.testing.helpers import eventually
from ptce.testing.plugin import SettingsFactory
from shared.runtime import ServiceRuntime


async def test_workers_carry_an_event_from_one_service_to_another_then_stop(
    service_settings: SettingsFactory, data_dir: Path
) -> None:
    catalog_settings = await service_settings("catalog")
    exchange_settings = await service_settings("exchange")
    env = {
        **os.environ,
        "CATALOG_DATABASE_URL": catalog_settings.database_url,
        "EXCHANGE_DATABASE_URL": exchange_settings.database_url,
        "KAFKA_BOOTSTRAP_SERVERS": catalog_settings.kafka_bootstrap_servers,
        "KAFKA_TOPIC_PREFIX": catalog_settings.kafka_topic_prefix,
    }
    ptce = str(Path(sys.executable).parent / "ptce")
    # Starting the children is instantaneous (Popen does not wait); their logs go to files.
    logs = {
        s: open(data_dir / f"{s}-worker.log", "wb")  # noqa: SIM115, ASYNC230
        for s in ("catalog", "exchange")
    }
    workers = {
        service: subprocess.Popen(  # noqa: ASYNC220
            [ptce, "worker", service], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        for service, log in logs.items()
    }
    # The API side: a unit of work commits a pole and its event; no relay runs in this process.
    catalog = ServiceRuntime(CATALOG, catalog_settings)
    exchange = ServiceRuntime(EXCHANGE, exchange_settings)
    try:
        pole = await register_pole(catalog.uow(), RegisterPole(name="Pôle des ateliers"))

        async def copied() -> bool:
            async with exchange.session_factory() as session:
                count = await session.scalar(
                    select(func.count())
                    .select_from(exchange_pole)
                    .where(exchange_pole.c.id == pole.id)
                )
            return count == 1

        await eventually(copied, timeout=60)
    finally:
        for process in workers.values():
            process.send_signal(signal.SIGTERM)
        codes = {service: process.wait(30) for service, process in workers.items()}
        for log in logs.values():
            log.close()
        await catalog.stop()
        await exchange.stop()
    assert codes == {"catalog": 0, "exchange": 0}, {
        s: (data_dir / f"{s}-worker.log").read_text()[-2000:] for s in workers
    }
