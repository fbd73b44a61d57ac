"""Demo mode: generated keys and credentials in ``./.demo/`` and a resolver that mirrors DOKU's
sandbox prefixes, so the whole flow can be tried without DOKU, Redis or a merchant backend.

Demo ``customerNo`` prefixes (spec §17): ``117…`` already paid, ``118…`` expired, ``119…`` not
found, ``116…`` open amount (min 10000.00, max 5000000.00), anything else a closed bill of
25000.00.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..config import PathSettings, Settings, settings_from_mapping
from ..exceptions import ConfigError
from ..snap.keys import generate_private_key, private_key_pem, public_key_pem
from ..snap.models import Bill, BillStatus, Inquiry, Outcome, Payment
from ..snap.timestamps import WIB

__all__ = ["DemoFiles", "DemoResolver", "demo_settings", "ensure_demo_files"]


@dataclass(frozen=True, slots=True)
class DemoFiles:
    directory: Path
    client_id: str
    client_secret: str

    @property
    def doku_private(self) -> Path:
        return self.directory / "doku_private.pem"

    @property
    def doku_public(self) -> Path:
        return self.directory / "doku_public.pem"

    @property
    def merchant_private(self) -> Path:
        return self.directory / "merchant_private.pem"

    @property
    def merchant_public(self) -> Path:
        return self.directory / "merchant_public.pem"


def _write_private(path: Path, data: bytes) -> None:
    # Created with 0600 from the start: a key must never exist world-readable, even briefly.
    # Written beside and renamed over: a process reading it meanwhile sees the old file or the
    # new one, never an empty or half-written one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def ensure_demo_files(
    directory: str | os.PathLike[str] = ".demo", paths: PathSettings | None = None
) -> DemoFiles:
    """Create the demo keys and credentials once; later calls reuse them."""
    root = Path(directory)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Several gateways started at once on one demo directory (the benchmark does) must agree
    # on one set of keys: one process at a time creates or reads them.
    lock = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _ensure_demo_files(root, paths or PathSettings())
    finally:
        os.close(lock)  # releases the lock


def _ensure_demo_files(root: Path, paths: PathSettings) -> DemoFiles:
    credentials = root / "credentials.json"
    if credentials.exists():
        try:
            data = json.loads(credentials.read_text(encoding="utf-8"))
            str(data["client_id"]), str(data["client_secret"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                str(credentials),
                f"unreadable demo credentials ({type(exc).__name__}); delete {root} to start "
                "afresh",
            ) from None
    else:
        data = {
            "client_id": f"BRN-DEMO-{secrets.randbelow(10**13):013d}",
            "client_secret": f"SK-{secrets.token_urlsafe(24)}",
        }
    data["paths"] = {"token": paths.token, "inquiry": paths.inquiry, "payment": paths.payment}
    files = DemoFiles(root, data["client_id"], data["client_secret"])
    for private, public in (
        (files.doku_private, files.doku_public),
        (files.merchant_private, files.merchant_public),
    ):
        if not private.exists():
            key = generate_private_key()
            _write_private(private, private_key_pem(key))
            _write_private(public, public_key_pem(key.public_key()))
    text = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    if not credentials.exists() or credentials.read_bytes() != text:
        _write_private(credentials, text)
    return files


def demo_settings(
    files: DemoFiles, env: Mapping[str, str], extra: Mapping[str, Any] | None = None
) -> Settings:
    """Settings for ``serve --demo``: the demo keys, the demo resolver, an in-memory cache.

    Environment overrides still apply (``DOKU_GATEWAY_HTTP_PORT`` …).
    """
    data: dict[str, Any] = {
        "doku": {
            "client_id": files.client_id,
            "client_secret": files.client_secret,
            "public_key": f"file:{files.doku_public}",
        },
        "merchant": {
            "private_key": f"file:{files.merchant_private}",
            "public_key": f"file:{files.merchant_public}",
        },
        "resolvers": [
            {"name": "demo", "use": "gateway.resolvers.demo:DemoResolver", "default": True}
        ],
        "payment": {"journal_dir": str(files.directory / "journal")},
    }
    if extra:
        data.update(extra)
    return settings_from_mapping(data, env).replace(demo=True)


class DemoResolver:
    """Answers from the customerNo prefix, like DOKU's sandbox simulator, and remembers paid
    closed bills (in this process) so the whole flow can be tried: inquire, pay, inquire again.
    """

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        self.amount = Decimal(str(options.get("amount", "25000.00")))
        self.name = str(options.get("name", "Demo Customer"))
        # The paid VAs' payment request ids: what the demo needs to answer "already paid", and
        # small enough that a soak of the demo measures the gateway, not this memory.
        self.paid: dict[str, str] = {}

    async def on_payment(self, payment: Payment) -> None:
        # Idempotent on paymentRequestId, as every on_payment hook must be.
        if payment.trx_type in (None, "C"):
            self.paid.setdefault(payment.payment_code, payment.payment_request_id)

    async def resolve(self, inquiry: Inquiry) -> Outcome:
        customer = inquiry.customer_no
        if customer.startswith("117") or inquiry.payment_code in self.paid:
            return BillStatus.ALREADY_PAID
        if customer.startswith("118"):
            return BillStatus.EXPIRED
        if customer.startswith("119"):
            return BillStatus.NOT_FOUND
        expires = datetime.now(WIB).replace(microsecond=0) + timedelta(days=1)
        if customer.startswith("116"):
            return Bill(
                name=self.name,
                amount=Decimal("0.00"),
                trx_type="O",
                min_amount=Decimal("10000.00"),
                max_amount=Decimal("5000000.00"),
                expires_at=expires,
                trx_id=f"DEMO-{inquiry.payment_code}",
            )
        return Bill(
            name=self.name,
            amount=self.amount,
            expires_at=expires,
            trx_id=f"DEMO-{inquiry.payment_code}",
        )

    async def health(self) -> bool:
        return True
