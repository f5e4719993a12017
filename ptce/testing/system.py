"""The three services as separate processes (``ptce serve``), the way ``make run`` runs them,
on the test's servers: fresh databases and topics of their own, the other services fetching
the token keys from the catalog over HTTP. A test can kill, pause and restart a service, and
run replicas of one (``ledger#2``: the same database and consumer groups, its own port)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from catalog.service import DEFINITION as CATALOG
from ptce.embedded import die_with_parent, free_port
from ptce.testing.api import Caller, CatalogApi
from ptce.testing.plugin import SettingsFactory
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

SERVICES = ("catalog", "exchange", "ledger")
READY_SECONDS = 60.0


async def until_ready(urls: Sequence[str], *, alive: Callable[[], None], seconds: float) -> None:
    """Poll each service's ``/readyz`` until it answers 200; ``alive`` raises if a process
    that should answer has died."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(timeout=3, trust_env=False) as client:
        for url in urls:
            while True:
                alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{url}/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready after {seconds:g} s")
                await asyncio.sleep(0.2)


def service_of(process: str) -> str:
    """The service a process runs: ``ledger`` for ``ledger`` and its replica ``ledger#2``."""
    return process.partition("#")[0]


def settings_env(settings: ServiceSettings) -> dict[str, str]:
    """The environment variables that give a service these settings."""
    prefix = str(type(settings).model_config.get("env_prefix", ""))
    env = {}
    for name, info in type(settings).model_fields.items():
        value: Any = getattr(settings, name)
        if value is None:
            continue
        alias = info.validation_alias
        key = alias if isinstance(alias, str) else f"{prefix}{name}".upper()
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        elif isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | dict):
            value = json.dumps(value)
        env[key] = str(value)
    return env


@dataclass
class System:
    settings: dict[str, ServiceSettings]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    http: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    catalog_runtime: ServiceRuntime | None = None
    workers: int = 1
    """HTTP worker processes per service (``ptce serve --workers``)."""
    separate_workers: bool = False
    """Each service's relay and consumers in a ``ptce worker`` process of their own, beside
    ``ptce serve`` with ``<PREFIX>_RUN_WORKERS=false``, as the deployment files run them."""

    def on(self, service: str, caller: Caller) -> Caller:
        """The caller, talking to that service's process."""
        return dataclasses.replace(caller, http=self.http[service])

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.settings[service].http_port}"

    def env(self, service: str, **changes: Any) -> dict[str, str]:
        """The environment of a service's process: its settings, with ``changes``."""
        return {
            **os.environ,
            **settings_env(self.settings[service].model_copy(update=changes)),
            "AUTH_JWKS_URL": f"{self.url('catalog')}/.well-known/jwks.json",
            "LOG_FORMAT": "console",
        }

    def start(self, service: str) -> None:
        """Start a service's process (``ledger``), or a replica's (``ledger#2``)."""
        if service not in self.settings:
            original = self.settings[service_of(service)]
            self.settings[service] = original.model_copy(update={"http_port": free_port()})
        ptce = shutil.which("ptce", path=str(Path(sys.executable).parent)) or "ptce"
        serve = [ptce, "serve", service_of(service), "--host", "127.0.0.1"]
        serve += ["--workers", str(self.workers)] if self.workers > 1 else []
        env = self.env(service, run_workers=not self.separate_workers)
        command = serve
        if self.separate_workers:
            # One process tree, one process group: the worker is the API's child, so what
            # measures, signals or kills the service takes both.
            worker = shlex.join([ptce, "worker", service_of(service)])
            command = ["sh", "-c", f"{worker} & exec {shlex.join(serve)}"]
        with open(self.logs / f"{service}.log", "ab") as log:
            self.processes[service] = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
                preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no locks
            )

    async def ready(self, service: str) -> None:
        def alive() -> None:
            if self.processes[service].poll() is not None:
                raise RuntimeError(f"{service} exited:\n{self.log_tail(service)}")

        try:
            await until_ready([self.url(service)], alive=alive, seconds=READY_SECONDS)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}:\n{self.log_tail(service)}") from None

    async def restart(self, service: str) -> None:
        """``kill -9`` (no shutdown, no flush, no goodbye to the broker), start, wait ready."""
        self.kill(service)
        self.start(service)
        await self.ready(service)

    def send_signal(self, service: str, sig: signal.Signals) -> None:
        """Send a signal to a service's processes, which go on running (SIGSTOP, SIGCONT)."""
        os.killpg(self.processes[service].pid, sig)

    def kill(self, service: str, sig: signal.Signals = signal.SIGKILL) -> None:
        process = self.processes.pop(service)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def log_tail(self, service: str, size: int = 4000) -> str:
        path = self.logs / f"{service}.log"
        return path.read_text(errors="replace")[-size:] if path.exists() else ""

    def catalog(self) -> CatalogApi:
        """The catalog's API over HTTP; poles are created in its database, as `ptce pole
        create` does (its process publishes their events)."""
        assert self.catalog_runtime is not None
        return CatalogApi(http=self.http["catalog"], runtime=self.catalog_runtime)


@contextlib.asynccontextmanager
async def running_system(
    service_settings: SettingsFactory,
    logs: Path,
    *,
    workers: int = 1,
    separate_workers: bool = False,
    **overrides: Any,
) -> AsyncIterator[System]:
    """The three services on fresh databases, ``workers`` HTTP processes each (and, with
    ``separate_workers``, a ``ptce worker`` process each); ``overrides`` change their
    settings."""
    settings = {}
    for service in SERVICES:
        made = await service_settings(service)
        settings[service] = made.model_copy(update={"http_port": free_port(), **overrides})
    system = System(settings, logs, workers=workers, separate_workers=separate_workers)
    try:
        for service in SERVICES:
            system.start(service)
        for service in SERVICES:
            await system.ready(service)
            system.http[service] = httpx.AsyncClient(
                base_url=system.url(service), timeout=30, trust_env=False
            )
        system.catalog_runtime = ServiceRuntime(CATALOG, settings["catalog"])
        yield system
    finally:
        for client in system.http.values():
            await client.aclose()
        if system.catalog_runtime is not None:
            await system.catalog_runtime.stop()
        for service in list(system.processes):
            system.kill(service, signal.SIGTERM)
