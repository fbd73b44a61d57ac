"""Shared request state: the X-EXTERNAL-ID replay guard and the answer cache.

One interface (:class:`~gateway.state.base.StateBackend`), one module per backend, chosen by
:func:`create_state` from ``cache.url``. Internal: not part of the public API.
"""

from __future__ import annotations

from ..config import CacheSettings, is_memory_url
from ..metrics import Metrics
from .base import StateBackend

__all__ = ["create_state"]


def create_state(cache: CacheSettings, metrics: Metrics) -> StateBackend:
    """The state backend named by ``cache.url`` (Redis imported lazily: embedded needs none)."""
    if is_memory_url(cache.url):
        from .memory import MemoryState

        return MemoryState(cache.max_entries, cache.replay_max_entries)
    from .redis import RedisState

    return RedisState.from_settings(cache, metrics)
