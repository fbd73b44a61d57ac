"""The ASGI application: ``create_app(settings)`` wires handlers, state and resolvers."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from .._types import Clock
from ..config import Settings, is_memory_url
from ..log import get_logger
from ..metrics import Metrics
from ..payments.delivery import Deliverer
from ..payments.journal import create_journal
from ..payments.journal.base import Journal
from ..payments.ledger import create_ledger
from ..resolvers.dispatch import ResolverSet
from ..state import create_state
from ..state.base import StateBackend
from .asgi import Deadlines, GatewayApp
from .handlers.health import HealthHandlers
from .handlers.inquiry import InquiryHandler
from .handlers.payment import PaymentHandler
from .handlers.token import TokenHandler
from .rotation import CredentialWatcher, loose_secret_files
from .runtime import Runtime

_log = get_logger("app")


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
    shared_batch = None
    if state is None:
        state = create_state(settings.cache, metrics)
        # Redis state on cache.url: the ledger (same Redis) writes through its pipeline.
        shared_batch = getattr(state, "batcher", None)
    runtime = Runtime(settings, resolvers, state, metrics, **({"clock": clock} if clock else {}))
    journal = journal or create_journal(settings)
    ledger = create_ledger(settings, shared_batch)
    deliverer = Deliverer(journal, resolvers, settings.payment, metrics, state)
    health = HealthHandlers(runtime, journal)
    if not is_memory_url(settings.cache.url):
        metrics.use_redis()
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
    watcher = CredentialWatcher(runtime, settings.security.key_reload_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for message in loose_secret_files(settings.credentials):
            _log.warning("%s", message)
        await runtime.resolvers.startup(runtime.invalidate)
        await deliverer.start()
        watcher.start()
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
            await watcher.stop()
            await deadlines.stop()
            await deliverer.stop()
            await journal.close()
            await ledger.close()
            await runtime.resolvers.shutdown()
            await runtime.state.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    app.state.journal = journal
    app.state.health = health
    app.state.watcher = watcher
    return GatewayApp(app, transactions, deadlines)
