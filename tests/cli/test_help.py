"""The command line's own texts: --version, help without markup, keygen, simulate failures."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from gateway import __version__
from gateway.cli import main

from ..support import free_port


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's --help and --version
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_version() -> None:
    code, out, _ = _run("--version")
    assert code == 0
    assert out.strip() == f"doku-gateway {__version__}"


@pytest.mark.parametrize("command", ["check-config", "simulate", "payments"])
def test_help_has_no_markup(command: str) -> None:
    code, out, _ = _run(command, "--help")
    assert code == 0
    assert "`" not in out
    assert ":class:" not in out


def test_keygen_messages_fit_the_key(tmp_path: Path) -> None:
    _, merchant, _ = _run("keygen", "--out", str(tmp_path))
    _, doku, _ = _run("keygen", "--out", str(tmp_path), "--name", "doku")
    assert "upload" in merchant and "merchant_public.pem" in merchant
    assert "upload" not in doku
    assert "doku.public_key" in doku and "--doku-private-key" in doku


def test_simulate_names_the_url_when_nothing_answers(tmp_path: Path) -> None:
    _run("keygen", "--out", str(tmp_path / ".demo"), "--name", "doku")
    (tmp_path / ".demo" / "credentials.json").write_text('{"client_id": "c", "client_secret": "s"}')
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = _run("simulate", "--demo-dir", str(tmp_path / ".demo"), "--url", url, "1")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"doku-gateway: nothing answers at {url}: ConnectError")


def test_simulate_with_config_needs_doku_key(tmp_path: Path) -> None:
    code, _, err = _run("simulate", "--config", str(tmp_path / "x.toml"), "1")
    assert code == 2
    assert "--doku-private-key" in err
