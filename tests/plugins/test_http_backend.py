from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import anyio
import pytest
from doku_gateway_http import HttpBackend
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway import (
    Bill,
    BillStatus,
    ConfigError,
    Inquiry,
    ResolverContext,
    ResolverSet,
    ResolverUnavailable,
)
from gateway.resolvers.loader import build_resolver

from ..support import free_port, running_server

BILL: dict[str, Any] = {
    "name": "Budi Santoso",
    "amount": "150000.00",
    "trx_type": "C",
    "expires_at": "2030-12-31T23:59:59+07:00",
    "trx_id": "INV-2030-0001",
    "email": "budi@example.com",
    "phone": "6281234567890",
    "cache_ttl": 30,
    "customer_segment": "gold",  # unknown fields are ignored
}
API_KEY = "k-0123456789"
TIMEOUT = 0.3


async def stall(request: Request) -> Response:
    # Holds the answer until the client hangs up (or 10 s pass), so the server stops cleanly.
    with anyio.move_on_after(10):
        while (await request.receive())["type"] != "http.disconnect":
            pass
    return JSONResponse(BILL)


async def trickle(request: Request) -> Response:
    # Headers at once, then a byte every 50 ms: no single read is slow, the whole call is.
    async def body() -> AsyncIterator[bytes]:
        yield b'{"name": "Budi", '
        for _ in range(200):
            await anyio.sleep(0.05)
            yield b" "
        yield b'"amount": "1.00"}'

    return StreamingResponse(body(), media_type="application/json")


def answer(status: int, body: Any = None, raw: bytes | None = None) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        if raw is not None:
            return Response(raw, status_code=status, media_type="application/json")
        if body is None:
            return Response(status_code=status)
        return JSONResponse(body, status_code=status)

    return endpoint


BEHAVIOUR: dict[str, Callable[[Request], Awaitable[Response]]] = {
    "8808123400001": answer(200, BILL),
    "8808123400002": answer(404),
    "8808123400003": answer(200, {"status": "paid"}),
    "8808123400004": answer(200, {"status": "expired"}),
    "8808123400005": answer(410),
    "8808123400006": answer(410, {"status": "paid"}),
    "8808123400007": answer(410, raw=b"<html>gone</html>"),
    "8808123400011": answer(200, dict(BILL, amount=150000.0)),
    "8808123400012": answer(200, raw=b'{"name": "Budi", "amount": '),
    "8808123400013": answer(500, raw=b"Internal Server Error"),
    "8808123400014": answer(503, {"status": "paid"}),
    "8808123400015": answer(200, ["not", "an", "object"]),
    "8808123400016": answer(200, {"status": "refunded"}),
    "8808123400017": answer(200, dict(BILL, expires_at="2030-12-31T23:59:59")),
    "8808123400018": answer(200, dict(BILL, cache_ttl="30")),
    "8808123400019": answer(302, {"location": "elsewhere"}),
    "8808123400020": answer(200, raw=b"\xff\xfe not utf-8"),
    "8808123400030": stall,
    "8808123400031": trickle,
}


async def va(request: Request) -> Response:
    if request.headers.get("x-api-key") != API_KEY:
        return JSONResponse({"error": "unauthorized"}, status_code=401)
    return await BEHAVIOUR[request.path_params["code"]](request)


async def echo(request: Request) -> Response:
    raw_path: bytes = request.scope["raw_path"]
    return JSONResponse({"name": "Echo", "amount": "1.00", "trx_id": raw_path.decode()})


