"""gateway.resolvers.plugins: listing installed resolver plugins, and writing a new one that
passes its own generated contract tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from gateway.resolvers.plugins import ResolverInfo, list_resolvers, write_resolver_package

ROOT = Path(__file__).resolve().parents[2]


def test_lists_the_installed_reference_plugins() -> None:
    found = {info.name: info for info in list_resolvers()}
    assert found["sql"] == ResolverInfo(
        "sql", "doku_gateway_sql:SqlResolver", "doku-gateway-sql", "0.1.0", True
    )
    for name, distribution in (
        ("static", "doku-gateway-static"),
        ("http", "doku-gateway-http"),
        ("topup", "doku-gateway-topup"),
        ("demo", "doku-gateway"),
    ):
        assert found[name].distribution == distribution
        assert found[name].loads and found[name].error is None
    assert list(found) == sorted(found)


def test_a_broken_plugin_is_listed_with_its_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An installed distribution, as pip leaves it: metadata and entry points on sys.path.
    info = tmp_path / "broken_plugin-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 2.0\n")
    (info / "entry_points.txt").write_text(
        "[doku_gateway.resolvers]\n"
        "zz-missing = no_such_module_for_doku:Factory\n"
        "zz-constant = os:sep\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {info.name: info for info in list_resolvers()}
    missing = found["zz-missing"]
    assert (missing.distribution, missing.version, missing.loads) == ("broken-plugin", "2.0", False)
    assert missing.error is not None and "no_such_module_for_doku" in missing.error
    assert missing.error.startswith("ModuleNotFoundError")
    constant = found["zz-constant"]
    assert not constant.loads and constant.error == "os:sep is not callable"
    # The others still load.
    assert found["sql"].loads


def test_new_package_passes_its_generated_tests(tmp_path: Path) -> None:
    dest = tmp_path / "doku-gateway-billing"
    written = write_resolver_package(dest, "billing")
    assert {path.relative_to(dest).as_posix() for path in written} == {
        "pyproject.toml",
        "README.md",
        "src/doku_gateway_billing/__init__.py",
        "src/doku_gateway_billing/_resolver.py",
        "src/doku_gateway_billing/py.typed",
        "tests/test_contract.py",
    }
    project = tomllib.loads((dest / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["name"] == "doku-gateway-billing"
    assert project["project"]["entry-points"]["doku_gateway.resolvers"] == {
        "billing": "doku_gateway_billing:BillingResolver"
    }
    resolver = (dest / "src/doku_gateway_billing/_resolver.py").read_text(encoding="utf-8")
    for hook in ("startup", "health", "shutdown", "resolve"):
        assert f"async def {hook}(" in resolver
    # Not installed: its src on the path stands in for the installed package.
    env = {**os.environ, "PYTHONPATH": str(dest / "src")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary
    # The contract ran: its checks of the outcomes and the lifecycle hooks passed.
    for check in (
        "test_samples_answer_valid_outcomes",
        "test_cancelled_inquiries_leave_it_working",
        "test_health_answers_within_a_second",
        "test_shutdown_is_idempotent",
    ):
        assert f"TestBillingResolverContract::{check} PASSED" in result.stdout, check


def test_new_package_is_lint_clean(tmp_path: Path) -> None:
    dest = tmp_path / "billing"
    write_resolver_package(dest, "my-billing")
    ruff = [sys.executable, "-m", "ruff"]
    for command in (["format", "--check", "."], ["check", "--select", "E,F,W,I,B,UP", "."]):
        result = subprocess.run(
            [*ruff, *command, "--isolated", "--line-length", "100"],
            cwd=dest,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ["Billing", "1billing", "bill ing", "billing-", "", "a--b"])
def test_bad_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="resolver name"):
        write_resolver_package(tmp_path / "x", name)
    assert not (tmp_path / "x").exists()


def test_an_existing_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        write_resolver_package(tmp_path, "billing")
    assert [path.name for path in tmp_path.iterdir()] == ["keep.txt"]
