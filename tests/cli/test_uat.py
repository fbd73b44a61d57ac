"""``doku-gateway uat`` as a person and a CI job run it: a real process against real gateway
processes (``serve --demo``, and ``serve --config`` with a client secret DOKU does not use)."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.snap.keys import private_key_pem

from ..support import Keys, free_port, poll, write_config
from .test_main import run_cli

GATEWAY_SECRET = "SK-the-gateway-has-this-one"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@contextlib.contextmanager
def gateway_process(cwd: Path, *args: str) -> Iterator[str]:
    """``doku-gateway serve ARGS`` on a free port; its URL once /livez answers."""
    port = free_port()
    # The log goes to a file: a pipe nobody reads would fill up and stall the gateway.
    log = cwd / f"gateway-{port}.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", *args, "--port", str(port)],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/livez").status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, log.read_text()
            return False

    try:
        poll(up, timeout=30)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A demo gateway process; its demo directory and URL."""
    cwd = tmp_path_factory.mktemp("demo")
    with gateway_process(cwd, "--demo") as url:
        yield cwd / ".demo", url


@pytest.fixture(scope="module")
def configured(
    tmp_path_factory: pytest.TempPathFactory, keys: Keys
) -> Iterator[tuple[Path, Path, str]]:
    """A gateway started from a config whose client secret is not the one in ``right.toml``
    (what DOKU's dashboard says); the right config, DOKU's private key, and the URL."""
    directory = tmp_path_factory.mktemp("configured")
    (directory / "gateway").mkdir()
    (directory / "uat").mkdir()
    journal = f'[payment]\njournal_dir = "{directory / "journal"}"\n'
    wrong = write_config(directory / "gateway", keys, journal, client_secret=GATEWAY_SECRET)
    right = write_config(directory / "uat", keys)
    doku_key = directory / "doku_private.pem"
    doku_key.write_bytes(private_key_pem(keys.doku))
    with gateway_process(directory, "--config", str(wrong)) as url:
        yield right, doku_key, url


def sample_flags() -> list[str]:
    # A fresh payable VA per run: the payment scenario makes the demo resolver call it paid.
    return [
        "--va-payable",
        f"8889900{secrets.randbelow(10**6):06d}",
        "--va-open",
        "8889911600001",
        "--va-paid",
        "8889911700001",
        "--va-expired",
        "8889911800001",
        "--va-unknown",
        "8889911900001",
        "--partner-service-id",
        "88899",
    ]


def test_demo_mode_passes_every_scenario_and_prints_no_secret(demo: tuple[Path, str]) -> None:
    directory, url = demo
    result = run_cli("uat", "--demo-dir", str(directory), "--url", url)
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert out.rstrip().endswith("17 passed, 0 failed, 0 skipped")
    assert len(re.findall(r"^PASS  ", out, re.M)) == 17
    secret = json.loads((directory / "credentials.json").read_text())["client_secret"]
    assert secret not in out
    assert JWT.search(out) is None
    assert "> POST /v1.1/transfer-va/inquiry" in out  # what was sent…
    assert "< HTTP 404 in " in out  # …and received


def test_json_report_for_ci(demo: tuple[Path, str]) -> None:
    directory, url = demo
    result = run_cli("uat", "--demo-dir", str(directory), "--url", url, "--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["passed"] is True
    assert report["counts"] == {"pass": 17, "fail": 0, "skip": 0}
    assert report["url"] == url
    payable = next(s for s in report["scenarios"] if s["id"] == "inquiry-payable")
    [exchange] = payable["exchanges"]
    assert exchange["status"] == 200
    assert exchange["response_body"]["responseCode"] == "2002400"
    assert exchange["request_headers"]["X-SIGNATURE"].endswith("(88 chars)")


def test_a_wrong_path_prefix_fails_and_names_it(demo: tuple[Path, str]) -> None:
    directory, url = demo
    result = run_cli("uat", "--demo-dir", str(directory), "--url", url + "/doku")
    out = result.stdout.decode()
    assert result.returncode == 1
    assert re.search(r"^FAIL  token ", out, re.M)
    assert (
        "likely cause: HTTP 404 without a SNAP answer on /doku/v1.0/access-token/b2b: nothing "
        "serves this path; a wrong path prefix in the URL" in out
    )
    assert "likely causes:\n  - HTTP 404" in out


def test_a_gateway_with_another_client_secret_fails_and_names_it(
    configured: tuple[Path, Path, str],
) -> None:
    right, doku_key, url = configured
    result = run_cli(
        "uat",
        "--config",
        str(right),
        "--url",
        url,
        "--doku-private-key",
        str(doku_key),
        *sample_flags(),
        "--json",
    )
    assert result.returncode == 1
    report = json.loads(result.stdout)
    statuses = {s["id"]: s["status"] for s in report["scenarios"]}
    assert statuses["token"] == "pass"
    assert statuses["inquiry-payable"] == "fail"
    assert len(report["causes"]) == 1
    assert "the client secret differs from the gateway's doku.client_secret" in report["causes"][0]


def test_the_config_with_the_gateways_secret_given_as_a_flag_passes(
    configured: tuple[Path, Path, str],
) -> None:
    right, doku_key, url = configured
    result = run_cli(
        "uat",
        "--config",
        str(right),
        "--url",
        url,
        "--doku-private-key",
        str(doku_key),
        "--client-secret",
        "env:UAT_SECRET",
        *sample_flags(),
        env={"UAT_SECRET": GATEWAY_SECRET},
    )
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert out.rstrip().endswith("17 passed, 0 failed, 0 skipped")
    assert GATEWAY_SECRET not in out


def test_explicit_flags_without_a_config_pass(
    configured: tuple[Path, Path, str], keys: Keys
) -> None:
    _, doku_key, url = configured
    result = run_cli(
        "uat",
        "--url",
        url,
        "--client-id",
        keys.client_id,
        "--doku-private-key",
        str(doku_key),
        *sample_flags(),
        "--json",
        env={"DOKU_GATEWAY_DOKU_CLIENT_SECRET": GATEWAY_SECRET},
    )
    assert result.returncode == 0, result.stdout.decode()
    report = json.loads(result.stdout)
    assert report["counts"] == {"pass": 17, "fail": 0, "skip": 0}
    # No merchant key given: the expired token is a backdated copy of the issued one.
    expired = next(s for s in report["scenarios"] if s["id"] == "expired-token")
    assert any("backdated" in note for note in expired["notes"])


def test_nothing_answering_is_one_line_naming_the_url(demo: tuple[Path, str]) -> None:
    directory, _ = demo
    url = f"http://127.0.0.1:{free_port()}"
    result = run_cli("uat", "--demo-dir", str(directory), "--url", url)
    assert result.returncode == 1
    assert result.stdout == b""
    [line] = result.stderr.decode().splitlines()
    assert line.startswith(f"doku-gateway: nothing answers at {url} (")


def test_missing_inputs_are_usage_errors(configured: tuple[Path, Path, str]) -> None:
    right, doku_key, url = configured
    bare = run_cli("uat", "--url", url)
    assert bare.returncode == 2
    assert b"give --demo-dir DIR, --config FILE, or --client-id" in bare.stderr
    no_vas = run_cli("uat", "--config", str(right), "--doku-private-key", str(doku_key))
    assert no_vas.returncode == 2
    assert b"give --va-payable VA" in no_vas.stderr
    no_key = run_cli("uat", "--config", str(right), "--doku-private-key", "/nonexistent.pem")
    assert no_key.returncode == 2
    assert b"cannot read /nonexistent.pem" in no_key.stderr
