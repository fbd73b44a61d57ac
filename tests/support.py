"""Test helpers: real uvicorn servers and real redis-servers on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.config import Settings, settings_from_mapping
from gateway.snap.keys import private_key_pem, public_key_pem

__all__ = [
    "Keys",
    "RedisServer",
    "free_port",
    "make_settings",
    "poll",
    "running_server",
    "start_redis",
    "write_config",
]


def poll(check: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Wait until ``check()`` is true, failing after ``timeout`` seconds (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Keys:
    doku: rsa.RSAPrivateKey
    merchant: rsa.RSAPrivateKey
    client_id: str = "BRN-0001-1700000000001"
    client_secret: str = "SK-TestSecret-0123456789abcdef"


def make_settings(keys: Keys, env: Mapping[str, str] | None = None, **sections: Any) -> Settings:
    """Settings with inline keys and the demo resolver; ``sections`` are TOML-shaped tables."""
    data: dict[str, Any] = {
        "doku": {
            "client_id": keys.client_id,
            "client_secret": keys.client_secret,
            "public_key": public_key_pem(keys.doku.public_key()).decode(),
        },
        "merchant": {"private_key": private_key_pem(keys.merchant).decode()},
        "resolvers": [
            {"name": "demo", "use": "gateway.resolvers.demo:DemoResolver", "default": True}
        ],
        # Each app gets its own journal directory: parallel-safe, nothing left in the repo.
        "payment": {"journal_dir": tempfile.mkdtemp(prefix="doku-gateway-journal-")},
    }
    if "payment" in sections:
        sections = {**sections, "payment": {**data["payment"], **sections["payment"]}}
    data.update(sections)
    return settings_from_mapping(data, env or {})


_DEMO_RESOLVER = """
[[resolvers]]
name = "demo"
use = "gateway.resolvers.demo:DemoResolver"
"""


def write_config(
    directory: Path,
    keys: Keys,
    sections: str = "",
    *,
    client_secret: str | None = None,
    resolvers: str = _DEMO_RESOLVER,
) -> Path:
    """A TOML config with the keys as files in ``directory``, plus ``sections`` (TOML text)."""
    (directory / "doku.pem").write_bytes(public_key_pem(keys.doku.public_key()))
    (directory / "merchant.pem").write_bytes(private_key_pem(keys.merchant))
    config = directory / "gateway.toml"
    config.write_text(f"""
[doku]
client_id = "{keys.client_id}"
client_secret = "{client_secret or keys.client_secret}"
public_key = "file:{directory / "doku.pem"}"

[merchant]
private_key = "file:{directory / "merchant.pem"}"
{sections}
{resolvers}""")
    return config


@contextlib.contextmanager
def running_server(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False, **config)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        poll(lambda: server.started or not thread.is_alive())
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes]
    directory: Path
    #: Extra redis-server arguments, kept across restarts (e.g. ``--appendonly yes``).
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.process = _spawn_redis(self.port, self.directory, *self.extra)
        poll(self.ping)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (what a crashed node looks like)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers (a stalled node or a long GC)."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)


def _spawn_redis(port: int, directory: Path, *extra: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    return subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_redis(*extra: str) -> RedisServer:
    """A fresh redis-server on a free loopback port, in its own temp dir."""
    directory = Path(tempfile.mkdtemp(prefix="doku-gateway-redis-"))
    port = free_port()
    server = RedisServer(port, _spawn_redis(port, directory, *extra), directory, tuple(extra))
    try:
        poll(server.ping)
    except TimeoutError:
        server.stop()
        raise
    return server


def redis_available() -> bool:
    return shutil.which("redis-server") is not None or os.path.exists("/usr/bin/redis-server")
