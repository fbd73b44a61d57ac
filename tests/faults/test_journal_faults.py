"""The file journal under faults, against real gateway processes (``python -m gateway serve``).

A disk that fills up (a 64 KiB tmpfs, mounted where the tests run as root), a line torn by a
crash, SIGKILL and SIGTERM with notifications in flight, a hook that fails and recovers. DOKU is
played as DOKU behaves: a notification that was not acknowledged is sent again (a new
X-EXTERNAL-ID), an acknowledged one may be too. Hook calls are counted in a file: every
acknowledged payment must reach the hook, and exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from gateway.doku.simulator import DokuSimulator, payment_body

from ..support import Keys, poll, write_config
from ._process import GatewayProcess

pytestmark = pytest.mark.anyio

PARTNER = "   88899"
ACK = "2002500"

Make = Callable[..., GatewayProcess]  # (journal directory, resolver, **its options)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, a disk that fills up in a few dozen payments; root only."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(disk)]
    mounted = subprocess.run(mount, capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def gateways(tmp_path: Path, keys: Keys) -> Iterator[Make]:
    """Starts gateway processes journaling to a directory; stops them all at the end."""
    started: list[GatewayProcess] = []

    def start(
        journal: Path, resolver: str = "sample_resolvers:PaymentCountingResolver", **options: str
    ) -> GatewayProcess:
        options = {"log": str(tmp_path / "calls.log"), "payments": str(hooked(tmp_path)), **options}
        table = ", ".join(f"{key} = {json.dumps(value)}" for key, value in options.items())
        resolvers = f"""
[[resolvers]]
name = "merchant"
use = "tests.{resolver}"
default = true
options = {{ {table} }}
"""
        sections = f"""
[http]
shutdown_delay = 0.2

[payment]
journal = "file"
journal_dir = "{journal}"
backoff_initial = 0.05
backoff_max = 0.2
max_attempts = 1000
"""
        config = write_config(tmp_path, keys, sections, resolvers=resolvers)
        process = GatewayProcess(config, tmp_path / "gateway.log")
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        if process.process is not None and process.process.poll() is None:
            process.stop()


def hooked(directory: Path) -> Path:
    return directory / "hooked.log"


def hook_calls(directory: Path) -> Counter[str]:
    """paymentRequestId → how many times a hook call returned for it."""
    path = hooked(directory)
    if not path.exists():
        return Counter()
    return Counter(line.split()[1] for line in path.read_text().splitlines())


def journal_records(journal: Path) -> list[dict[str, object]]:
    """Every line of payments.jsonl; each must be a whole JSON record, the last one ended."""
    data = (journal / "payments.jsonl").read_bytes()
    assert not data or data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.splitlines()]


class Doku:
    """DOKU's side: signed notifications for payment ``n`` (each its own VA), retried."""

    def __init__(self, keys: Keys, url: str) -> None:
        self.simulator = DokuSimulator(keys.client_id, keys.client_secret, keys.doku)
        self.http = httpx.AsyncClient(base_url=url, timeout=30)
        self.token = ""

    async def __aenter__(self) -> Doku:
        self.token = await self.simulator.get_token(self.http)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def notify(self, prid: str, code: str | None = None) -> str:
        """One attempt: the responseCode, or ``dropped`` when the connection died."""
        code = code or f"88899{abs(hash(prid)) % 10**8:08d}"
        document = payment_body(code, PARTNER, "12345.00", payment_request_id=prid)
        request = self.simulator.payment_request(self.token, document)
        try:
            response = await self.simulator.send(self.http, request)
        except httpx.TransportError:
            return "dropped"
        return str(response.json()["responseCode"])

    async def until_acknowledged(self, prid: str, code: str | None = None) -> None:
        for _ in range(100):
            if await self.notify(prid, code) == ACK:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"{prid} never acknowledged")


async def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    await asyncio.to_thread(poll, check, timeout)


