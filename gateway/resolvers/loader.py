"""Finds resolver factories by entry point name or by ``package.module:factory``."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, cast

from ..exceptions import ConfigError
from .contract import Resolver, ResolverFactory

__all__ = ["ENTRY_POINT_GROUP", "available_resolvers", "build_resolver", "load_factory"]

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
