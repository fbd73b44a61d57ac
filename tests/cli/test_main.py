"""The command line, run as a real process where it serves."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.cli import main
from gateway.snap.keys import load_private_key

from ..support import free_port, poll


def run_cli(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        check=False,
    )


def test_sign_reproduces_the_vector(vectors: dict[str, Any]) -> None:
    v = vectors["symmetric_signature"]
    body = json.dumps(v["request_body_object"], indent=2).encode()
    result = run_cli(
        "sign",
        "--secret",
        v["client_secret"],
        "--token",
        v["access_token"],
        "--path",
        v["endpoint"],
        "--timestamp",
        v["x_timestamp"],
        stdin=body,
    )
    out = result.stdout.decode()
    assert result.returncode == 0
    assert f"[minified-utf8] sha256: {v['sha256_hex_lower_of_minified']}" in out
    assert f"[minified-utf8] string-to-sign: {v['string_to_sign']}" in out
    assert f"[minified-utf8] X-SIGNATURE: {v['x_signature']}" in out
    assert "[raw] sha256: " in out  # a pretty body is also shown hashed as received


def test_sign_asymmetric_reproduces_the_vector(tmp_path: Path, vectors: dict[str, Any]) -> None:
    key = tmp_path / "key.pem"
    key.write_text(vectors["keys"]["private_key_pem_pkcs8"])
    v = vectors["asymmetric_signature"]
    result = run_cli(
        "sign",
        "--asymmetric",
        "--private-key",
        str(key),
        "--client-id",
        v["client_id"],
        "--timestamp",
        v["x_timestamp"],
    )
    assert f"X-SIGNATURE:    {v['x_signature']}" in result.stdout.decode()


def test_keygen_writes_private_key_0600(tmp_path: Path) -> None:
    assert main(["keygen", "--out", str(tmp_path), "--name", "m"]) == 0
    private = tmp_path / "m_private.pem"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    load_private_key(private.read_bytes())
    assert main(["keygen", "--out", str(tmp_path), "--name", "m"]) == 1  # no silent overwrite


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[http]\nport = "x"\n')
    result = run_cli("serve", "--config", str(config))
    assert result.returncode == 2
    assert b"doku.client_id" in result.stderr or b"http.port" in result.stderr
    result = run_cli("check-config", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    assert b"cannot read" in result.stderr


def test_serve_demo_then_simulate(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--demo", "--port", str(port)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/livez").status_code == 200
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                return False

        poll(up, timeout=30)
        demo = tmp_path / ".demo"
        for name in (
            "doku_private.pem",
            "doku_public.pem",
            "merchant_private.pem",
            "merchant_public.pem",
            "credentials.json",
        ):
            assert stat.S_IMODE((demo / name).stat().st_mode) == 0o600, name
        credentials = json.loads((demo / "credentials.json").read_text())
        assert credentials["paths"]["inquiry"] == "/v1.1/transfer-va/inquiry"
        result = run_cli(
            "simulate",
            "--url",
            f"http://127.0.0.1:{port}",
            "8889900001234",
            "8889911900001",
            cwd=tmp_path,
        )
        out = result.stdout.decode()
        # The not-found answer is not the expected success: the exit code says so.
        assert result.returncode == 1, result.stderr
        assert '"responseCode": "2002400"' in out
        assert '"responseCode": "4042412"' in out
        found = run_cli(
            "simulate", "--url", f"http://127.0.0.1:{port}", "8889900001234", cwd=tmp_path
        )
        assert found.returncode == 0, found.stderr
        # pay takes the amount and trxId the inquiry answered.
        paid = run_cli(
            "simulate", "--url", f"http://127.0.0.1:{port}", "pay", "8889900001234", cwd=tmp_path
        )
        assert paid.returncode == 0, paid.stderr
        assert '"responseCode": "2002500"' in paid.stdout.decode()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ok"
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells the truth.
    assert process.returncode in (0, -signal.SIGTERM)
    assert b"Finished server process" in err
    assert credentials["client_secret"].encode() not in err


def test_demo_files_are_reused(tmp_path: Path) -> None:
    from gateway.resolvers.demo import ensure_demo_files

    first = ensure_demo_files(tmp_path / "d")
    key = (tmp_path / "d" / "merchant_private.pem").read_bytes()
    second = ensure_demo_files(tmp_path / "d")
    assert (first.client_id, first.client_secret) == (second.client_id, second.client_secret)
    assert (tmp_path / "d" / "merchant_private.pem").read_bytes() == key


@pytest.mark.parametrize("args", [["serve"], ["nope"]])
def test_usage_errors(args: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2


def test_demo_files_made_by_processes_started_at_once_agree(tmp_path: Path) -> None:
    """Gateways started together on one demo directory (the benchmark starts three) end up
    with one set of credentials and keys, and none reads a half-written file."""
    script = (
        "import json, sys; from gateway.resolvers.demo import ensure_demo_files; "
        "f = ensure_demo_files(sys.argv[1]); "
        "print(json.dumps([f.client_id, f.client_secret, f.doku_public.read_text()]))"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "d")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0] * 6, results
    assert len({out for out, _ in results}) == 1


def test_unreadable_demo_credentials_are_named_in_one_line(tmp_path: Path) -> None:
    from gateway.resolvers.demo import ensure_demo_files

    ensure_demo_files(tmp_path / "d")
    (tmp_path / "d" / "credentials.json").write_text("")
    result = run_cli("serve", "--demo", "--demo-dir", str(tmp_path / "d"))
    assert result.returncode != 0
    err = result.stderr.decode()
    assert "credentials.json" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
