"""Routes each inquiry to its resolver and calls it under a timeout."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._eager import within
from ..config import ResolverSettings
from ..exceptions import ConfigError, ResolverError, ResolverUnavailable
from ..log import get_logger
from ..snap.inquiry import validate_bill
from ..snap.models import Bill, BillStatus, Inquiry, Outcome
from .contract import Resolver, ResolverContext
from .loader import build_resolver

__all__ = ["ResolverSet", "Route"]

_log = get_logger("dispatch")


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    resolver: Resolver
    timeout: float
    options: Mapping[str, Any] = field(default_factory=dict)


class ResolverSet:
    """The configured resolvers, routed by stripped ``partnerServiceId`` with a default."""

    def __init__(self, routes: Sequence[tuple[Route, Sequence[str], bool]]) -> None:
        self.routes = tuple(route for route, _, _ in routes)
        self._by_prefix: dict[str, Route] = {}
        self._default: Route | None = None
        for route, prefixes, is_default in routes:
            for prefix in prefixes:
                self._by_prefix[prefix] = route
            if is_default:
                self._default = route
        if self._default is None and len(self.routes) == 1:
            self._default = self.routes[0]

    @classmethod
    def from_settings(
        cls, settings: Sequence[ResolverSettings], default_timeout: float
    ) -> ResolverSet:
        entries = []
        for index, item in enumerate(settings):
            resolver = build_resolver(item.use, item.options, f"resolvers[{index}].use")
            route = Route(item.name, resolver, item.timeout or default_timeout, item.options)
            entries.append((route, item.partner_service_ids, item.default))
        return cls(entries)

    @classmethod
    def single(cls, resolver: Resolver, name: str = "default", timeout: float = 3.0) -> ResolverSet:
        """One resolver for every partnerServiceId (tests, embedding)."""
        return cls([(Route(name, resolver, timeout), (), True)])

    def route(self, partner_prefix: str) -> Route | None:
        return self._by_prefix.get(partner_prefix, self._default)

    async def resolve(self, route: Route, inquiry: Inquiry) -> Outcome:
        """Call ``route``'s resolver under its timeout and check what it returned.

        Raises :class:`ResolverUnavailable` (also on timeout) or :class:`ResolverError`.
        """
        try:
            # The timer is armed only if the resolver waits (most answer from memory or wait
            # on I/O; those that do not need none).
            outcome = await within(route.resolver.resolve(inquiry), route.timeout)
        except TimeoutError:
            raise ResolverUnavailable(f"resolver {route.name} timed out") from None
        if isinstance(outcome, BillStatus):
            return outcome
        if not isinstance(outcome, Bill):
            raise ResolverError(f"resolver {route.name} returned {type(outcome).__name__}")
        validate_bill(outcome)
        return outcome

    async def startup(self, invalidate: Callable[[str], Awaitable[None]]) -> None:
        for route in self.routes:
            hook = getattr(route.resolver, "startup", None)
            if hook is None:
                continue
            context = ResolverContext(
                route.name,
                route.options,
                invalidate,
                logging.getLogger(f"doku_gateway.resolver.{route.name}"),
            )
            try:
                await _maybe_await(hook(context))
            except Exception as exc:
                raise ConfigError(f"resolvers.{route.name}", f"startup failed: {exc}") from exc

    async def shutdown(self) -> None:
        for route in reversed(self.routes):
            hook = getattr(route.resolver, "shutdown", None)
            if hook is None:
                continue
            try:
                await _maybe_await(hook())
            except Exception:
                _log.exception("resolver %s failed to shut down cleanly", route.name)

    async def health(self, timeout: float) -> dict[str, bool]:
        """Each resolver's ``health()`` under ``timeout``; no hook counts as healthy."""

        async def check(route: Route) -> bool:
            hook = getattr(route.resolver, "health", None)
            if hook is None:
                return True
            try:
                async with asyncio.timeout(timeout):
                    return bool(await _maybe_await(hook()))
            except Exception:
                _log.warning("resolver %s health check failed", route.name, exc_info=True)
                return False

        results = await asyncio.gather(*(check(route) for route in self.routes))
        return {route.name: ok for route, ok in zip(self.routes, results, strict=True)}


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value
