"""The journal filesystem's fsync rate: the floor under a durable ack without group commit."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any

RECORD = b"x" * 399 + b"\n"  # about one journal line


def filesystem(path: Path) -> dict[str, str]:
    """The mount holding ``path`` (device, type, mount point), from /proc/self/mounts."""
    best: dict[str, str] = {}
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return best
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        device, mount_point, kind = fields[0], fields[1], fields[2]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best.get("mount_point", "")):
            best = {"device": device, "type": kind, "mount_point": mount_point}
    return best


def probe(directory: Path, seconds: float) -> dict[str, Any]:
    """Append a 400-byte record and fsync it, again and again for ``seconds``, in one file
    opened with O_APPEND in ``directory`` (one writer, nothing batched): fsyncs per second."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "fsync-probe.log"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC, 0o600)
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        deadline = started + seconds
        now = started
        while now < deadline:
            os.write(fd, RECORD)
            os.fsync(fd)
            after = time.perf_counter()
            latencies.append(after - now)
            now = after
        elapsed = now - started
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    latencies.sort()
    return {
        "fsyncs_per_s": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "fsyncs": len(latencies),
        "seconds": elapsed,
        "p50_ms": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0,
    }
