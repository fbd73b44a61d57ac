"""The ``static`` resolver: answers from a JSON file, optionally re-read when it changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway import BillStatus, Inquiry, Outcome, ResolverContext

from ._bills import parse_bills

__all__ = ["StaticBills"]

_OPTIONS = ("path", "reload")

#: What tells one version of the file from the next: inode (an atomic rename), size, mtime.
_Stamp = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    stamp: _Stamp
    bills: Mapping[str, Outcome]


class StaticBills:
    """Bills from a JSON file of payment code → bill (``options``: ``path``, ``reload``).

    The file is read and checked when the resolver is built; any problem is a ``ValueError``
    naming the payment code and field, which the gateway reports as a config error. With
    ``reload = true`` the file is checked for a new version at most once per ``interval``
    seconds; a new version that does not parse is logged and the previous bills stay in use.
    After ``startup`` a background task does the checking and tells the gateway's cache which
    payment codes changed, so a bill marked ``"paid"`` stops being served from the cache.
    """

    def __init__(
        self,
        options: Mapping[str, Any],
        *,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} (known: {', '.join(_OPTIONS)})")
        path = options.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError("option 'path' is required: the JSON file of bills")
        reload = options.get("reload", False)
        if not isinstance(reload, bool):
            raise ValueError("option 'reload' must be true or false")
        self.path = Path(path).expanduser()
        self.reload = reload
        self.interval = interval
        self._clock = clock
        self._snapshot = _load(self.path)
        self._checked_at = clock()
        # The version that last failed to parse is not parsed again, and each problem is
        # warned about once, not every second.
        self._rejected: _Stamp | None = None
        self._warned: tuple[_Stamp | None, str] | None = None
        self._invalidate: Callable[[str], Awaitable[None]] | None = None
        self._logger = logging.getLogger("doku_gateway.resolver.static")
        self._watcher: asyncio.Task[None] | None = None

    @property
    def bills(self) -> Mapping[str, Outcome]:
        """The bills in use now."""
        return self._snapshot.bills

    async def startup(self, context: ResolverContext) -> None:
        self._invalidate = context.invalidate
        self._logger = context.logger
        if self.reload and self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def shutdown(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def health(self) -> bool:
        """True while the file can be opened for reading."""
        return await asyncio.to_thread(_readable, self.path)

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        # Without startup() there is no watcher (and no cache to tell), so check here instead.
        if self.reload and self._watcher is None:
            now = self._clock()
            if now - self._checked_at >= self.interval:
                self._checked_at = now
                await self.refresh()
        return self._snapshot.bills.get(inquiry.payment_code, BillStatus.NOT_FOUND)

    async def refresh(self) -> bool:
        """Re-read the file if it changed; True when a new version was taken into use."""
        try:
            stamp = await asyncio.to_thread(_stamp_of, self.path)
        except OSError as exc:
            self._reject(None, f"{self.path}: cannot read: {exc.strerror}")
            return False
        if stamp == self._snapshot.stamp or stamp == self._rejected:
            return False
        try:
            snapshot = await asyncio.to_thread(_load, self.path)
        except ValueError as exc:
            self._reject(stamp, str(exc))
            return False
        previous = self._snapshot.bills
        self._snapshot = snapshot
        self._rejected = None
        self._warned = None
        changed = sorted(
            code
            for code in previous.keys() | snapshot.bills.keys()
            if previous.get(code) != snapshot.bills.get(code)
        )
        self._logger.info(
            "reloaded %s: %d bills, %d changed", self.path, len(snapshot.bills), len(changed)
        )
        if self._invalidate is not None:
            await self._forget(self._invalidate, changed)
        return True

    async def _forget(self, invalidate: Callable[[str], Awaitable[None]], codes: list[str]) -> None:
        failed = 0
        for code in codes:
            try:
                await invalidate(code)
            except Exception:
                failed += 1
        if failed:
            # The cached answers still expire with their TTL; nothing better can be done here.
            self._logger.warning("could not invalidate %d changed payment codes", failed)

    def _reject(self, stamp: _Stamp | None, reason: str) -> None:
        if stamp is not None:
            self._rejected = stamp
        if self._warned != (stamp, reason):
            self._warned = (stamp, reason)
            self._logger.warning("%s; keeping the bills loaded before", reason)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._checked_at = self._clock()
            try:
                await self.refresh()
            except Exception:
                self._logger.exception("checking %s for changes failed", self.path)


def _stamp_of(path: Path) -> _Stamp:
    info = path.stat()
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def _load(path: Path) -> _Snapshot:
    try:
        with path.open("rb") as handle:
            # Stamp before reading: a write racing the read leaves a newer mtime behind, so the
            # next check reads the file again.
            info = os.fstat(handle.fileno())
            raw = handle.read()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        bills = parse_bills(raw)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    return _Snapshot((info.st_ino, info.st_size, info.st_mtime_ns), bills)


def _readable(path: Path) -> bool:
    try:
        with path.open("rb"):
            return True
    except OSError:
        return False
