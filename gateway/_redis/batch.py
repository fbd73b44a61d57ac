"""Commands issued in the same event-loop turn travel to Redis in one pipeline.

Under load many inquiries reach their Redis step in the same turn of the loop. Sending each
command on its own costs a pool checkout, a write and a read per command in Python; one
pipelined round trip for all of them costs that once, and while a batch is on the wire the next
one gathers behind it. Callers still await their own result.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

# redis-py's parser on hiredis: its replies can be taken from the reader directly (_hiredis).
_HIREDIS_PARSER: type[Any] | None
try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _AsyncHiredisParser

    _HIREDIS_PARSER = _AsyncHiredisParser
except ImportError:  # pragma: no cover (another redis-py layout: its read_response is used)
    _HIREDIS_PARSER = None
    _NOT_ENOUGH_DATA = object()

__all__ = ["Batcher"]


class Batcher:
    """Queues commands; one sender task writes everything queued as one pipeline on its own
    connection and reads the replies, while the next batch gathers behind it."""

    def __init__(self, client: Any, timeout: float, max_batch: int = 512) -> None:
        self._client = client
        self._timeout = timeout
        self._max_batch = max_batch
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._wakeup: asyncio.Event | None = None
        self._sender: asyncio.Task[None] | None = None
        #: Round trips sent (one per pipeline, retries included), for tests and metrics.
        self.round_trips = 0
        # The batch on the wire, and scripts being reloaded: with _pending, what flush() waits
        # for (kept so, rather than per command, to cost the hot path nothing).
        self._in_flight: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._reloads: set[asyncio.Task[Any]] = set()
        self._loading: dict[str, asyncio.Future[Any]] = {}  # SCRIPT LOADs on the way, by SHA
        # Its own connection, without a per-read timeout: one timer bounds the whole batch's
        # round trip instead of one timer per reply.
        pool = client.connection_pool
        self._connection: Any = pool.connection_class(
            **{**pool.connection_kwargs, "socket_timeout": None}
        )
        encoder = self._connection.encoder
        self._encoding: str = encoder.encoding
        self._errors: str = encoder.encoding_errors

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((command, future))
        if self._sender is None or self._sender.done():
            self._wakeup = asyncio.Event()
            self._sender = asyncio.get_running_loop().create_task(self._run())
        assert self._wakeup is not None
        self._wakeup.set()
        return future

    def fire(self, *command: Any, on_error: Callable[[BaseException], None] | None = None) -> None:
        """Queue a command whose result nobody awaits; its error goes to ``on_error``."""
        self.submit(*command).add_done_callback(functools.partial(_retrieve, on_error))

    def fire_script(
        self,
        sha: str,
        source: str,
        keys: list[Any],
        args: list[Any],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        """EVALSHA without awaiting it; a Redis that forgot the script (a restart) gets it
        loaded and the call sent once more."""
        command = ("EVALSHA", sha, len(keys), *keys, *args)

        def done(future: asyncio.Future[Any]) -> None:
            if future.cancelled():
                return
            error = future.exception()
            if isinstance(error, NoScriptError):
                task = asyncio.get_running_loop().create_task(self._reload(source, command))
                task.add_done_callback(functools.partial(_retrieve, on_error))
                # flush() waits for the second attempt too.
                self._reloads.add(task)
                task.add_done_callback(self._reloads.discard)
            elif error is not None and on_error is not None:
                on_error(error)

        self.submit(*command).add_done_callback(done)

    async def _reload(self, source: str, command: tuple[Any, ...]) -> Any:
        await self._load(command[1], source)
        return await self.submit(*command)

    async def _load(self, sha: str, source: str) -> None:
        """SCRIPT LOAD in the batch, once for every caller that found the script missing: after
        a Redis restart a whole batch of fired scripts fails at once, and a load each on a pool
        connection of its own opened as many connections."""
        loading = self._loading.get(sha)
        if loading is None:
            loading = self.submit("SCRIPT", "LOAD", source)
            self._loading[sha] = loading
            loading.add_done_callback(lambda _: self._loading.pop(sha, None))
        await asyncio.shield(loading)

    async def script(self, sha: str, source: str, keys: list[Any], args: list[Any]) -> Any:
        """EVALSHA in the batch; loads the script once if Redis does not know it (a restart)."""
        try:
            return await self.submit("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._load(sha, source)
            return await self.submit("EVALSHA", sha, len(keys), *keys, *args)

    async def _run(self) -> None:
        assert self._wakeup is not None
        wakeup = self._wakeup
        while True:
            if not self._pending:
                wakeup.clear()
                await wakeup.wait()
            # Let every request that is ready this turn queue its command first.
            await asyncio.sleep(0)
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight = batch
            try:
                await self._send(batch)
            finally:
                self._in_flight = []

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        connection = self._connection
        for attempt in (1, 2):
            read = 0
            self.round_trips += 1
            try:
                async with asyncio.timeout(self._timeout):
                    if not connection.is_connected:
                        # connect(), not the implicit connect of a send: a Sentinel-managed
                        # connection asks the sentinels for the master only there.
                        await connection.connect()
                    commands = [command for command, _ in batch]
                    packed = _pack(commands, self._encoding, self._errors)
                    await connection.send_packed_command(
                        connection.pack_commands(commands) if packed is None else packed
                    )
                    replies = _hiredis(connection)
                    for _, future in batch:
                        if replies is None:
                            try:
                                result = await connection.read_response()
                            except ResponseError as exc:
                                result = exc
                        else:
                            gets, feed, stream, push, parser = replies
                            while True:
                                result = gets()
                                while result is _NOT_ENOUGH_DATA:
                                    data = await stream.read(_READ_SIZE)
                                    if not data:
                                        raise RedisConnectionError("Connection closed by server.")
                                    feed(data)
                                    result = gets()
                                if push is None or not isinstance(result, push):
                                    break
                                # RESP3 out of band (a maintenance notice, an invalidation):
                                # redis-py's handler takes it; the reply is the next one.
                                await parser.handle_push_response(result)
                            # As redis-py's parser: a connection-level error (LOADING, ...)
                            # fails the connection, a command's error is that command's reply.
                            if isinstance(result, RedisConnectionError):
                                raise result
                            if type(result) is list and result:
                                first = result[0]
                                if isinstance(first, RedisConnectionError):
                                    raise first
                        read += 1
                        if future.done():
                            continue
                        if isinstance(result, Exception):
                            future.set_exception(result)
                        else:
                            future.set_result(result)
                return
            except BaseException as exc:
                # The stream may hold unread replies: start over on a fresh connection.
                await connection.disconnect()
                # A connection that died while idle (Redis restarted, a proxy cut it) fails
                # before any reply: send the batch once more on a fresh one. Not after a reply
                # was read (Redis ran the commands) and not on a timeout (Redis is slow).
                if attempt == 1 and read == 0 and _stale(exc):
                    continue
                error = exc if isinstance(exc, Exception) else ConnectionError("cancelled")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if not isinstance(exc, Exception):
                    raise
                return

    async def flush(self) -> None:
        """Wait until every command queued so far has its reply (fired ones included)."""
        while True:
            waiting = [f for _, f in (*self._in_flight, *self._pending)] + [*self._reloads]
            if not waiting:
                return
            await asyncio.gather(*waiting, return_exceptions=True)

    async def drain(self) -> None:
        """Send what is queued (script reloads included), then stop the sender and close its
        connection."""
        if self._sender is not None and not self._sender.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._timeout):
                    await self.flush()
        for reload in list(self._reloads):  # still running past the timeout: give up on them
            reload.cancel()
        await asyncio.gather(*self._reloads, return_exceptions=True)
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        await self._connection.disconnect()


def _pack(commands: list[tuple[Any, ...]], encoding: str, errors: str) -> bytes | None:
    """The batch in Redis's protocol, as redis-py's ``pack_commands`` writes it, for commands of
    bytes, str, int and float arguments (all the gateway sends); None for anything else, which
    redis-py then packs. Its general packer costs several times this per command, and a payment
    sends a dozen commands."""
    out: list[bytes] = []
    append = out.append
    utf8 = encoding == "utf-8" and errors == "strict"
    heads = _HEADS
    for command in commands:
        name = command[0]
        # "CONFIG GET": redis-py splits a name on whitespace (and encodes it as UTF-8).
        if type(name) is not str or not name.isascii() or len(name.split()) != 1:
            return None
        count = len(command)
        append(_COUNTS[count] if count < len(_COUNTS) else b"*%d\r\n" % count)
        for argument in command:
            kind = type(argument)
            if kind is bytes:
                data = argument
            elif kind is str:
                data = argument.encode() if utf8 else argument.encode(encoding, errors)
            elif kind is int:  # not bool: redis-py refuses it
                data = b"%d" % argument
            elif kind is float:  # as redis-py writes it
                data = repr(argument).encode()
            else:
                return None
            # The argument itself is not copied into a formatted string: its head, it, CRLF.
            size = len(data)
            append(heads[size] if size < len(heads) else b"$%d\r\n" % size)
            append(data)
            append(b"\r\n")
    return b"".join(out)


# Bulk-string and array heads, made once (formatting them per argument was a third of _pack).
_HEADS = tuple(b"$%d\r\n" % size for size in range(1024))
_COUNTS = tuple(b"*%d\r\n" % count for count in range(64))


_READ_SIZE = 65536


def _hiredis(connection: Any) -> tuple[Any, Any, Any, Any, Any] | None:
    """``(gets, feed, stream, push type, parser)`` of a connected connection whose parser is
    redis-py's hiredis one, else None (then ``read_response`` reads each reply).

    ``read_response`` costs a coroutine, a host string and protocol checks per reply; a
    payment's dozen replies arrive in one or two reads. Taking them from the same hiredis reader
    the parser would use, with the same error classes and the same handling of RESP3's push
    messages, costs a ``gets()`` each. The stream and the reader are the parser's own
    (``on_connect`` made them), so either way of reading leaves the connection in the same
    state.
    """
    parser = getattr(connection, "_parser", None)
    if _HIREDIS_PARSER is None or type(parser) is not _HIREDIS_PARSER:
        return None
    reader = getattr(parser, "_reader", None)
    stream = getattr(connection, "_reader", None)
    handle = getattr(parser, "handle_push_response", None)
    if reader is None or stream is None or handle is None:
        return None
    push = getattr(parser, "_hiredis_PushNotificationType", None)
    return reader.gets, reader.feed, stream, push, parser


def _stale(exc: BaseException) -> bool:
    return isinstance(exc, (RedisConnectionError, ConnectionError)) and not isinstance(
        exc, TimeoutError
    )


def _retrieve(
    on_error: Callable[[BaseException], None] | None, future: asyncio.Future[Any]
) -> None:
    if future.cancelled():
        return
    error = future.exception()
    if error is not None and on_error is not None:
        on_error(error)
