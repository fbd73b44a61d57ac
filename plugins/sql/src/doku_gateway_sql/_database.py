"""The connection to the merchant's database: a bounded async pool, its timeouts, its errors.

Everything that talks to the database goes through :class:`Database`, so there is one place
where the driver is picked from the DSN, where every wait is bounded, and where a driver's
errors become :class:`~gateway.ResolverUnavailable` (DOKU is told to retry; nothing is cached).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import TextClause, bindparam, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeEngine

from gateway import ResolverUnavailable

__all__ = ["CONNECTION_OPTIONS", "Database", "DatabaseOptions", "Statement"]

Family = Literal["postgresql", "mysql"]

#: DSN scheme → (SQLAlchemy dialect+driver, family). Only async drivers: a blocking driver
#: would stall every inquiry of the process while it waits for the database.
_DRIVERS: dict[str, tuple[str, Family]] = {
    "postgresql": ("postgresql+asyncpg", "postgresql"),
    "postgres": ("postgresql+asyncpg", "postgresql"),
    "postgresql+asyncpg": ("postgresql+asyncpg", "postgresql"),
    "mysql": ("mysql+aiomysql", "mysql"),
    "mysql+aiomysql": ("mysql+aiomysql", "mysql"),
    "mysql+asyncmy": ("mysql+asyncmy", "mysql"),
    "mariadb": ("mariadb+aiomysql", "mysql"),
    "mariadb+aiomysql": ("mariadb+aiomysql", "mysql"),
    "mariadb+asyncmy": ("mariadb+asyncmy", "mysql"),
}

#: The options every database-backed resolver shares, with their defaults.
CONNECTION_OPTIONS: dict[str, Any] = {
    "dsn": None,
    "pool_size": 5,
    "connect_timeout": 1.0,
    "acquire_timeout": 0.5,
    "statement_timeout": 1.5,
    "pre_ping": True,
}

# How much longer than the server's own statement limit the client waits before it gives up on
# the connection: the server normally cancels first and the connection stays usable.
_CLIENT_GRACE = 0.5
# MySQL's duplicate-key error; PostgreSQL's duplicates never raise (ON CONFLICT DO NOTHING).
_MYSQL_DUPLICATE_KEY = 1062


@dataclass(frozen=True, slots=True)
class DatabaseOptions:
    """Checked connection settings (see :data:`CONNECTION_OPTIONS` for the defaults)."""

    url: URL
    family: Family
    pool_size: int
    connect_timeout: float
    acquire_timeout: float
    statement_timeout: float
    pre_ping: bool

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> DatabaseOptions:
        """Read the connection options; ``ValueError`` naming the option when one is wrong."""
        dsn = options.get("dsn")
        if not isinstance(dsn, str) or not dsn:
            raise ValueError(
                "option 'dsn' is required, e.g. postgresql://user:password@host/db "
                "or mysql://user:password@host/db"
            )
        try:
            url = make_url(dsn)
        except ArgumentError:
            raise ValueError("option 'dsn' is not a database URL") from None
        driver = _DRIVERS.get(url.drivername)
        if driver is None:
            known = ", ".join(sorted(_DRIVERS))
            raise ValueError(f"option 'dsn': unsupported scheme {url.drivername!r} ({known})")
        pool_size = options.get("pool_size", CONNECTION_OPTIONS["pool_size"])
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError("option 'pool_size' must be a positive integer")
        pre_ping = options.get("pre_ping", CONNECTION_OPTIONS["pre_ping"])
        if not isinstance(pre_ping, bool):
            raise ValueError("option 'pre_ping' must be true or false")
        return cls(
            url=url.set(drivername=driver[0]),
            family=driver[1],
            pool_size=pool_size,
            connect_timeout=_seconds(options, "connect_timeout"),
            acquire_timeout=_seconds(options, "acquire_timeout"),
            statement_timeout=_seconds(options, "statement_timeout"),
            pre_ping=pre_ping,
        )

    @property
    def safe_dsn(self) -> str:
        """The DSN with its password masked, for logs and errors."""
        return self.url.render_as_string(hide_password=True)


def _seconds(options: Mapping[str, Any], name: str) -> float:
    value = options.get(name, CONNECTION_OPTIONS[name])
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"option {name!r} must be a positive number of seconds")
    return float(value)


@dataclass(frozen=True, slots=True)
class Statement:
    """An SQL text with ``:named`` parameters, bound by the driver (never formatted in)."""

    clause: TextClause
    names: tuple[str, ...]

    @classmethod
    def parse(cls, option: str, sql: Any, allowed: Mapping[str, TypeEngine[Any]]) -> Statement:
        """Check that every ``:parameter`` of ``sql`` is one of ``allowed`` (name → type)."""
        if not isinstance(sql, str) or not sql.strip():
            raise ValueError(f"option {option!r} must be an SQL statement")
        clause = text(sql)
        names = tuple(clause.compile().params)
        unknown = sorted(set(names) - set(allowed))
        if unknown:
            raise ValueError(
                f"option {option!r} uses :{unknown[0]}, which is not a parameter "
                f"(known: {', '.join(':' + name for name in allowed)})"
            )
        # Typed parameters: PostgreSQL cannot infer the type of CONCAT(:a, :b) by itself.
        typed = clause.bindparams(*(bindparam(name, type_=allowed[name]) for name in names))
        return cls(typed, names)

    def bind(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The values of the parameters this statement names (asyncpg refuses extra ones)."""
        return {name: values[name] for name in self.names}


