"""Commands issued in the same event-loop turn travel to Redis in one pipeline.

Under load many inquiries reach their Redis step in the same turn of the loop. Sending each
command on its own costs a pool checkout, a write and a read per command in Python; one
pipelined round trip for all of them costs that once. Callers still await their own result.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import NoScriptError

__all__ = ["Batcher"]


class Batcher:
    """Queues commands and flushes them as one non-transactional pipeline per loop turn."""

    def __init__(self, client: Any, max_batch: int = 256) -> None:
        self._client = client
        self._max_batch = max_batch
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._scripts: dict[str, str] = {}

    def submit(self, *command: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((command, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def fire(self, *command: Any) -> None:
        """Queue a command whose result nobody awaits (its error is still retrieved)."""
        self.submit(*command).add_done_callback(_retrieve)

    async def script(self, sha: str, source: str, keys: list[Any], args: list[Any]) -> Any:
        """EVALSHA in the batch; loads the script once if Redis does not know it (a restart)."""
        self._scripts[sha] = source
        try:
            return await self.submit("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            await self._client.script_load(source)
            return await self.submit("EVALSHA", sha, len(keys), *keys, *args)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        task = asyncio.create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for command, _ in batch:
            pipe.execute_command(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        exc if isinstance(exc, Exception) else ConnectionError("cancelled")
                    )
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def drain(self) -> None:
        """Wait for everything queued so far (shutdown)."""
        if self._pending:
            self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
