"""`ptce dev` (what `make run` calls): the system comes up, answers, and stops leaving nothing."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from ptce import demo_data
from ptce.embedded import free_port
from shared.runtime import ServiceDefinition

SERVICES = ("catalog", "exchange", "ledger")


def _start(data_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    ptce = str(Path(sys.executable).parent / "ptce")
    process = subprocess.Popen(
        [ptce, "dev", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if "up in" in line or "failed" in line:
            break
    assert any("up in" in line for line in lines), "\n".join(lines)
    return process, lines


def _stop(process: subprocess.Popen[str]) -> list[str]:
    descendants = psutil.Process(process.pid).children(recursive=True)
    assert len(descendants) >= 5  # three services, PostgreSQL, the broker
    process.send_signal(signal.SIGINT)
    # Read its output while it stops: one that fills the pipe would block it from exiting.
    try:
        output, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"ptce dev did not stop: {_where(process.pid)}") from None
    assert process.returncode == 0, output[-5000:]
    rest = output.splitlines()
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == [], f"left behind: {[p.cmdline() for p in alive]}"
    return rest


def _where(pid: int) -> str:
    """What a process that does not stop is doing: its signal masks and its threads' waits."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    masks = [line for line in status if line.startswith(("State", "Sig", "Shd"))]
    threads = [
        f"{task.name}: {(task / 'wchan').read_text()} {(task / 'stat').read_text().split()[2]}"
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    return f"{masks} threads {threads}"


def _definition(service: str) -> ServiceDefinition:
    definition: ServiceDefinition = importlib.import_module(f"{service}.service").DEFINITION
    return definition


def test_ptce_dev_runs_the_whole_system_then_stops_cleanly(data_dir: Path) -> None:
    ports = {service: free_port() for service in SERVICES}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("_DATABASE_URL") and key != "KAFKA_BOOTSTRAP_SERVERS"
    }
    env |= {f"{s.upper()}_HTTP_PORT": str(p) for s, p in ports.items()}
    env |= {"PTCE_DEV_POSTGRES_PORT": str(free_port()), "PTCE_DEV_KAFKA_PORT": str(free_port())}

    process, lines = _start(data_dir, env)
    try:
        for service, port in ports.items():
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
            assert ready.status_code == 200, ready.text
            # Each process runs its relay and consumers: none of them stalled.
            consumers = {f"consumer {spec.name}": "ok" for spec in _definition(service).consumers}
            assert ready.json()["checks"] == {
                "database": "ok",
                "migrations": "ok",
                "broker": "ok",
                **consumers,
            }
            docs = httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=10)
            assert docs.status_code == 200
            assert any(f"127.0.0.1:{port}" in line for line in lines), service
        assert any("demo pole created" in line for line in lines)
        demo_members = len(demo_data.MEMBERS)
        assert any(
            f"demo ledger: dues rule 200, dues of {demo_members} members, grant 201" in line
            for line in lines
        ), "\n".join(lines)
        first_secret = _demo_secret(lines)
        assert _demo_search(ports["catalog"], first_secret)
    finally:
        rest = _stop(process)
    assert "[ptce dev] stopped" in rest

    # A second run finds the same data: the demo is not loaded twice; its secret is renewed.
    process, lines = _start(data_dir, env)
    try:
        assert any("demo pole present" in line for line in lines)
        assert not any("demo pole created" in line for line in lines)
        assert any("0 offers added" in line for line in lines)
        # The ledger's demo postings are not made twice: the grant is replayed, dues are posted.
        assert any("dues rule 409" in line and "grant 200" in line for line in lines)
        second_secret = _demo_secret(lines)
        assert _demo_search(ports["catalog"], second_secret)
        stale = httpx.post(
            f"http://127.0.0.1:{ports['catalog']}/oauth/token",
            data=_credentials(first_secret),
            timeout=10,
        )
        assert stale.status_code == 401
    finally:
        _stop(process)


def _demo_secret(lines: list[str]) -> str:
    """The member client's secret, as `make run` prints it for people to try the API."""
    printed = [line for line in lines if "client_id=cli_demo_member" in line]
    assert printed, "\n".join(lines)
    return printed[-1].split("client_secret=")[1].strip()


def _credentials(secret: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": "cli_demo_member",
        "client_secret": secret,
    }


def _demo_search(port: int, secret: str) -> list[str]:
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/oauth/token", data=_credentials(secret), timeout=10)
    assert token.status_code == 200, token.text
    found = httpx.get(
        f"{base}/offers",
        params={"q": "salle de réunion"},
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=10,
    )
    assert found.status_code == 200, found.text
    return [offer["title"] for offer in found.json()["items"]]