async def test_a_full_disk_is_refused_whole_and_recovers(
    small_disk: Path, gateways: Make, keys: Keys, tmp_path: Path
) -> None:
    gateway = gateways(small_disk)
    stat = os.statvfs(small_disk)
    free = stat.f_bavail * stat.f_frsize
    try:
        (small_disk / "filler").write_bytes(b"\0" * (free - 8192))  # two pages left
    except OSError:
        pytest.skip("could not leave exactly two pages free on the small disk")
    prids = [f"PAY-FULL-{n:02d}" for n in range(30)]
    async with Doku(keys, gateway.url) as doku:
        answers = {prid: await doku.notify(prid) for prid in prids}
        acknowledged = {p for p, code in answers.items() if code == ACK}
        refused = {p for p, code in answers.items() if code == "5002501"}
        assert acknowledged and refused, answers  # the disk did fill up
        assert "No space left on device" in gateway.log.read_text()
        assert acknowledged | refused == set(prids), answers
        # Nothing torn, nothing refused left behind: the journal holds what was acknowledged.
        entries = {r["prid"] for r in journal_records(small_disk) if "prid" in r}
        assert entries == acknowledged
        (small_disk / "filler").unlink()  # space freed; DOKU retries what was refused
        for prid in sorted(refused):
            await doku.until_acknowledged(prid)
    await wait_for(lambda: set(hook_calls(tmp_path)) == set(prids))
    await asyncio.sleep(0.5)  # room for a wrongful second call
    assert set(hook_calls(tmp_path).values()) == {1}
    gateway.stop()
    gateway.start()
    async with Doku(keys, gateway.url) as doku:
        assert await doku.notify(prids[0]) == ACK  # a late retry: a duplicate
        await asyncio.sleep(1.0)
    assert set(hook_calls(tmp_path).values()) == {1}
    assert len(journal_records(small_disk)) > 0


async def test_a_line_torn_by_a_crash_does_not_swallow_the_next_payment(
    gateways: Make, keys: Keys, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    gateway = gateways(journal)
    async with Doku(keys, gateway.url) as doku:
        assert await doku.notify("PAY-1") == ACK
    await wait_for(lambda: "PAY-1" in hook_calls(tmp_path))
    gateway.stop()
    # The gateway crashed while writing PAY-TORN: half a line, never acknowledged.
    path = journal / "payments.jsonl"
    line = json.dumps({"prid": "PAY-TORN", "code": "8889900000001", "partner": "88899"})
    with path.open("ab") as handle:
        handle.write(line.encode() + b"\n")
    os.truncate(path, path.stat().st_size - len(line) // 2)
    gateway.start()
    async with Doku(keys, gateway.url) as doku:
        assert await doku.notify("PAY-2") == ACK
        await doku.until_acknowledged("PAY-TORN")  # DOKU retries what it never got an ack for
    await wait_for(lambda: {"PAY-2", "PAY-TORN"} <= set(hook_calls(tmp_path)))
    gateway.stop()
    assert [r.get("prid") for r in journal_records(journal) if "prid" in r] == [
        "PAY-1",
        "PAY-2",
        "PAY-TORN",
    ]
    gateway.start()
    async with Doku(keys, gateway.url) as doku:
        assert await doku.notify("PAY-2") == ACK  # read back whole: a duplicate, not new
        await asyncio.sleep(1.0)
    assert hook_calls(tmp_path) == {"PAY-1": 1, "PAY-2": 1, "PAY-TORN": 1}
    assert "cut off before the next append" in gateway.log.read_text()


async def under_load(
    doku: Doku, prids: list[str], interrupt: Callable[[], Awaitable[None]], after: int
) -> set[str]:
    """Sends every notification at once and interrupts the gateway once ``after`` of them
    were acknowledged; returns the acknowledged ones."""
    acknowledged: set[str] = set()
    enough = asyncio.Event()

    async def send(prid: str) -> None:
        if await doku.notify(prid) == ACK:
            acknowledged.add(prid)
            if len(acknowledged) >= after:
                enough.set()

    async def watch() -> None:
        await enough.wait()
        await interrupt()

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(send(prid) for prid in prids))
    await asyncio.wait_for(watcher, 30)
    return acknowledged


async def test_sigkill_between_receipt_and_ack_loses_and_repeats_nothing(
    gateways: Make, keys: Keys, tmp_path: Path
) -> None:
    hold = tmp_path / "hold"
    hold.touch()  # hooks wait: the kill lands between journal and hook, not inside a hook
    gateway = gateways(tmp_path / "journal", "faults._resolvers:HeldResolver", hold=str(hold))
    prids = [f"PAY-KILL-{n:03d}" for n in range(200)]

    async def kill() -> None:
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGKILL)

    async with Doku(keys, gateway.url) as doku:
        acknowledged = await under_load(doku, prids, kill, after=20)
    assert gateway.stop() == -signal.SIGKILL
    assert 20 <= len(acknowledged) < len(prids)
    hold.unlink()
    gateway.start()
    async with Doku(keys, gateway.url) as doku:
        for prid in prids:  # DOKU retries, acknowledged or not
            await doku.until_acknowledged(prid)
    await wait_for(lambda: set(hook_calls(tmp_path)) == set(prids))
    await asyncio.sleep(0.5)
    assert set(hook_calls(tmp_path).values()) == {1}


