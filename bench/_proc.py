"""Child processes, polling, ports, server logs and a minimal Redis client for the harness."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

HOST = "127.0.0.1"
READY_TIMEOUT = 30.0


class BenchError(Exception):
    """A problem that ends the run (the message says what and where)."""


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it should this harness die without cleaning up."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class Children:
    """Every process the harness started, so that all of them are ended on exit."""

    def __init__(self) -> None:
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []

    def spawn(
        self, name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path
    ) -> subprocess.Popen[bytes]:
        handle = log.open("wb")
        self._logs.append(handle)
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the harness only; it ends them in order
            # preexec_fn is unsafe only with threads; this harness has none.
            preexec_fn=die_with_parent,
        )
        self._procs.append((name, proc))
        return proc

    def stop_all(self) -> None:
        """Servers first, then what they use (Redis), so none logs a lost backend on the way."""
        servers = [proc for name, proc in self._procs if not name.startswith("redis")]
        backends = [proc for name, proc in self._procs if name.startswith("redis")]
        for group in (servers, backends):
            for proc in group:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.terminate()
            deadline = time.monotonic() + 5.0
            for proc in group:
                try:
                    proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    proc.wait(timeout=5.0)
        self._procs.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()


def raise_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def poll(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Wait until ``check()`` is true; ``BenchError`` after ``timeout`` (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not ready within {timeout:.0f}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def log_problems(path: Path) -> dict[str, Any]:
    """Warnings, errors and tracebacks a server logged (costly on a hot path, and a sign)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    counts: dict[str, int] = {}
    tracebacks = 0
    for line in text.splitlines():
        if line.startswith("Traceback"):
            tracebacks += 1
        for level in ("WARNING", "ERROR", "CRITICAL"):
            # The gateway's format (" LEVEL ") or uvicorn's ("LEVEL:" first on the line).
            marker = f" {level} "
            if marker in line or line.startswith(f"{level}:"):
                rest = line.split(marker, 1)[1] if marker in line else line[len(level) + 1 :]
                message = level + " " + rest.strip()[:100]
                counts[message] = counts.get(message, 0) + 1
                break
    top = sorted(counts.items(), key=lambda item: -item[1])[:3]
    return {"lines": sum(counts.values()), "tracebacks": tracebacks, "top": dict(top)}


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text.splitlines()[-lines:])


# --------------------------------------------------------------------------------------------
# Redis: raw RESP over a socket (PING, SET and pipelined SETs are all the harness needs)
# --------------------------------------------------------------------------------------------


def resp_command(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def redis_call(port: int, *parts: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=1.0) as sock:
        sock.sendall(resp_command(*parts))
        return sock.recv(256)


def redis_ping(port: int) -> bool:
    try:
        return redis_call(port, b"PING").startswith(b"+PONG")
    except OSError:
        return False


def redis_set_many(port: int, items: Iterable[tuple[bytes, bytes]], ttl: int, batch: int) -> int:
    """``SET key value EX ttl`` for every item, pipelined ``batch`` at a time; how many."""
    expected_reply = b"+OK\r\n"
    ttl_arg = str(ttl).encode()
    total = 0
    with socket.create_connection((HOST, port), timeout=10.0) as sock:
        pending: list[bytes] = []

        def flush() -> None:
            sock.sendall(b"".join(pending))
            want = len(expected_reply) * len(pending)
            received = bytearray()
            while len(received) < want:
                chunk = sock.recv(max(want - len(received), 4096))
                if not chunk:
                    raise BenchError("redis closed the connection during a pipelined SET")
                received += chunk
            if bytes(received) != expected_reply * len(pending):
                raise BenchError(f"redis refused a pipelined SET: {bytes(received[:200])!r}")
            pending.clear()

        for key, value in items:
            pending.append(resp_command(b"SET", key, value, b"EX", ttl_arg))
            total += 1
            if len(pending) >= batch:
                flush()
        if pending:
            flush()
    return total


def start_redis(
    children: Children,
    name: str,
    redis_server: str,
    directory: Path,
    log: Path,
    env: Mapping[str, str],
    durable: bool,
) -> int:
    """A private redis-server on a free loopback port; ``durable``: AOF fsync'd on every write
    (``appendfsync always``), as a payment journal on Redis must run to be durable."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    persistence = (
        ("--appendonly", "yes", "--appendfsync", "always") if durable else ("--appendonly", "no")
    )
    children.spawn(
        name,
        [
            redis_server,
            *("--port", str(port), "--bind", HOST, "--save", ""),
            *persistence,
            *("--dir", str(directory)),
        ],
        env,
        log,
        directory,
    )
    poll(lambda: redis_ping(port), READY_TIMEOUT, name)
    return port
