"""The ASGI application: ``create_app(settings)`` wires handlers, state and resolvers."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from .asgi import Deadlines, GatewayApp
from .config import Settings
from .delivery import Deliverer
from .dispatch import ResolverSet
from .handlers.health import HealthHandlers
from .handlers.inquiry import InquiryHandler
from .handlers.payment import PaymentHandler
from .handlers.token import TokenHandler
from .journal import FileJournal, Journal
from .ledger import create_ledger
from .log import get_logger
from .metrics import Metrics
from .responses import Clock
from .runtime import Runtime
from .state import MemoryState, StateBackend

__all__ = ["create_app", "create_journal", "create_state"]

_log = get_logger("app")


def create_state(settings: Settings, metrics: Metrics) -> StateBackend:
    """The state backend named by ``cache.url``."""
    cache = settings.cache
    if cache.url.startswith("memory:"):
        return MemoryState(cache.max_entries, cache.replay_max_entries)
    from .redis_state import RedisState  # imported lazily: embedded mode needs no Redis

    return RedisState.from_settings(cache, metrics)


def create_journal(settings: Settings) -> Journal:
    """The payment journal: Redis Streams when configured (or ``auto`` with a Redis cache),
    else fsync'd files in ``payment.journal_dir`` (one process)."""
    if settings.journal_on_redis:
        from .redis_journal import RedisJournal

        journal: Journal = RedisJournal.from_settings(settings.cache, settings.payment)
        return journal
    return FileJournal(settings.payment.journal_dir)


def create_app(
    settings: Settings,
    *,
    resolvers: ResolverSet | None = None,
    state: StateBackend | None = None,
    metrics: Metrics | None = None,
    clock: Clock | None = None,
    journal: Journal | None = None,
) -> GatewayApp:
    """Build the gateway app. ``resolvers``/``state``/``clock`` may be passed in (tests, embedding);
    otherwise they come from ``settings``."""
    metrics = metrics or Metrics()
    if resolvers is None:
        resolvers = ResolverSet.from_settings(settings.resolvers, settings.inquiry.resolver_timeout)
    if state is None:
        state = create_state(settings, metrics)
    runtime = Runtime(settings, resolvers, state, metrics, **({"clock": clock} if clock else {}))
    journal = journal or create_journal(settings)
    ledger = create_ledger(settings)
    deliverer = Deliverer(journal, resolvers, settings.payment, metrics, state)
    health = HealthHandlers(runtime)
    paths = settings.paths
    transactions = {
        paths.token: TokenHandler(runtime).handle,
        paths.inquiry: InquiryHandler(runtime, ledger).handle,
        paths.payment: PaymentHandler(runtime, journal, deliverer, ledger).handle,
    }
    routes = [
        Route("/livez", health.livez, methods=["GET"]),
        Route("/readyz", health.readyz, methods=["GET"]),
        Route("/metrics", health.metrics, methods=["GET"]),
    ]

    deadlines = Deadlines()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.resolvers.startup(runtime.invalidate)
        await deliverer.start()
        # Everything built so far lives as long as the app: keep it out of the collector's
        # generations so a full collection under load walks only per-request garbage.
        gc.freeze()
        _log.info(
            "gateway ready: %d resolver(s), state %s",
            len(runtime.resolvers.routes),
            runtime.state.status().get("backend"),
        )
        try:
            yield
        finally:
            await deadlines.stop()
            await deliverer.stop()
            await journal.close()
            await ledger.close()
            await runtime.resolvers.shutdown()
            await runtime.state.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.journal = journal
    return GatewayApp(app, transactions, deadlines)