async def test_sigterm_under_load_loses_nothing_acknowledged(
    gateways: Make, keys: Keys, tmp_path: Path
) -> None:
    gateway = gateways(tmp_path / "journal")
    sent: list[str] = []
    acknowledged: set[str] = set()
    enough = asyncio.Event()

    async def keep_paying(doku: Doku, worker: int) -> None:
        """New payments one after another until the gateway stops taking them."""
        for n in range(10_000):
            prid = f"PAY-TERM-{worker:02d}-{n:04d}"
            sent.append(prid)
            answer = await doku.notify(prid)
            if answer == "dropped":
                return
            if answer == ACK:
                acknowledged.add(prid)
            if len(acknowledged) >= 100:
                enough.set()

    async with Doku(keys, gateway.url) as doku:
        load = asyncio.gather(*(keep_paying(doku, worker) for worker in range(32)))
        await asyncio.wait_for(enough.wait(), 60)
        assert gateway.process is not None
        gateway.process.send_signal(signal.SIGTERM)  # drains for a while, then stops
        await asyncio.wait_for(load, 60)
    # uvicorn re-raises the signal once it has shut down gracefully.
    assert await asyncio.to_thread(gateway.stop) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in gateway.log.read_text()
    gateway.start()
    async with Doku(keys, gateway.url) as doku:
        for prid in sent:  # DOKU retries what was not acknowledged (and may what was)
            await doku.until_acknowledged(prid)
    await wait_for(lambda: set(hook_calls(tmp_path)) == set(sent))
    await asyncio.sleep(0.5)
    assert acknowledged < set(sent)  # the load went on until the gateway stopped taking it
    assert set(hook_calls(tmp_path).values()) == {1}


async def test_a_failing_hook_is_retried_in_order_until_it_recovers(
    gateways: Make, keys: Keys, tmp_path: Path
) -> None:
    fail, failures = tmp_path / "fail", tmp_path / "failures.log"
    fail.touch()
    gateway = gateways(
        tmp_path / "journal",
        "faults._resolvers:FlakyResolver",
        fail=str(fail),
        failures=str(failures),
    )
    same_va = ["PAY-VA-1", "PAY-VA-2", "PAY-VA-3"]
    async with Doku(keys, gateway.url) as doku:
        for prid in same_va:
            assert await doku.notify(prid, "8889900000042") == ACK
        assert await doku.notify("PAY-OTHER", "8889900000043") == ACK
    await wait_for(lambda: failures.exists() and len(failures.read_text().splitlines()) >= 5)
    assert hook_calls(tmp_path) == {}
    fail.unlink()  # the merchant's database is back
    await wait_for(lambda: len(hook_calls(tmp_path)) == 4)
    order = [line.split()[1] for line in hooked(tmp_path).read_text().splitlines()]
    assert [prid for prid in order if prid in same_va] == same_va  # in order per VA
    gateway.stop()
    gateway.start()
    await asyncio.sleep(1.0)
    assert set(hook_calls(tmp_path).values()) == {1}  # nothing delivered again
