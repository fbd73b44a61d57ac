"""Loading resolver plugins and their ``check(options)`` hook, as check-config and serve do."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway import Bill, BillStatus, Inquiry
from gateway.config import ResolverSettings
from gateway.resolvers.loader import check_resolvers


class CheckedResolver:
    """A factory with a ``check(options)`` hook naming each problem of its options."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.bills = str(options["bills"])

    @staticmethod
    def check(options: Mapping[str, Any]) -> list[str]:
        bills = options.get("bills")
        if not isinstance(bills, str) or not os.path.exists(bills):
            return [f"bills file {bills} does not exist"]
        return []

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        return BillStatus.NOT_FOUND


class Refusing:
    """A factory that raises on its options (a missing required option)."""

    def __init__(self, options: Mapping[str, Any]) -> None:
        raise KeyError("dsn")

    async def resolve(self, inquiry: Inquiry) -> Bill | BillStatus:
        raise AssertionError("never built")


_HERE = "tests.resolvers.test_loader"


def _resolver(use: str, **options: Any) -> ResolverSettings:
    return ResolverSettings(name=use, use=use, options=options)


def test_every_resolver_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    problems = check_resolvers(
        [
            _resolver("mybilling.nowhere:Factory"),
            _resolver("no-such-plugin"),
            _resolver(f"{_HERE}:CheckedResolver", bills=str(tmp_path / "missing.csv")),
        ]
    )
    keys = [key for key, _ in problems]
    assert keys == ["resolvers[0].use", "resolvers[1].use", "resolvers[2].options"]
    assert "cannot import mybilling.nowhere" in problems[0][1]
    assert "no resolver plugin named 'no-such-plugin'" in problems[1][1]
    assert "missing.csv does not exist" in problems[2][1]


def test_check_hook_passes_and_build_calls_the_factory(tmp_path: Path) -> None:
    bills = tmp_path / "bills.csv"
    bills.write_text("")
    assert check_resolvers([_resolver(f"{_HERE}:CheckedResolver", bills=str(bills))]) == []
    # The factory itself runs only when asked to build (check-config), as serve will.
    refusing = [_resolver(f"{_HERE}:Refusing")]
    assert check_resolvers(refusing) == []
    [(key, message)] = check_resolvers(refusing, build=True)
    assert key == "resolvers[0].use"
    assert "refused its options" in message
