from __future__ import annotations

import shutil
import time
from pathlib import Path

import anyio
import httpx
import pytest

from gateway.config import Settings
from gateway.resolvers.dispatch import ResolverSet
from gateway.snap.models import BillStatus, Inquiry
from gateway.web.app import create_app

from ...support import Keys, RedisServer, make_settings, running_server

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


async def test_resolver_down_is_reported_not_a_503(settings: Settings) -> None:
    sick = Sick()
    app = create_app(settings, resolvers=ResolverSet.single(sick, "sick"))
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            down = await http.get("/readyz")
            down_metrics = (await http.get("/metrics")).text
            sick.healthy = True
            up = await http.get("/readyz")
            up_metrics = (await http.get("/metrics")).text
    # Payment notifications need only the journal: the pod stays in the Service.
    assert down.status_code == 200
    body = down.json()
    assert (body["status"], body["inquiries"], body["payments"]) == ("degraded", False, True)
    assert body["resolvers"] == {"sick": False}
    assert 'doku_gateway_resolver_up{resolver="sick"} 0.0' in down_metrics
    assert up.status_code == 200
    assert up.json()["status"] == "ok"
    assert 'doku_gateway_resolver_up{resolver="sick"} 1.0' in up_metrics


async def test_unwritable_journal_is_reported(settings: Settings) -> None:
    sick = Sick()
    sick.healthy = True
    app = create_app(settings, resolvers=ResolverSet.single(sick, "sick"))
    journal_dir = Path(settings.payment.journal_dir)
    with running_server(app) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            await anyio.to_thread.run_sync(shutil.rmtree, journal_dir)
            await anyio.Path(journal_dir).write_text("not a directory")
            inquiries_only = await http.get("/readyz")
            sick.healthy = False
            neither = await http.get("/readyz")
    assert inquiries_only.status_code == 200
    assert inquiries_only.json()["journal"] == {"backend": "file", "writable": False}
    assert inquiries_only.json()["status"] == "degraded"
    assert neither.status_code == 503
    assert neither.json()["status"] == "unavailable"


async def test_redis_journal_down_is_reported(keys: Keys, redis_server: RedisServer) -> None:
    settings = make_settings(keys, cache={"url": redis_server.url, "redis_retry_interval": 0.1})
    with running_server(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/readyz")).json()["payments"] is True
            assert "doku_gateway_redis_up 1.0" in (await http.get("/metrics")).text
            redis_server.stop()
            deadline = time.monotonic() + 10
            body = (await http.get("/readyz")).json()
            while body["payments"] and time.monotonic() < deadline:
                await anyio.sleep(0.05)
                body = (await http.get("/readyz")).json()
    assert body["journal"] == {"backend": "redis", "writable": False}
    assert body["status"] == "degraded"


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
    # Memory mode: no Redis, so no "Redis down" gauge to fire an alert.
    assert "doku_gateway_redis_up" not in response.text
    assert "doku_gateway_journal_backlog 0.0" in response.text
    assert "doku_gateway_journal_oldest_undelivered_seconds 0.0" in response.text


async def test_wrong_method_and_path(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1.1/transfer-va/inquiry")).status_code == 405
    assert (await client.post("/nope")).status_code == 404
