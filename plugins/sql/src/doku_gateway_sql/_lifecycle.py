"""The lifecycle every database-backed resolver shares: options checked without connecting, the
pool opened in ``startup()`` (an async driver's pool belongs to the running loop), closed in
``shutdown()``, pinged by ``health()``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from gateway import ResolverContext

from ._database import Database

__all__ = ["DatabaseResolver"]


class DatabaseResolver:
    """Base of a resolver whose ``__init__(options)`` validates its options (``ValueError``
    naming the bad one) and sets ``self.database``; subclasses add ``resolve``."""

    #: Named in the warning when the database is down at start.
    kind: ClassVar[str] = "database"
    database: Database

    @classmethod
    def check(cls, options: Mapping[str, Any]) -> list[str]:
        """What is wrong with ``options`` (``doku-gateway check-config``); no connection made."""
        try:
            cls(options)  # type: ignore[call-arg]
        except ValueError as exc:
            return [str(exc)]
        return []

    async def startup(self, context: ResolverContext) -> None:
        """Open the pool and try one connection; a database that is down is only logged."""
        self.database.logger = context.logger
        await self.database.open()
        # The gateway starts even when the database is down (inquiries get 5042400 and
        # /readyz reports it) and recovers without a restart when it comes back.
        if not await self.database.ping():
            context.logger.warning(
                "%s resolver started without a database connection (%s)",
                self.kind,
                self.database.options.safe_dsn,
            )

    async def shutdown(self) -> None:
        """Close the pool; safe to call more than once."""
        await self.database.close()

    async def health(self) -> bool:
        """True while ``SELECT 1`` succeeds within the timeouts."""
        return self.database.is_open and await self.database.ping()
