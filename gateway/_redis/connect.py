"""A Redis client for any ``cache.url`` scheme, chosen by one table.

``redis://`` / ``rediss://`` / ``unix://`` use a bounded :class:`BlockingConnectionPool`
(callers wait for a free connection instead of failing with "Too many connections");
``redis+sentinel://[:password@]host:port,host:port/<master set>/<db>`` asks the sentinels for the
master; ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS) talks to a cluster.

Every connection retries a command once on a *fresh* connection when the pooled one turns out to
be dead (Redis restarted, a failover, an idle connection cut by a proxy): that is not Redis
being down, and must not open the breaker. Timeouts are not retried: a slow Redis stays slow.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ..config import CACHE_SCHEMES, CacheSettings
from ..exceptions import ConfigError

__all__ = ["Connection", "connect"]

#: ``(client, is_cluster, other clients to close with it)``
Connection = tuple[Any, bool, tuple[Any, ...]]


def _options(settings: CacheSettings) -> dict[str, Any]:
    return {
        "socket_timeout": settings.redis_command_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [RedisConnectionError],
        "retry_on_timeout": False,
    }


def _pool(settings: CacheSettings) -> Connection:
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout,
        **_options(settings),
    )
    # from_pool: the client owns the pool and disconnects it on aclose().
    return aioredis.Redis.from_pool(pool), False, ()


def _cluster(settings: CacheSettings) -> Connection:
    plain = settings.url.replace("+cluster", "", 1)
    # The cluster client retries (and follows MOVED) on its own terms.
    cluster = RedisCluster.from_url(
        plain,
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_command_timeout,
        socket_connect_timeout=settings.redis_connect_timeout,
    )
    return cluster, True, ()


def _sentinel(settings: CacheSettings) -> Connection:
    parts = urlsplit(settings.url)
    hosts = []
    for item in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = item.rpartition(":")
        hosts.append((host or "127.0.0.1", int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ConfigError(
            "cache.url",
            "a sentinel URL names the master set: redis+sentinel://host:26379/mymaster/0",
        )
    db = int(path[1]) if len(path) > 1 else 0
    password = unquote(parts.password) if parts.password else None
    query = parse_qs(parts.query)
    options = _options(settings)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        hosts,
        sentinel_kwargs={
            "socket_timeout": options["socket_timeout"],
            "socket_connect_timeout": options["socket_connect_timeout"],
            "password": query.get("sentinel_password", [None])[0],
        },
        **options,
    )
    master = sentinel.master_for(
        path[0], db=db, password=password, max_connections=settings.redis_max_connections
    )
    # The sentinels' own connections must be closed with the master's.
    return master, False, tuple(sentinel.sentinels)


_CONNECTORS: dict[str, Callable[[CacheSettings], Connection]] = {
    "redis": _pool,
    "rediss": _pool,
    "unix": _pool,
    "redis+cluster": _cluster,
    "rediss+cluster": _cluster,
    "redis+sentinel": _sentinel,
}
# config.py validates cache.url against CACHE_SCHEMES without importing Redis; keep them one set.
assert set(_CONNECTORS) == set(CACHE_SCHEMES) - {"memory"}


def connect(settings: CacheSettings) -> Connection:
    """A client for ``cache.url``: ``(client, is_cluster, other clients to close with it)``."""
    scheme = settings.url.split("://", 1)[0]
    connector = _CONNECTORS.get(scheme)
    if connector is None:
        raise ConfigError("cache.url", f"unsupported scheme {scheme}")
    return connector(settings)
