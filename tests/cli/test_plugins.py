"""``doku-gateway plugins`` and ``doku-gateway new-resolver``, run as a person would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main


def test_plugins_lists_every_reference_resolver(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines()}
    for name in ("demo", "static", "http", "sql", "topup"):
        assert name in lines, out
        assert lines[name].rstrip().endswith("ok")
    assert "doku-gateway-sql" in lines["sql"]


def test_new_resolver_writes_a_package_whose_tests_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "acme"
    assert main(["new-resolver", "acme", "--dir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert str(dest / "pyproject.toml") in out
    assert 'use = "acme"' in out
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(dest / "tests")],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(dest / "src"), "PATH": "/usr/bin:/bin"},
        cwd=dest,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def test_new_resolver_refuses_an_existing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    assert main(["new-resolver", "acme", "--dir", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("doku-gateway: cannot write")
    assert len(err.strip().splitlines()) == 1
