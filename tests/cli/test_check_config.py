"""check-config and serve on broken configurations: every problem, one line each, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..support import Keys, free_port, write_config
from .test_main import run_cli

_BROKEN = """
[payment]
max_attempts = 10.5

[cache]
url = "redis://localhost:63799x/0"
"""


def test_check_config_reports_every_problem(tmp_path: Path, keys: Keys) -> None:
    config = write_config(
        tmp_path,
        keys,
        _BROKEN,
        resolvers='[[resolvers]]\nuse = "mybilling:make"\n'
        '[[resolvers]]\nname = "plugin"\nuse = "no-such-plugin"\n',
    )
    result = run_cli("check-config", "--config", str(config))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "Traceback" not in err
    assert "4 configuration errors" in err
    for key in ("payment.max_attempts", "cache.url", "resolvers[0].use", "resolvers[1].use"):
        assert f"  {key}: " in err


def test_check_config_runs_the_resolver_check_hook(tmp_path: Path, keys: Keys) -> None:
    use = 'use = "tests.resolvers.test_loader:CheckedResolver"'
    missing = tmp_path / "bills.csv"
    config = write_config(
        tmp_path, keys, resolvers=f'[[resolvers]]\n{use}\noptions = {{ bills = "{missing}" }}\n'
    )
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 2
    assert f"resolvers[0].options: bills file {missing} does not exist" in result.stderr.decode()
    missing.write_text("")
    result = run_cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().startswith("ok: 1 resolver(s)")


def test_check_config_connect_names_an_unreachable_redis(tmp_path: Path, keys: Keys) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    config = write_config(tmp_path, keys, f'[cache]\nurl = "{url}"\nredis_connect_timeout = 0.2')
    assert run_cli("check-config", "--config", str(config)).returncode == 0
    result = run_cli("check-config", "--config", str(config), "--connect")
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "cache.url: cannot reach Redis" in err
    assert "Traceback" not in err


_DEMO = '[[resolvers]]\nuse = "gateway.resolvers.demo:DemoResolver"\n'


@pytest.mark.parametrize(
    ("sections", "resolvers", "message"),
    [
        ('[cache]\nurl = "redis://localhost:63799x/0"', _DEMO, "cache.url: port '63799x'"),
        ("[payment]\nmax_attempts = 10.5", _DEMO, "payment.max_attempts: must be an integer"),
        ("", '[[resolvers]]\nuse = "mybilling:make"\n', "resolvers[0].use: cannot import"),
    ],
)
def test_serve_fails_in_one_line_without_traceback(
    tmp_path: Path, keys: Keys, sections: str, resolvers: str, message: str
) -> None:
    config = write_config(tmp_path, keys, sections, resolvers=resolvers)
    result = run_cli("serve", "--config", str(config), "--port", str(free_port()))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert err.count("\n") == 1
    assert err.startswith("doku-gateway: configuration error: ")
    assert message in err
