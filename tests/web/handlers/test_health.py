from __future__ import annotations

import httpx
import pytest

from gateway.config import Settings
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.models import BillStatus, Inquiry
from gateway.web.app import create_app

from ...support import running_server

pytestmark = pytest.mark.anyio


class Sick:
    def __init__(self) -> None:
        self.healthy = False

    async def resolve(self, inquiry: Inquiry) -> BillStatus:
        return BillStatus.NOT_FOUND

    async def health(self) -> bool:
        return self.healthy


async def test_livez_and_readyz(client: httpx.AsyncClient) -> None:
    assert (await client.get("/livez")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["resolvers"] == {"demo": True}
    assert ready.json()["state"]["backend"] == "memory"


async def test_readyz_reports_unhealthy_resolver(settings: Settings) -> None:
    sick = Sick()
    app = create_app(settings, resolvers=ResolverSet.single(sick, "sick"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            down = await http.get("/readyz")
            sick.healthy = True
            up = await http.get("/readyz")
    assert down.status_code == 503
    assert down.json() == {**down.json(), "status": "unavailable", "resolvers": {"sick": False}}
    assert up.status_code == 200


async def test_metrics_exposition(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    for name in (
        "doku_gateway_inquiries_total",
        "doku_gateway_signature_failures_total",
        "doku_gateway_inquiry_duration_seconds",
        "doku_gateway_tokens_issued_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in response.text


async def test_wrong_method_and_path(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1.1/transfer-va/inquiry")).status_code == 405
    assert (await client.post("/nope")).status_code == 404