class Database:
    """A bounded connection pool, opened by :meth:`open` and closed by :meth:`close`.

    * at most ``pool_size`` connections; a caller waits at most ``acquire_timeout`` for one,
      and opening one takes at most ``connect_timeout``;
    * each statement is limited by the server (PostgreSQL ``statement_timeout``, MariaDB
      ``max_statement_time``, MySQL ``max_execution_time`` for reads) to ``statement_timeout``,
      and abandoned by the client shortly after if the server does not answer at all;
    * with ``pre_ping`` a pooled connection is checked before use, so connections broken by a
      database restart are replaced instead of failing an inquiry.

    Every failure of the database (refused, timed out, broken, an SQL error) is raised as
    :class:`~gateway.ResolverUnavailable` by :meth:`connect` and :meth:`execute`.
    """

    def __init__(self, options: DatabaseOptions, logger: logging.Logger | None = None) -> None:
        self.options = options
        self.logger = logger or logging.getLogger("doku_gateway.resolver.sql")
        self._engine: AsyncEngine | None = None
        self._answering: bool | None = None

    @property
    def family(self) -> Family:
        """``"postgresql"`` or ``"mysql"`` (MySQL and MariaDB)."""
        return self.options.family

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    async def open(self) -> None:
        """Create the pool (connections are opened on first use); a no-op when open."""
        if self._engine is None:
            self._engine = self._create_engine()

    async def close(self) -> None:
        """Close every pooled connection; a no-op when closed (so it may be called twice)."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def ping(self) -> bool:
        """True when ``SELECT 1`` succeeds within the configured timeouts.

        Logs once per change (down, then back), not at every ``/readyz`` probe.
        """
        try:
            async with self.connect() as connection:
                await self.execute(connection, text("SELECT 1"))
        except ResolverUnavailable as exc:
            if self._answering is not False:
                self.logger.warning("database is not answering: %s", exc)
            self._answering = False
            return False
        if self._answering is False:
            self.logger.info("database %s is answering again", self.options.safe_dsn)
        self._answering = True
        return True

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection, returned to the pool on exit (rolled back if left open)."""
        engine = self._engine
        if engine is None:
            raise ResolverUnavailable("the database pool is not open (startup() has not run)")
        options = self.options
        with self._translate("connecting"):
            async with asyncio.timeout(options.acquire_timeout + options.connect_timeout):
                connection = await engine.connect()
        try:
            yield connection
        finally:
            # Closing hands the connection back to the pool (rolled back) or, when it broke,
            # discards it; neither may hide the outcome of the work done on it.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(options.statement_timeout + _CLIENT_GRACE):
                    await connection.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside one transaction: committed on exit, rolled back on an error."""
        async with self.connect() as connection:
            with self._translate("beginning a transaction"):
                transaction = await connection.begin()
            try:
                yield connection
            except BaseException:
                with contextlib.suppress(Exception):
                    await transaction.rollback()
                raise
            with self._translate("committing"):
                async with asyncio.timeout(self.options.statement_timeout + _CLIENT_GRACE):
                    await transaction.commit()

    async def execute(
        self,
        connection: AsyncConnection,
        statement: Executable,
        parameters: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts (empty for statements without rows)."""
        rows, _ = await self._run(connection, statement, parameters)
        return rows

    async def execute_count(
        self,
        connection: AsyncConnection,
        statement: Executable,
        parameters: Mapping[str, Any] | None = None,
    ) -> int:
        """Run one statement that changes rows; how many it changed."""
        _, count = await self._run(connection, statement, parameters)
        return count

    async def insert_once(
        self, connection: AsyncConnection, statement: Executable, parameters: Mapping[str, Any]
    ) -> bool:
        """Run an INSERT guarded by a unique key: True when it inserted, False on a duplicate.

        On PostgreSQL ``statement`` must carry ``ON CONFLICT DO NOTHING``; on MySQL/MariaDB the
        duplicate-key error (1062) is the answer. A second transaction inserting the same key
        waits on the key until the first one ends, so concurrent duplicates insert once.
        """
        try:
            _, count = await self._run(connection, statement, parameters, duplicate_ok=True)
        except _Duplicate:
            return False
        return count == 1

    async def _run(
        self,
        connection: AsyncConnection,
        statement: Executable,
        parameters: Mapping[str, Any] | None,
        *,
        duplicate_ok: bool = False,
    ) -> tuple[list[dict[str, Any]], int]:
        with self._translate("running a statement"):
            try:
                async with asyncio.timeout(self.options.statement_timeout + _CLIENT_GRACE):
                    result = await connection.execute(statement, dict(parameters or {}))
                    rows = [dict(row) for row in result.mappings()] if result.returns_rows else []
                    return rows, result.rowcount
            except IntegrityError as exc:
                if duplicate_ok and _is_duplicate_key(exc):
                    raise _Duplicate from None
                raise

    @contextlib.contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except (ResolverUnavailable, _Duplicate):
            raise
        except TimeoutError:
            raise ResolverUnavailable(
                f"database {self.options.safe_dsn}: timed out while {doing}"
            ) from None
        # Drivers raise their own errors from some paths (asyncpg's connect raises OSError and
        # its own types), so anything raised while talking to the database means "unavailable".
        except Exception as exc:
            raise ResolverUnavailable(
                f"database {self.options.safe_dsn}: {type(exc).__name__} while {doing}: "
                f"{_first_line(exc)}"
            ) from exc

    def _create_engine(self) -> AsyncEngine:
        options = self.options
        statement_ms = max(1, round(options.statement_timeout * 1000))
        connect_args: dict[str, Any]
        if options.family == "postgresql":
            connect_args = {
                "timeout": options.connect_timeout,
                "server_settings": {"statement_timeout": str(statement_ms)},
            }
        else:
            # Both MySQL drivers take whole seconds here; round up so a short limit is not 0.
            connect_args = {"connect_timeout": max(1, math.ceil(options.connect_timeout))}
        engine = create_async_engine(
            options.url,
            pool_size=options.pool_size,
            max_overflow=0,
            pool_timeout=options.acquire_timeout,
            pool_pre_ping=options.pre_ping,
            # A connection a firewall or proxy may have dropped quietly is replaced after 30 min.
            pool_recycle=1800,
            connect_args=connect_args,
        )
        if options.family == "mysql":
            _limit_mysql_statements(engine, options.statement_timeout)
        return engine


def _limit_mysql_statements(engine: AsyncEngine, seconds: float) -> None:
    # MariaDB and MySQL name the per-session statement limit differently (and MySQL's covers
    # reads only); the dialect knows which server it met once the first connection is made.
    @event.listens_for(engine.sync_engine, "connect")
    def limit(dbapi_connection: Any, _record: Any) -> None:
        if engine.dialect.is_mariadb:  # type: ignore[attr-defined]
            statement, value = "SET SESSION max_statement_time = %s", round(seconds, 3)
        else:
            statement, value = "SET SESSION max_execution_time = %s", max(1, round(seconds * 1000))
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(statement, (value,))
        finally:
            cursor.close()


class _Duplicate(Exception):
    """An INSERT hit the unique key: the row is already there."""


def _is_duplicate_key(exc: IntegrityError) -> bool:
    args: tuple[Any, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] == _MYSQL_DUPLICATE_KEY


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else ""
