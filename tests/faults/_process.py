"""A gateway as a real process (``python -m gateway serve``), for tests that kill or stop it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from ..support import free_port, poll

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GatewayProcess:
    """One gateway process on a free loopback port; its stderr goes to ``log``."""

    config: Path
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    *("-m", "gateway", "serve"),
                    *("--config", str(self.config), "--port", str(self.port)),
                ],
                env=env,
                cwd=self.config.parent,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        poll(self._live, timeout=timeout)

    def _live(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-2000:]
        try:
            return httpx.get(self.url + "/livez", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def metric(self, name: str) -> float | None:
        """A sample's value from ``/metrics`` (the first line starting with ``name``)."""
        text = httpx.get(self.url + "/metrics", timeout=5.0).text
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None
