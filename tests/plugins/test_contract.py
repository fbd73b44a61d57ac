"""The resolver contract (gateway.testing) against the static and HTTP reference plugins.

The SQL and top-up plugins run it in their own test modules, next to their database fixtures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest
from doku_gateway_http import HttpBackend
from doku_gateway_static import StaticBills

from gateway import Bill, BillStatus
from gateway.testing import Expectation, ResolverContract, resolver_contract

from ..support import free_port, running_server
from .test_http_backend import API_KEY, app

STATIC_BILLS = {
    "8808123400001": {"name": "Budi Santoso", "amount": "150000.00", "trx_id": "INV-1"},
    "8808123400002": {"name": "Donation", "trx_type": "O", "min_amount": "10000.00"},
    "8808123400003": {"status": "paid"},
    "8808123400004": {"status": "expired"},
}
SAMPLES: dict[str, Expectation] = {
    "8808123400001": Bill,
    "8808123400002": BillStatus.NOT_FOUND,
    "8808123400003": BillStatus.ALREADY_PAID,
    "8808123400004": BillStatus.EXPIRED,
}


class TestStaticBillsContract(ResolverContract):
    factory = StaticBills
    partner_service_id = "8808"
    samples: ClassVar[Mapping[str, Expectation]] = {
        "8808123400001": Bill,
        "8808123400002": Bill,
        "8808123400003": BillStatus.ALREADY_PAID,
        "8808123400004": BillStatus.EXPIRED,
        "8808123400099": BillStatus.NOT_FOUND,
    }

    @pytest.fixture
    def resolver_options(self, tmp_path: Path) -> Mapping[str, Any]:
        path = tmp_path / "bills.json"
        path.write_text(json.dumps(STATIC_BILLS), encoding="utf-8")
        return {"path": str(path), "reload": True}


@pytest.fixture(scope="module")
def backend() -> Iterator[str]:
    with running_server(app) as url:
        yield url


class TestHttpBackendContract(ResolverContract):
    factory = HttpBackend
    partner_service_id = "8808"
    samples = SAMPLES
    timeout = 1.0

    @staticmethod
    def _options(url: str) -> dict[str, Any]:
        return {"url": url, "timeout": 0.3, "headers": {"X-Api-Key": API_KEY}}

    @pytest.fixture
    def resolver_options(self, backend: str) -> Mapping[str, Any]:
        return {**self._options(backend + "/va/{payment_code}"), "health_url": backend + "/healthz"}

    @pytest.fixture
    def unavailable_resolver_options(self) -> Mapping[str, Any]:
        closed = f"http://127.0.0.1:{free_port()}"
        return {**self._options(closed + "/va/{payment_code}"), "health_url": closed + "/healthz"}

    @pytest.fixture
    def slow_resolver_options(self, backend: str) -> Mapping[str, Any]:
        # The test server's 8808123400030 holds its answer until the client hangs up.
        return self._options(backend + "/va/8808123400030?code={payment_code}")


# The one-line form, as a plugin author would write it.
TestStaticBillsOneLine = resolver_contract(
    StaticBills,
    {"path": str(Path(__file__).parent / "_static_bills.json")},
    ["8808123400001", "8808123400099"],
    partner_service_id="8808",
)
