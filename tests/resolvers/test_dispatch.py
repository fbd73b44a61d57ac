from __future__ import annotations

import asyncio
from types import MappingProxyType
from typing import Any

import pytest

from gateway import BillStatus, Inquiry, ResolverContext, ResolverError, ResolverUnavailable
from gateway.config import ResolverSettings
from gateway.exceptions import ConfigError
from gateway.resolvers.dispatch import ResolverSet, Route

pytestmark = pytest.mark.anyio


def inquiry(code: str = "8889900001234", partner: str = "   88899") -> Inquiry:
    return Inquiry(
        partner,
        code[5:],
        partner + code[5:],
        code,
        "r1",
        "VIRTUAL_ACCOUNT_BTN",
        MappingProxyType({}),
    )


class Fixed:
    def __init__(self, outcome: Any, delay: float = 0.0) -> None:
        self.outcome = outcome
        self.delay = delay
        self.calls = 0
        self.events: list[str] = []
        self.healthy: Any = True

    async def resolve(self, inquiry: Inquiry) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.outcome

    async def startup(self, context: ResolverContext) -> None:
        self.events.append(f"startup:{context.name}")
        self.context = context

    async def health(self) -> Any:
        if isinstance(self.healthy, BaseException):
            raise self.healthy
        return self.healthy

    def shutdown(self) -> None:  # sync hooks are allowed too
        self.events.append("shutdown")


async def test_routes_by_stripped_partner_service_id_with_default() -> None:
    a, b = Fixed(BillStatus.NOT_FOUND), Fixed(BillStatus.EXPIRED)
    resolvers = ResolverSet([(Route("a", a, 1), ("88899",), False), (Route("b", b, 1), (), True)])
    assert resolvers.route("88899") is resolvers.routes[0]
    assert resolvers.route("12345") is resolvers.routes[1]
    only = ResolverSet([(Route("a", a, 1), ("88899",), False), (Route("b", b, 1), ("1",), False)])
    assert only.route("777") is None


async def test_timeout_becomes_unavailable() -> None:
    resolvers = ResolverSet.single(Fixed(BillStatus.NOT_FOUND, delay=1), timeout=0.05)
    with pytest.raises(ResolverUnavailable, match="timed out"):
        await resolvers.resolve(resolvers.routes[0], inquiry())


async def test_wrong_return_type_is_a_resolver_error() -> None:
    resolvers = ResolverSet.single(Fixed({"name": "A", "amount": "1.00"}))
    with pytest.raises(ResolverError):
        await resolvers.resolve(resolvers.routes[0], inquiry())


async def test_lifecycle_hooks_and_health() -> None:
    fixed = Fixed(BillStatus.NOT_FOUND)
    resolvers = ResolverSet.single(fixed, "main")
    invalidated: list[str] = []

    async def invalidate(code: str) -> None:
        invalidated.append(code)

    await resolvers.startup(invalidate)
    await fixed.context.invalidate("123")
    assert invalidated == ["123"]
    assert await resolvers.health(1) == {"main": True}
    fixed.healthy = RuntimeError("db down")
    assert await resolvers.health(1) == {"main": False}
    fixed.healthy = False
    assert await resolvers.health(1) == {"main": False}
    await resolvers.shutdown()
    assert fixed.events == ["startup:main", "shutdown"]


async def test_failing_startup_is_a_config_error() -> None:
    class Broken(Fixed):
        async def startup(self, context: ResolverContext) -> None:
            raise OSError("cannot connect")

    with pytest.raises(ConfigError, match="startup failed"):
        await ResolverSet.single(Broken(None), "x").startup(lambda code: asyncio.sleep(0))


def test_loads_from_import_string_and_entry_point() -> None:
    settings = [
        ResolverSettings("imported", "gateway.resolvers.demo:DemoResolver", ("88899",)),
        ResolverSettings("entry", "demo", (), True),
    ]
    resolvers = ResolverSet.from_settings(settings, 3.0)
    assert [r.name for r in resolvers.routes] == ["imported", "entry"]
    default = resolvers.route("1")
    assert default is not None and default.name == "entry"


@pytest.mark.parametrize(
    ("use", "message"),
    [
        ("no_such_module_xyz:Factory", "cannot import"),
        ("gateway.resolvers.demo:Missing", "no attribute"),
        ("no-such-plugin", "no resolver plugin named"),
        ("gateway.resolvers.demo:__doc__", "not callable"),
        ("builtins:object", "refused its options"),
        ("builtins:dict", "without an async resolve"),
    ],
)
def test_loader_errors_name_the_resolver(use: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        ResolverSet.from_settings([ResolverSettings("x", use)], 3.0)
    assert info.value.key == "resolvers[0].use"
