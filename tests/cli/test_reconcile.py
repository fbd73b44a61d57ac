"""``doku-gateway reconcile`` end to end: a TOML config, the file journal, FakeDoku on a socket."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.cli.commands.reconcile import register
from gateway.payments.journal.file import FileJournal
from gateway.payments.ledger.base import LedgerEntry
from gateway.payments.ledger.file import FileLedger
from gateway.snap.va import CHECK_STATUS
from gateway.testing import FakeDoku

from ..support import Keys, write_config

PARTNER = "   88899"
NOTHING = {
    "checked": 0,
    "paid_found": 0,
    "already_journaled": 0,
    "unpaid": 0,
    "errors": 0,
    "expired": 0,
    "deferred": 0,
}


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "journal"


@pytest.fixture
def config(tmp_path: Path, keys: Keys, journal_dir: Path) -> Path:
    sections = f"""
[client]
timeout = 5
retries = 0

[payment]
journal_dir = "{journal_dir}"
"""
    return write_config(tmp_path, keys, sections)


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="doku-gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


def record(journal_dir: Path, customer: str, age: float) -> None:
    entry = LedgerEntry(
        f"88899{customer}",
        PARTNER,
        customer,
        PARTNER + customer,
        f"INQ-{customer}",
        f"INV-{customer}",
        time.time() - age,
        "VIRTUAL_ACCOUNT_BRI",
    )
    asyncio.run(FileLedger(journal_dir).record(entry))


def test_reconcile_journals_a_missing_payment_once(
    config: Path,
    url: str,
    fake: FakeDoku,
    journal_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record(journal_dir, "1001", age=120)
    record(journal_dir, "1002", age=10)  # answered 10 s ago: DOKU is not asked yet
    fake.mark_paid(PARTNER + "1001", Decimal("25000"), "PAY-1")

    assert run("reconcile", "--config", str(config), "--base-url", url) == 0
    assert json.loads(capsys.readouterr().out) == {**NOTHING, "checked": 1, "paid_found": 1}
    journal = FileJournal(journal_dir)
    lease = asyncio.run(journal.read(0, timeout=0.01))
    assert lease is not None and [e.payment_request_id for e in lease.entries] == ["PAY-1"]
    assert lease.entries[0].body["additionalInfo"]["source"] == "check-status"
    assert asyncio.run(journal.has_payment("888991001"))

    assert run("reconcile", "--config", str(config), "--base-url", url) == 0
    assert json.loads(capsys.readouterr().out) == NOTHING
    lines = (journal_dir / "payments.jsonl").read_bytes().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["prid"] == "PAY-1"
    assert fake.requests[CHECK_STATUS.path] == 1


def test_doku_errors_are_reported_with_exit_0(
    config: Path,
    url: str,
    fake: FakeDoku,
    journal_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    record(journal_dir, "1001", age=120)
    fake.fail_next(1, 500, path=CHECK_STATUS.path)
    assert run("reconcile", "--config", str(config), "--base-url", url, "--min-age", "100") == 0
    assert json.loads(capsys.readouterr().out) == {**NOTHING, "checked": 1, "errors": 1}


def test_configuration_errors_exit_2(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("reconcile", "--config", str(tmp_path / "missing.toml")) == 2
    assert "configuration error" in capsys.readouterr().err
    assert run("reconcile", "--config", str(config), "--min-age", "60", "--max-age", "30") == 2
    assert "--max-age" in capsys.readouterr().err
    assert run("reconcile", "--config", str(config), "--base-url", "ftp://doku") == 2
    assert capsys.readouterr().out == ""
