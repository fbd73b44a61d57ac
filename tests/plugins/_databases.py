"""Real PostgreSQL and MariaDB servers for the SQL plugin tests.

Each server is initialised into its own temp directory (``initdb`` / ``mariadb-install-db``) and
listens on a free loopback port, so parallel test runs never share one. The binaries come from
Debian's ``postgresql`` and ``mariadb-server`` packages; :func:`ensure_binaries` installs them
through ``scripts/ensure-databases`` when they are missing and that is possible (root, apt-get).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

__all__ = [
    "Database",
    "DatabaseServer",
    "ensure_binaries",
    "mariadb_binaries",
    "postgres_binaries",
    "start_mariadb",
    "start_postgres",
]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def postgres_binaries() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding ``initdb`` and ``postgres``."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def mariadb_binaries() -> tuple[str, str] | None:
    """``(mariadb-install-db, mariadbd)``, or None when MariaDB is not installed."""
    install = shutil.which("mariadb-install-db")
    server = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin:/usr/local/sbin")
    return (install, server) if install and server else None


def ensure_binaries() -> str | None:
    """Install the servers when missing; None when both are there, else why they are not."""
    if postgres_binaries() is not None and mariadb_binaries() is not None:
        return None
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-databases")],
        capture_output=True,
        text=True,
        check=False,
    )
    if postgres_binaries() is not None and mariadb_binaries() is not None:
        return None
    detail = (result.stderr or result.stdout).strip().splitlines()
    return "PostgreSQL/MariaDB servers are not installed and could not be installed" + (
        f": {detail[-1]}" if detail else ""
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_user(name: str) -> str | None:
    # Both servers refuse to run as root; as root, run them as the account Debian made for them.
    return name if os.geteuid() == 0 else None


@dataclass
class DatabaseServer:
    """One running server; ``dsn`` reaches its default database as a superuser."""

    kind: str
    port: int
    directory: Path
    dsn: str
    command: list[str]
    user: str | None
    stop_signal: signal.Signals
    process: subprocess.Popen[bytes] | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.directory / "server.log"

    def start(self) -> None:
        """Start the server and return once it answers a query (or fail with its log)."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=self.user,
                cwd=self.directory,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self.log.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"{self.kind} did not start on port {self.port}:\n{output}")
            # A short pause between probes; readiness itself is decided by a real query.
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut, as in an outage)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(self.stop_signal)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def answers(self) -> bool:
        """True when ``SELECT 1`` succeeds over TCP within a second."""
        return asyncio.run(_probe(self.dsn))

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self) -> str:
        """A fresh, empty database for one test; its DSN."""
        name = "t_" + uuid.uuid4().hex[:16]
        asyncio.run(_admin(self.dsn, f"CREATE DATABASE {name}"))
        self.databases.append(name)
        return self.dsn.rsplit("/", 1)[0] + "/" + name

    def drop_database(self, dsn: str) -> None:
        name = dsn.rsplit("/", 1)[1]
        if self.process is not None and self.process.poll() is None:
            # FORCE: a test that failed before shutting its resolver down leaves a pool open.
            force = " WITH (FORCE)" if self.kind == "postgresql" else ""
            asyncio.run(_admin(self.dsn, f"DROP DATABASE IF EXISTS {name}{force}"))


