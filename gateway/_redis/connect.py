"""connect."""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.sentinel import Sentinel

from ..config import CacheSettings
from ..exceptions import ConfigError

T = TypeVar("T")


def connect(settings: CacheSettings) -> tuple[Any, bool, tuple[Any, ...]]:
    """A client for ``cache.url``: ``(client, is_cluster, other clients to close with it)``.

    ``redis://`` / ``rediss://`` / ``unix://`` use a bounded :class:`BlockingConnectionPool`
    (callers wait for a free connection instead of failing with "Too many connections");
    ``redis+sentinel://[:password@]host:port,host:port/<master set>/<db>`` asks the sentinels
    for the master; ``redis+cluster://host:port`` (``rediss+cluster://`` for TLS) talks to a
    cluster.
    """
    url = settings.url
    timeouts: dict[str, Any] = {
        "socket_timeout": settings.redis_command_timeout,
        "socket_connect_timeout": settings.redis_connect_timeout,
    }
    scheme = url.split("://", 1)[0]
    if scheme in ("redis", "rediss", "unix"):
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_pool_timeout,
            **timeouts,
        )
        # from_pool: the client owns the pool and disconnects it on aclose().
        return aioredis.Redis.from_pool(pool), False, ()
    if scheme in ("redis+cluster", "rediss+cluster"):
        plain = url.replace("+cluster", "", 1)
        cluster = RedisCluster.from_url(
            plain, max_connections=settings.redis_max_connections, **timeouts
        )
        return cluster, True, ()
    if scheme == "redis+sentinel":
        parts = urlsplit(url)
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
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts,
            sentinel_kwargs={**timeouts, "password": query.get("sentinel_password", [None])[0]},
            **timeouts,
        )
        master = sentinel.master_for(
            path[0], db=db, password=password, max_connections=settings.redis_max_connections
        )
        # The sentinels' own connections must be closed with the master's.
        return master, False, tuple(sentinel.sentinels)
    raise ConfigError("cache.url", f"unsupported scheme {scheme}")
