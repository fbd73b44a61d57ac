"""Finds resolver factories by entry point name or by ``package.module:factory``."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, cast

from ..exceptions import ConfigError
from .contract import Resolver, ResolverFactory

if TYPE_CHECKING:
    from ..config import ResolverSettings

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_resolvers",
    "build_resolver",
    "check_resolvers",
    "load_factory",
]

ENTRY_POINT_GROUP = "doku_gateway.resolvers"


def available_resolvers() -> dict[str, str]:
    """Entry point name → ``module:attr`` for every installed resolver plugin."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def load_factory(spec: str, key: str = "resolvers.use") -> ResolverFactory:
    """Import the factory named by ``spec``; ``ConfigError`` naming ``key`` when it fails."""
    if ":" in spec:
        module_name, _, attribute = spec.partition(":")
        try:
            target: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(key, f"cannot import {module_name}: {exc}") from None
        for part in attribute.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigError(key, f"{module_name} has no attribute {attribute}") from None
    else:
        matches = entry_points(group=ENTRY_POINT_GROUP, name=spec)
        if not matches:
            known = ", ".join(sorted(available_resolvers())) or "none installed"
            raise ConfigError(key, f"no resolver plugin named {spec!r} ({known})")
        try:
            target = next(iter(matches)).load()
        except Exception as exc:
            raise ConfigError(key, f"plugin {spec!r} failed to load: {exc}") from None
    if not callable(target):
        raise ConfigError(key, f"{spec} is not callable")
    return cast(ResolverFactory, target)


def build_resolver(spec: str, options: Mapping[str, Any], key: str = "resolvers.use") -> Resolver:
    """Load and call the factory; check that what it made has ``resolve``."""
    factory = load_factory(spec, key)
    try:
        resolver = factory(options)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(key, f"{spec} refused its options: {exc}") from None
    if not isinstance(resolver, Resolver):
        raise ConfigError(key, f"{spec} returned an object without an async resolve() method")
    return resolver


def check_resolvers(
    resolvers: Sequence[ResolverSettings], *, build: bool = False
) -> list[tuple[str, str]]:
    """Every problem ``serve`` would meet loading ``resolvers``, as ``(key, message)`` pairs.

    Imports each factory and calls its optional ``check(options)`` hook: it may raise (its
    message becomes the problem) or return messages, one per problem, about ``options``.
    With ``build`` the factory is also called (``check-config``), as ``serve`` will.
    """
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(resolvers):
        key = f"resolvers[{index}]"
        try:
            factory = load_factory(item.use, f"{key}.use")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        check = getattr(factory, "check", None)
        if callable(check):
            try:
                found = check(item.options)
                if inspect.isawaitable(found):
                    raise ConfigError(f"{key}.use", "check(options) must not be async")
                problems.extend((f"{key}.options", str(m)) for m in found or ())
            except ConfigError as exc:
                problems.extend(exc.problems)
            except Exception as exc:
                problems.append((f"{key}.options", f"{item.use} refused its options: {exc}"))
                continue
        if build and not problems:
            try:
                build_resolver(item.use, item.options, f"{key}.use")
            except ConfigError as exc:
                problems.extend(exc.problems)
    return problems
