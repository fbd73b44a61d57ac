"""``check-status`` and ``va create|update|delete`` against FakeDoku on a real socket."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.cli.commands.doku import register
from gateway.doku.client import TOKEN_PATH
from gateway.snap.va import CREATE_VA
from gateway.testing import FakeDoku

from ..support import Keys, write_config


@pytest.fixture
def config(tmp_path: Path, keys: Keys) -> Path:
    return write_config(tmp_path, keys, "[client]\ntimeout = 5\nretries = 0\n")


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="doku-gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def test_create_then_check_status(
    config: Path, url: str, fake: FakeDoku, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--config", str(config), "--base-url", url, "--partner-service-id", "88899"]
    status = run(
        "va",
        "create",
        *common,
        "--customer-no",
        "1001",
        "--trx-id",
        "INV-1001",
        "--channel",
        "VIRTUAL_ACCOUNT_BRI",
        "--name",
        "Budi Santoso",
        "--amount",
        "25000",
    )
    created = json.loads(capsys.readouterr().out)
    assert status == 0
    assert created["responseCode"] == "2002700"
    assert created["virtualAccountData"]["virtualAccountNo"] == "   888991001"
    stored = fake.virtual_account("888991001")
    assert stored is not None
    assert stored.amount == Decimal("25000")

    fake.mark_paid("888991001", Decimal("25000"), "PAY-1")
    status = run("check-status", *common, "--customer-no", "1001")
    answer = json.loads(capsys.readouterr().out)
    assert status == 0
    assert answer["virtualAccountData"]["paidAmount"] == {"value": "25000.00", "currency": "IDR"}

    va = [
        *common,
        "--customer-no",
        "1001",
        "--trx-id",
        "INV-1001",
        "--channel",
        "VIRTUAL_ACCOUNT_BRI",
    ]
    assert (
        run("va", "update", *va, "--amount", "30000.50", "--expires", "2030-01-02T03:04:05Z") == 0
    )
    assert json.loads(capsys.readouterr().out)["responseCode"] == "2002800"
    stored = fake.virtual_account("888991001")
    assert stored is not None
    assert stored.amount == Decimal("30000.50")
    assert stored.expires_at is not None
    assert stored.expires_at.isoformat() == "2030-01-02T10:04:05+07:00"

    assert run("va", "delete", *va) == 0
    assert json.loads(capsys.readouterr().out)["responseCode"] == "2003100"
    assert fake.virtual_account("888991001") is None


def test_an_invalid_request_exits_2_and_sends_nothing(
    config: Path, url: str, fake: FakeDoku, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(
        "va",
        "create",
        "--config",
        str(config),
        "--base-url",
        url,
        "--partner-service-id",
        "88899",
        "--customer-no",
        "1001",
        "--trx-id",
        "INV-1001",
        "--channel",
        "VIRTUAL_ACCOUNT_BRI",
        "--name",
        "Budi Śantoso",
        "--amount",
        "25000",
    )
    streams = capsys.readouterr()
    assert status == 2
    assert "virtualAccountName" in streams.err
    assert streams.out == ""
    assert sum(fake.requests.values()) == 0


def test_a_doku_refusal_exits_1_with_dokus_answer(
    config: Path,
    url: str,
    fake: FakeDoku,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The base URL may also come from the environment, like every other setting.
    monkeypatch.setenv("DOKU_GATEWAY_CLIENT_BASE_URL", url)
    status = run(
        "va",
        "delete",
        "--config",
        str(config),
        "--partner-service-id",
        "88899",
        "--customer-no",
        "404",
        "--trx-id",
        "INV-404",
        "--channel",
        "VIRTUAL_ACCOUNT_BRI",
    )
    streams = capsys.readouterr()
    assert status == 1
    assert json.loads(streams.out)["responseCode"] == "4043111"
    assert "4043111" in streams.err
    assert fake.requests[TOKEN_PATH] == 1
    assert fake.requests[CREATE_VA.path] == 0


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run(
        "check-status",
        "--config",
        str(tmp_path / "missing.toml"),
        "--partner-service-id",
        "88899",
        "--customer-no",
        "1",
    )
    assert status == 2
    assert "missing.toml" in capsys.readouterr().err