app = Starlette(
    routes=[
        Route("/va/{code}", va),
        Route("/echo/{rest:path}", echo),
        Route("/healthz", answer(200, {"ok": True})),
        Route("/sick", answer(503)),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with running_server(app) as url:
        yield url


def options(base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "url": base_url + "/va/{payment_code}",
        "timeout": TIMEOUT,
        "headers": {"X-Api-Key": API_KEY},
        **extra,
    }


def make_inquiry(payment_code: str) -> Inquiry:
    return Inquiry(
        partner_service_id="    8808",
        customer_no=payment_code[4:],
        virtual_account_no="    " + payment_code,
        payment_code=payment_code,
        inquiry_request_id="req-1",
        channel="VIRTUAL_ACCOUNT_BCA",
        body={},
    )


async def _no_invalidation(code: str) -> None:
    raise AssertionError("the http resolver never invalidates")


@contextlib.asynccontextmanager
async def started(opts: dict[str, Any]) -> AsyncIterator[HttpBackend]:
    backend = HttpBackend(opts)
    logger = logging.getLogger("doku_gateway.resolver.http")
    await backend.startup(ResolverContext("http", opts, _no_invalidation, logger))
    try:
        yield backend
    finally:
        await backend.shutdown()


@pytest.mark.anyio
async def test_bill_is_mapped_with_decimal_money(base_url: str) -> None:
    async with started(options(base_url)) as backend:
        bill = await backend.resolve(make_inquiry("8808123400001"))
    assert bill == Bill(
        name="Budi Santoso",
        amount=Decimal("150000.00"),
        expires_at=datetime(2030, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=7))),
        trx_id="INV-2030-0001",
        email="budi@example.com",
        phone="6281234567890",
        cache_ttl=30.0,
    )
    assert isinstance(bill, Bill) and type(bill.amount) is Decimal


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("8808123400002", BillStatus.NOT_FOUND),
        ("8808123400003", BillStatus.ALREADY_PAID),
        ("8808123400004", BillStatus.EXPIRED),
        ("8808123400005", BillStatus.EXPIRED),
        ("8808123400006", BillStatus.ALREADY_PAID),
        ("8808123400007", BillStatus.EXPIRED),
    ],
)
async def test_statuses(base_url: str, code: str, status: BillStatus) -> None:
    async with started(options(base_url)) as backend:
        assert await backend.resolve(make_inquiry(code)) is status


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("code", "match"),
    [
        ("8808123400011", r"amount: .*not a JSON number"),
        ("8808123400012", r"not valid JSON"),
        ("8808123400013", r"HTTP 500"),
        ("8808123400014", r"HTTP 503"),
        ("8808123400015", r"must be a JSON object"),
        ("8808123400016", r"status: must be"),
        ("8808123400017", r"expires_at: needs a UTC offset"),
        ("8808123400018", r"cache_ttl: must be a non-negative number"),
        ("8808123400019", r"HTTP 302"),
        ("8808123400020", r"not valid JSON"),
    ],
)
async def test_bad_answers_make_the_backend_unavailable(
    base_url: str, code: str, match: str
) -> None:
    async with started(options(base_url)) as backend:
        with pytest.raises(ResolverUnavailable, match=match):
            await backend.resolve(make_inquiry(code))


@pytest.mark.anyio
@pytest.mark.parametrize("code", ["8808123400030", "8808123400031"], ids=["stall", "trickle"])
async def test_slow_backend_times_out(base_url: str, code: str) -> None:
    async with started(options(base_url)) as backend:
        started_at = time.monotonic()
        with pytest.raises(ResolverUnavailable, match=rf"within {TIMEOUT:g}s"):
            await backend.resolve(make_inquiry(code))
        elapsed = time.monotonic() - started_at
    assert TIMEOUT <= elapsed < TIMEOUT + 1.5


@pytest.mark.anyio
async def test_refused_connection_makes_the_backend_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/va/{{payment_code}}"
    async with started({"url": url, "timeout": TIMEOUT}) as backend:
        with pytest.raises(ResolverUnavailable, match="unreachable: ConnectError"):
            await backend.resolve(make_inquiry("8808123400001"))


@pytest.mark.anyio
async def test_headers_are_sent(base_url: str) -> None:
    async with started(options(base_url)) as backend:
        assert isinstance(await backend.resolve(make_inquiry("8808123400001")), Bill)
    async with started(options(base_url, headers={})) as backend:
        with pytest.raises(ResolverUnavailable, match="HTTP 401"):
            await backend.resolve(make_inquiry("8808123400001"))


