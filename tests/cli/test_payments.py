"""payments list / show / dead-letters with only the journal's settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.payments.journal.base import JournalEntry
from gateway.payments.journal.file import FileJournal

from .test_main import run_cli

# 2026-11-29T10:00:00+07:00
_AT = 1795921200.0


def _entry(prid: str, va: str, at: float, value: str = "25000.00") -> JournalEntry:
    body = {
        "virtualAccountNo": va,
        "trxId": f"INV-{prid}",
        "paymentRequestId": prid,
        "paidAmount": {"value": value, "currency": "IDR"},
    }
    return JournalEntry(prid, va.replace(" ", ""), va[:8].strip(), body, at)


def _config(tmp_path: Path) -> Path:
    journal = tmp_path / "journal"

    async def fill() -> None:
        store = FileJournal(journal)
        await store.append(_entry("PR-1", "   8889900001234", _AT))
        await store.append(_entry("PR-2", "   8889900005678", _AT + 3600, "10000.00"))
        await store.dead_letter(
            _entry("PR-2", "   8889900005678", _AT + 3600), "HookError: 502", 10
        )
        await store.close()

    asyncio.run(fill())
    config = tmp_path / "gateway.toml"
    # No [doku], no keys, and a resolver whose secret is not set: the journal is enough.
    config.write_text(
        f'[payment]\njournal = "file"\njournal_dir = "{journal}"\n'
        '[[resolvers]]\nuse = "x:y"\noptions = { dsn = "env:UNSET_BILLING_DSN" }\n'
    )
    return config


def test_list_filters_by_va_and_since_with_wib_times(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    everything = run_cli("payments", "list", "--config", config)
    assert everything.returncode == 0, everything.stderr.decode()
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["paymentRequestId"] for r in rows] == ["PR-1", "PR-2"]
    assert rows[0]["receivedAt"] == "2026-11-29T10:00:00+07:00"
    assert rows[0]["paidAmount"] == "25000.00 IDR"
    by_va = run_cli("payments", "list", "--config", config, "--va", "8889900005678")
    assert [json.loads(x)["paymentRequestId"] for x in by_va.stdout.splitlines()] == ["PR-2"]
    since = run_cli("payments", "list", "--config", config, "--since", "2026-11-29T10:30:00")
    assert [json.loads(x)["paymentRequestId"] for x in since.stdout.splitlines()] == ["PR-2"]


def test_show_and_dead_letters_are_readable(tmp_path: Path) -> None:
    config = str(_config(tmp_path))
    shown = run_cli("payments", "show", "PR-2", "--config", config)
    assert shown.returncode == 0, shown.stderr.decode()
    document = json.loads(shown.stdout)
    assert document["body"]["trxId"] == "INV-PR-2"
    assert document["deadLetter"]["error"] == "HookError: 502"
    dead = run_cli("payments", "dead-letters", "--config", config)
    [letter] = [json.loads(line) for line in dead.stdout.splitlines()]
    assert letter["parkedAt"].endswith("+07:00")
    assert (letter["attempts"], letter["paidAmount"]) == (10, "25000.00 IDR")
    missing = run_cli("payments", "show", "PR-404", "--config", config)
    assert missing.returncode == 1
    assert missing.stderr.decode().strip() == "doku-gateway: no payment PR-404 in the journal"
