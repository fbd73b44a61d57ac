"""The payment journal on Redis Streams, for many gateway pods.

Durability is Redis's: run it with ``appendonly yes`` and ``appendfsync always`` (or accept up to
a second of acknowledged payments at risk with ``everysec``), and set ``payment.wait_replicas`` to
have each entry reach replicas (``WAIT``) before DOKU is acknowledged.

Keys, all under one hash tag so they share a Redis Cluster slot::

    {prefix}v1:{pay}:s:<n>          stream of shard n (a VA always maps to the same shard)
    {prefix}v1:{pay}:id:<prid>      first entry of a paymentRequestId (idempotency, 90 days)
    {prefix}v1:{pay}:done:<prid>    delivered marker (90 days)
    {prefix}v1:{pay}:paid:<code>    a payment of this VA is journaled (latest prid, 90 days)
    {prefix}v1:{pay}:lock:<prid>    who is calling the hook right now
    {prefix}v1:{pay}:lease:<n>      which pod works shard n
    {prefix}v1:{pay}:dead           dead letters

Each shard is worked by the pod holding its lease, through the consumer group ``deliverer``: what
a pod read but did not acknowledge (it crashed) is read again, first, by the next lease holder.
Handled entries beyond the newest ``payment.journal_keep_delivered`` of a shard are trimmed from
its stream now and then (their ids stay in the ``id:`` keys); an entry not yet acknowledged, and
anything after it, is never trimmed.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from ..._redis.batch import Batcher
from ..._redis.connect import connect
from ..._redis.keys import FORMAT_VERSION
from ..._redis.scripts import script, script_sha
from ...config import CacheSettings, PaymentSettings
from ...log import get_logger
from .base import LEASE, DeadLetter, Journal, JournalEntry, Lease

__all__ = ["RedisJournal"]

_log = get_logger("journal")

_KEEP_MS = 90 * 86_400 * 1000
_GROUP = "deliverer"
_CONSUMER = "deliverer"
# Entries a shard handles between two trims of its stream (three commands each time).
_TRIM_EVERY = 256
# A batch of appends (and their WAIT, up to 1 s) must fit in this.
_APPEND_TIMEOUT = 5.0


class RedisJournal(Journal):
    def __init__(
        self,
        client: Any,
        settings: PaymentSettings,
        prefix: str,
        others: tuple[Any, ...] = (),
        *,
        cluster: bool = False,
    ) -> None:
        self._redis = client
        # Appends of concurrent notifications share one pipeline on a connection of their own
        # (with WAIT, one WAIT after them covers them all: it counts this connection's writes).
        # Cluster pipelines split by slot; there, each append is its own call.
        self._batch = None if cluster else Batcher(client, _APPEND_TIMEOUT)
        self._append_sha = script_sha("append")
        self._others = others
        self.shards = settings.shards
        self._settings = settings
        self._base = f"{prefix}{FORMAT_VERSION}:{{pay}}:"
        self._base_bytes = self._base.encode()
        self._append = client.register_script(script("append"))
        self._lease = client.register_script(script("lease"))
        # The per-payment lock's scripts, run by _script (in the batch when there is one).
        self._scripts = {
            name: client.register_script(script(name))
            for name in ("unlock", "claim_delivery", "record_delivery")
        }
        self._owner = secrets.token_hex(8)
        # Lock tokens: unique (this process's owner id and a counter), not secret.
        self._token_count = itertools.count()
        self._groups: set[int] = set()
        self._locks: dict[str, str] = {}
        self._keep = max(settings.journal_keep_delivered, 0)
        self._handled: dict[int, int] = {}  # per shard, since its last trim
        # Per shard, the ids of the newest `keep` entries handled here, oldest first.
        self._recent: dict[int, deque[str]] = {}

    @classmethod
    def from_settings(cls, cache: CacheSettings, payment: PaymentSettings) -> RedisJournal:
        # Its own connections, with a longer command timeout: blocking stream reads (1 s) and
        # WAIT must neither take the inquiry path's connections nor trip its 250 ms timeout.
        timeout = max(cache.redis_command_timeout, 5.0)
        client, cluster, others = connect(replace(cache, redis_command_timeout=timeout))
        return cls(client, payment, cache.prefix, others, cluster=cluster)

    def _stream(self, shard: int) -> str:
        return f"{self._base}s:{shard}"

    def _key(self, kind: str, name: str) -> bytes:
        """The key of a paymentRequestId or VA: any string DOKU sends, so a lone surrogate (no
        UTF-8 for it) is written as "surrogatepass" bytes, which no valid string has."""
        return self._base_bytes + kind.encode() + _bytes(name)

    def shard_of(self, payment_code: str) -> int:
        return zlib.crc32(_bytes(payment_code)) % self.shards

    async def append(self, entry: JournalEntry) -> tuple[JournalEntry, bool]:
        data = entry.encode()
        shard = self.shard_of(entry.payment_code)
        keys = [
            self._key("id:", entry.payment_request_id),
            self._stream(shard),
            self._key("paid:", entry.payment_code),
        ]
        args = [data, _KEEP_MS, _bytes(entry.payment_request_id)]
        replicas = self._settings.wait_replicas
        acknowledged = replicas
        if self._batch is not None:
            new, value, waited = await self._append_batched(keys, args, replicas)
            if waited is not None:
                acknowledged = waited
        else:
            new, value = await self._append(keys=keys, args=args)
            if replicas:
                acknowledged = await self._redis.wait(replicas, 1000)
        # Also for a duplicate: a retry after a failed WAIT must not be acknowledged before the
        # entry reached the replicas either.
        if replicas and acknowledged < replicas:
            raise OSError(f"payment reached {acknowledged} replica(s), {replicas} required")
        if new:
            return entry.with_id(_text(value)), True
        entry_id, _, stored = _text(value).partition("\n")
        return JournalEntry.decode(stored, entry_id), False

    async def _append_batched(
        self, keys: list[Any], args: list[Any], replicas: int
    ) -> tuple[Any, Any, int | None]:
        """The append and, with ``wait_replicas``, its WAIT queued together: they travel in one
        pipeline on one connection, so the WAIT counts this append's write (WAIT counts its own
        connection's writes: sent after a reconnect, on its own, it would count nothing)."""
        assert self._batch is not None
        for attempt in (1, 2):
            command = ("EVALSHA", self._append_sha, len(keys), *keys, *args)
            appended = self._batch.submit(*command)
            waited = self._batch.submit("WAIT", replicas, 1000) if replicas else None
            try:
                new, value = await appended
            except NoScriptError:
                if waited is not None:
                    await asyncio.gather(waited, return_exceptions=True)
                if attempt == 2:
                    raise
                await self._redis.script_load(script("append"))  # Redis restarted: once
                continue
            return new, value, None if waited is None else int(await waited)
        raise AssertionError("unreachable")

    async def _ensure_group(self, shard: int) -> None:
        if shard in self._groups:
            return
        try:
            await self._redis.xgroup_create(self._stream(shard), _GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(shard)

    async def keepalive(self, shard: int) -> bool:
        ttl_ms = int(self._settings.lease_ttl * 1000)
        return bool(
            await self._lease(keys=[f"{self._base}lease:{shard}"], args=[self._owner, ttl_ms])
        )

    async def read(self, shard: int, timeout: float, limit: int = LEASE) -> Lease | None:
        if not await self.keepalive(shard):
            return None
        await self._ensure_group(shard)
        stream = self._stream(shard)
        # First what this consumer read before but never acknowledged (a crash, a lost lease).
        pending = await self._redis.xreadgroup(_GROUP, _CONSUMER, {stream: "0"}, count=limit)
        entries = await self._readable(stream, pending)
        if not entries:
            fresh = await self._redis.xreadgroup(
                _GROUP, _CONSUMER, {stream: ">"}, count=limit, block=max(int(timeout * 1000), 1)
            )
            entries = await self._readable(stream, fresh)
        return Lease(shard, entries)

    async def _readable(
        self, stream: str, response: Any, *, ack: bool = True
    ) -> list[JournalEntry]:
        """The entries of a read; one that is gone or cannot be read is acknowledged, so it
        cannot block the shard: it stays in the stream for an operator (logged, counted)."""
        entries, skipped = [], []
        for _stream, rows in response or ():
            for row_id, fields in rows:
                entry = self._decode(stream, row_id, fields)
                if entry is None:
                    skipped.append(row_id)
                else:
                    entries.append(entry)
        if skipped and ack:
            await self._redis.xack(stream, _GROUP, *skipped)
        return entries

    def _decode(self, stream: str, row_id: Any, fields: Any) -> JournalEntry | None:
        if not fields:  # deleted after it was read: nothing to deliver
            return None
        try:
            return JournalEntry.decode(fields[b"e"], _text(row_id))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self.unreadable += 1
            _log.error(
                "payment journal %s: unreadable entry %s (%s); not delivered, left in the stream",
                stream,
                _text(row_id),
                type(exc).__name__,
            )
            return None

    async def done(self, shard: int, entry: JournalEntry) -> None:
        await self.done_all(shard, (entry,))

    async def done_all(self, shard: int, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return
        stream = self._stream(shard)
        ids = [entry.entry_id for entry in entries]
        await self._command("XACK", stream, _GROUP, *ids)
        recent = self._recent.get(shard)
        if recent is None:
            recent = self._recent[shard] = deque(maxlen=self._keep)
        recent.extend(ids)
        handled = self._handled.get(shard, 0) + len(ids)
        if handled >= _TRIM_EVERY:
            handled = 0
            try:
                await self._trim(stream, recent)
            except Exception as exc:  # retention never gets in a delivery's way
                _log.warning("payment journal %s not trimmed: %s", stream, exc)
        self._handled[shard] = handled

    async def _trim(self, stream: str, recent: deque[str]) -> None:
        """Drop the handled entries of ``stream`` older than the newest ``keep`` of them."""
        summary = await self._redis.xpending(stream, _GROUP)
        if self._keep and len(recent) == self._keep:
            # The newest `keep` entries this process handled are known by id: the oldest of
            # them is where to cut, unless an older entry is still being delivered (entries
            # are read in order, so everything before the oldest pending one is handled).
            # No entry bodies are read: reading `keep` of them to find the cut cost more than
            # the deliveries themselves.
            first_kept = recent[0]
            if summary["pending"] and _id_key(_text(summary["min"])) < _id_key(first_kept):
                first_kept = _text(summary["min"])
            await self._redis.xtrim(stream, minid=first_kept, approximate=False)
            return
        if summary["pending"]:  # everything before the oldest unacknowledged entry is handled
            newest = "(" + _text(summary["min"])
        else:  # everything read is handled
            groups = await self._redis.xinfo_groups(stream)
            group = next(g for g in groups if _text(g["name"]) == _GROUP)
            newest = _text(group["last-delivered-id"])
        history = await self._redis.xrevrange(stream, max=newest, count=self._keep + 1)
        if len(history) <= self._keep:
            return
        if self._keep:
            first_kept = _text(history[self._keep - 1][0])
        else:
            milliseconds, _, sequence = _text(history[0][0]).partition("-")
            first_kept = f"{milliseconds}-{int(sequence) + 1}"
        await self._redis.xtrim(stream, minid=first_kept, approximate=False)

    async def _command(self, *command: Any) -> Any:
        """One command, pipelined with the concurrent deliveries' and appends' when possible
        (the deliverer runs a lease's VAs concurrently: one round trip per step, not per VA)."""
        if self._batch is not None:
            return await self._batch.submit(*command)
        return await self._redis.execute_command(*command)

    async def is_delivered(self, payment_request_id: str) -> bool:
        return bool(await self._command("EXISTS", self._key("done:", payment_request_id)))

    async def has_payment(self, payment_code: str) -> bool:
        return bool(await self._redis.exists(self._key("paid:", payment_code)))

    async def mark_delivered(self, payment_request_id: str) -> None:
        await self._command("SET", self._key("done:", payment_request_id), b"1", "PX", _KEEP_MS)

    async def lock(self, payment_request_id: str, ttl: float) -> bool:
        token = self._token()
        key = self._key("lock:", payment_request_id)
        taken = await self._command("SET", key, token, "PX", max(int(ttl * 1000), 1), "NX")
        if taken:  # b"OK" (or True through the client), None when someone holds it
            self._locks[payment_request_id] = token
        return bool(taken)

    async def claim_delivery(self, payment_request_id: str, ttl: float) -> bool | None:
        token = self._token()
        keys = [self._key("done:", payment_request_id), self._key("lock:", payment_request_id)]
        args = [token, max(int(ttl * 1000), 1)]
        taken = await self._script("claim_delivery", keys, args)
        if taken == 1:
            self._locks[payment_request_id] = token
            return True
        return None if taken == -1 else False

    async def record_delivery(self, payment_request_id: str) -> None:
        token = self._locks.get(payment_request_id)
        if token is None:  # not ours (a lock given up): only the record
            await self.mark_delivered(payment_request_id)
            return
        keys = [self._key("done:", payment_request_id), self._key("lock:", payment_request_id)]
        await self._script("record_delivery", keys, [token, _KEEP_MS])
        self._locks.pop(payment_request_id, None)

    def _token(self) -> str:
        return f"{self._owner}-{next(self._token_count)}"

    async def _script(self, name: str, keys: list[Any], args: list[Any]) -> Any:
        """One of the lock's scripts, pipelined with the deliveries' other steps when possible;
        loaded again if Redis forgot it (a restart)."""
        registered = self._scripts[name]
        if self._batch is not None:
            return await self._batch.script(registered.sha, script(name), keys, args)
        return await registered(keys=keys, args=args)

    async def unlock(self, payment_request_id: str) -> None:
        token = self._locks.pop(payment_request_id, None)
        if token is None:
            return
        await self._script("unlock", [self._key("lock:", payment_request_id)], [token])

    async def dead_letter(self, entry: JournalEntry, error: str, attempts: int) -> None:
        await self._redis.xadd(
            f"{self._base}dead",
            {
                "e": entry.encode(),
                "shard": str(self.shard_of(entry.payment_code)),
                "error": error.encode("utf-8", "backslashreplace"),
                "attempts": str(attempts),
                "at": str(time.time()),
            },
        )

    async def dead_letters(self) -> list[DeadLetter]:
        rows = await self._redis.xrange(f"{self._base}dead")
        letters = []
        for row_id, fields in rows:
            try:
                letters.append(_dead(row_id, fields))
            except (ValueError, KeyError, TypeError, RecursionError):
                _log.error("payment journal: unreadable dead letter %s", _text(row_id))
        return letters

    async def replay(self, dead_id: str) -> bool:
        key = f"{self._base}dead"
        try:
            rows = await self._redis.xrange(key, dead_id, dead_id)
        except ResponseError:  # not a stream id at all (a typo on the command line)
            return False
        if not rows:
            return False
        letter = _dead(*rows[0])
        shard = self.shard_of(letter.entry.payment_code)
        await self._redis.xadd(self._stream(shard), {"e": letter.entry.encode()})
        await self._redis.xdel(key, dead_id)
        return True

    async def backlog(self) -> tuple[int, float | None]:
        count, oldest = 0, None
        for shard in range(self.shards):
            waiting, first = await self._shard_backlog(self._stream(shard))
            count += waiting
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        return count, oldest

    async def _shard_backlog(self, stream: str) -> tuple[int, float | None]:
        try:
            groups = await self._redis.xinfo_groups(stream)
        except ResponseError:  # no such stream: nothing was ever journaled on this shard
            return 0, None
        group = next((g for g in groups if _text(g["name"]) == _GROUP), None)
        if group is None:  # never read: everything waits
            first = await self._redis.xrange(stream, "-", "+", count=1)
            return int(await self._redis.xlen(stream)), _received_at(first)
        after = "(" + _text(group["last-delivered-id"])
        lag = group.get("lag")
        if lag is None:  # Redis could not tell (entries deleted): count what follows
            lag = 0
            start = after
            while rows := await self._redis.xrange(stream, start, "+", count=1000):
                lag += len(rows)
                start = "(" + _text(rows[-1][0])
        pending = int(group["pending"])
        if pending:
            summary = await self._redis.xpending(stream, _GROUP)
            first_id = _text(summary["min"])
            first = await self._redis.xrange(stream, first_id, first_id)
        elif lag:
            first = await self._redis.xrange(stream, after, "+", count=1)
        else:
            first = []
        return pending + int(lag), _received_at(first)

    async def entries(
        self, *, since: float | None = None, va: str | None = None, limit: int = 100
    ) -> list[JournalEntry]:
        code = None if va is None else va.replace(" ", "")
        shards = range(self.shards) if code is None else (self.shard_of(code),)
        # Stream ids carry Redis's clock, received_at the gateway's: start a minute early.
        start = "-" if since is None else str(max(int((since - 60) * 1000), 0))
        found: list[JournalEntry] = []
        for shard in shards:
            found.extend(await self._scan(self._stream(shard), start, since, code, limit))
        found.sort(key=lambda e: e.received_at)
        return found[: max(limit, 0)]

    async def _scan(
        self, stream: str, start: str, since: float | None, code: str | None, limit: int
    ) -> list[JournalEntry]:
        found: list[JournalEntry] = []
        while len(found) < limit:
            rows = await self._redis.xrange(stream, start, "+", count=500)
            for entry in await self._readable(stream, [(stream, rows)], ack=False):
                if since is not None and entry.received_at < since:
                    continue
                if code is None or entry.payment_code == code:
                    found.append(entry)
            if len(rows) < 500:
                break
            start = "(" + _text(rows[-1][0])
        return found

    async def find(self, payment_request_id: str) -> JournalEntry | None:
        value = await self._redis.get(self._key("id:", payment_request_id))
        if value is None:
            return None
        entry_id, _, stored = _text(value).partition("\n")
        return JournalEntry.decode(stored, entry_id)

    async def close(self) -> None:
        if self._batch is not None:
            await self._batch.drain()
        await self._redis.aclose()
        for other in self._others:
            await other.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id as numbers, for comparing ids (as text, "9-0" > "10-0")."""
    milliseconds, _, sequence = entry_id.partition("-")
    return int(milliseconds), int(sequence or 0)


def _bytes(name: str) -> bytes:
    return name.encode("utf-8", "surrogatepass")


def _received_at(rows: Any) -> float | None:
    for row_id, fields in rows or ():
        try:
            return JournalEntry.decode(fields[b"e"]).received_at
        except (ValueError, KeyError, TypeError, RecursionError):
            return int(_text(row_id).partition("-")[0]) / 1000  # when Redis added it
    return None


def _dead(row_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    entry = JournalEntry.decode(fields[b"e"])
    return DeadLetter(
        _text(row_id),
        entry,
        fields[b"error"].decode("utf-8", "replace"),
        int(fields[b"attempts"]),
        float(fields[b"at"]),
    )
