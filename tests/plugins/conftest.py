"""Database servers for the SQL and top-up plugin tests: one PostgreSQL and one MariaDB per
test session, started on first use; each test gets a fresh database on them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._databases import (
    Database,
    DatabaseServer,
    ensure_binaries,
    mariadb_binaries,
    postgres_binaries,
    start_mariadb,
    start_postgres,
)

KINDS = ("postgresql", "mariadb")


@pytest.fixture(scope="session")
def database_binaries() -> str | None:
    """None when both servers are installed (installing them if missing), else why not."""
    return ensure_binaries()


@pytest.fixture(scope="session")
def postgresql_server(database_binaries: str | None) -> Iterator[DatabaseServer]:
    if postgres_binaries() is None:
        pytest.skip(database_binaries or "PostgreSQL is not installed")
    server = start_postgres()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def mariadb_server(database_binaries: str | None) -> Iterator[DatabaseServer]:
    if mariadb_binaries() is None:
        pytest.skip(database_binaries or "MariaDB is not installed")
    server = start_mariadb()
    yield server
    server.destroy()


def _fresh(server: DatabaseServer) -> Iterator[Database]:
    if not server.answers():
        # A test that stopped the server and failed before restarting it.
        server.start()
    url = server.create_database()
    yield Database(server, url)
    server.drop_database(url)


@pytest.fixture(params=KINDS)
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A fresh database on PostgreSQL, then on MariaDB (the test runs once for each)."""
    yield from _fresh(request.getfixturevalue(f"{request.param}_server"))


@pytest.fixture
def mariadb_database(mariadb_server: DatabaseServer) -> Iterator[Database]:
    """A fresh database on MariaDB only."""
    yield from _fresh(mariadb_server)