@pytest.mark.anyio
async def test_payment_code_is_url_quoted(base_url: str) -> None:
    async with started({"url": base_url + "/echo/{payment_code}?v=1"}) as backend:
        bill = await backend.resolve(make_inquiry("12 34/../x?y#z"))
    assert isinstance(bill, Bill)
    assert bill.trx_id == "/echo/12%2034%2F..%2Fx%3Fy%23z"


@pytest.mark.anyio
async def test_health(base_url: str) -> None:
    backend = HttpBackend(options(base_url))
    assert await backend.health() is False, "not started yet"
    async with started(options(base_url)) as backend:
        assert await backend.health() is True
    assert await backend.health() is False, "shut down"

    async with started(options(base_url, health_url=base_url + "/healthz")) as backend:
        assert await backend.health() is True
    async with started(options(base_url, health_url=base_url + "/sick")) as backend:
        assert await backend.health() is False
    nowhere = f"http://127.0.0.1:{free_port()}/healthz"
    async with started(options(base_url, health_url=nowhere)) as backend:
        assert await backend.health() is False


@pytest.mark.anyio
async def test_resolve_before_startup_is_unavailable(base_url: str) -> None:
    backend = HttpBackend(options(base_url))
    with pytest.raises(ResolverUnavailable, match="not started"):
        await backend.resolve(make_inquiry("8808123400001"))


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"url": None}, "option 'url' is required"),
        ({"url": "https://billing.internal/va/"}, r"must contain \{payment_code\}"),
        ({"url": "ftp://billing.internal/{payment_code}"}, "http:// or https://"),
        ({"url": "/va/{payment_code}"}, "http:// or https://"),
        ({"timeout": 0}, "option 'timeout' must be a positive number"),
        ({"timeout": "2"}, "option 'timeout' must be a positive number"),
        ({"timeout": True}, "option 'timeout' must be a positive number"),
        ({"headers": {"X-Api-Key": 1}}, "option 'headers' must be a table of ASCII strings"),
        ({"headers": ["X-Api-Key"]}, "option 'headers' must be a table of ASCII strings"),
        ({"headers": {"X-Api-Key": "k\u2026"}}, "option 'headers' must be a table of ASCII"),
        ({"health_url": 5}, "option 'health_url' must be a string"),
        ({"health_url": "billing/healthz"}, "http:// or https://"),
        ({"tiemout": 2.0}, "unknown option 'tiemout'"),
    ],
)
def test_options_are_checked(changes: dict[str, Any], match: str) -> None:
    opts = {"url": "https://billing.internal/va/{payment_code}", **changes}
    opts = {key: value for key, value in opts.items() if value is not None}
    with pytest.raises(ValueError, match=match):
        HttpBackend(opts)


def test_defaults() -> None:
    backend = HttpBackend({"url": "https://billing.internal/va/{payment_code}"})
    assert backend.timeout == 2.0
    assert backend.health_url is None


@pytest.mark.anyio
async def test_is_found_by_its_entry_point(base_url: str) -> None:
    resolver = build_resolver("http", options(base_url))
    assert isinstance(resolver, HttpBackend)
    with pytest.raises(ConfigError, match=r"http refused its options: .*'url' is required"):
        build_resolver("http", {"timeout": 1.0})


@pytest.mark.anyio
async def test_runs_inside_the_gateways_resolver_set(base_url: str) -> None:
    resolvers = ResolverSet.single(build_resolver("http", options(base_url)), timeout=3.0)
    await resolvers.startup(_no_invalidation)
    try:
        route = resolvers.route("8808")
        assert route is not None
        bill = await resolvers.resolve(route, make_inquiry("8808123400001"))
        assert isinstance(bill, Bill) and bill.amount == Decimal("150000.00")
        assert await resolvers.resolve(route, make_inquiry("8808123400006")) is (
            BillStatus.ALREADY_PAID
        )
        with pytest.raises(ResolverUnavailable, match="HTTP 500"):
            await resolvers.resolve(route, make_inquiry("8808123400013"))
        assert await resolvers.health(1.0) == {"default": True}
    finally:
        await resolvers.shutdown()
    assert await resolvers.health(1.0) == {"default": False}