async def _probe(dsn: str) -> bool:
    engine = create_async_engine(dsn, poolclass=NullPool, connect_args=_connect_args(dsn))
    try:
        async with asyncio.timeout(1.0), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def _admin(dsn: str, statement: str) -> None:
    # CREATE/DROP DATABASE cannot run inside a transaction block on PostgreSQL.
    engine = create_async_engine(
        dsn, poolclass=NullPool, isolation_level="AUTOCOMMIT", connect_args=_connect_args(dsn)
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _connect_args(dsn: str) -> dict[str, object]:
    if dsn.startswith("postgresql"):
        return {"timeout": 1.0}
    return {"connect_timeout": 1}


def _prepare_directory(prefix: str, user: str | None) -> Path:
    # The server's own account must reach the directory: as root, under /tmp rather than a
    # TMPDIR that may sit in root's private home.
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp" if user is not None else None))
    if user is not None:
        shutil.chown(directory, user, user)
    return directory


def _run(command: list[str], user: str | None, what: str) -> None:
    result = subprocess.run(command, capture_output=True, user=user, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
        raise RuntimeError(f"{what} failed ({result.returncode}):\n{output}")


def start_postgres() -> DatabaseServer:
    """initdb into a temp dir and start ``postgres`` on a free loopback port."""
    binaries = postgres_binaries()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed")
    user = _service_user("postgres")
    directory = _prepare_directory("doku-gateway-pg-", user)
    data = directory / "data"
    _run(
        [
            str(binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            "doku",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        user,
        "initdb",
    )
    port = free_port()
    server = DatabaseServer(
        kind="postgresql",
        port=port,
        directory=directory,
        dsn=f"postgresql+asyncpg://doku@127.0.0.1:{port}/postgres",
        command=[
            str(binaries / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(directory),
            # Test data need not survive a power cut.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "shared_buffers=16MB",
            "-c",
            "max_connections=60",
        ],
        user=user,
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave.
        stop_signal=signal.SIGINT,
    )
    server.start()
    return server


def start_mariadb() -> DatabaseServer:
    """mariadb-install-db into a temp dir and start ``mariadbd`` on a free loopback port."""
    binaries = mariadb_binaries()
    if binaries is None:
        raise RuntimeError("MariaDB is not installed")
    install, mariadbd = binaries
    user = _service_user("mysql")
    directory = _prepare_directory("doku-gateway-mariadb-", user)
    data = directory / "data"
    _run(
        [
            install,
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ],
        user,
        "mariadb-install-db",
    )
    # Runs at every start, before connections are accepted: the tests' account and database.
    init = directory / "init.sql"
    init.write_text(
        "CREATE USER IF NOT EXISTS 'doku'@'127.0.0.1' IDENTIFIED BY 'doku';\n"
        "GRANT ALL PRIVILEGES ON *.* TO 'doku'@'127.0.0.1' WITH GRANT OPTION;\n"
        "CREATE DATABASE IF NOT EXISTS doku;\n"
    )
    if user is not None:
        shutil.chown(init, user, user)
    port = free_port()
    server = DatabaseServer(
        kind="mariadb",
        port=port,
        directory=directory,
        dsn=f"mysql+aiomysql://doku:doku@127.0.0.1:{port}/doku",
        command=[
            mariadbd,
            "--no-defaults",
            f"--datadir={data}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--socket={directory / 'mariadb.sock'}",
            f"--pid-file={directory / 'mariadb.pid'}",
            f"--init-file={init}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=32M",
            "--innodb-flush-log-at-trx-commit=0",
            "--max-connections=60",
        ],
        user=user,
        stop_signal=signal.SIGTERM,
    )
    server.start()
    return server


@dataclass
class Database:
    """A fresh, empty database on one of the servers, for one test."""

    server: DatabaseServer
    url: str

    @property
    def kind(self) -> str:
        """``postgresql`` or ``mariadb``."""
        return self.server.kind

    @property
    def dsn(self) -> str:
        """The DSN as a merchant writes it (``postgresql://`` / ``mysql://``, no driver)."""
        scheme, rest = self.url.split("://", 1)
        return scheme.split("+", 1)[0] + "://" + rest

    async def run(self, *statements: str, **parameters: object) -> list[dict[str, object]]:
        """Run statements in one transaction; the rows of the last one."""
        engine = create_async_engine(
            self.url, poolclass=NullPool, connect_args=_connect_args(self.url)
        )
        rows: list[dict[str, object]] = []
        try:
            async with engine.begin() as connection:
                for statement in statements:
                    result = await connection.execute(text(statement), parameters)
                    rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
        finally:
            await engine.dispose()
        return rows

    async def script(self, sql: str) -> None:
        """Run a schema file: statements separated by ``;`` at the end of a line."""
        statements = [part.strip() for part in sql.split(";\n") if _has_sql(part)]
        await self.run(*statements)


def _has_sql(part: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in part.splitlines())
