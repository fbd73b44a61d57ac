from __future__ import annotations

from gateway.metrics import Metrics


def sample(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{line_start} not exposed")


def test_hot_path_metrics_expose_like_prometheus_client() -> None:
    metrics = Metrics()
    latency = metrics.inquiry_latency.labels("demo")
    for value in (0.0005, 0.001, 0.002, 20.0):
        latency.observe(value)
    metrics.inquiries.labels("demo", "bill").inc()
    metrics.inquiries.labels("demo", "bill").inc()
    metrics.cache.labels("miss").inc()
    text = metrics.render().decode()
    assert sample(text, 'doku_gateway_inquiries_total{resolver="demo",result="bill"}') == 2
    assert sample(text, 'doku_gateway_cache_lookups_total{result="miss"}') == 1
    bucket = "doku_gateway_inquiry_duration_seconds_bucket"
    assert sample(text, f'{bucket}{{le="0.001",resolver="demo"}}') == 2  # le is inclusive
    assert sample(text, f'{bucket}{{le="0.0025",resolver="demo"}}') == 3
    assert sample(text, f'{bucket}{{le="10.0",resolver="demo"}}') == 3
    assert sample(text, f'{bucket}{{le="+Inf",resolver="demo"}}') == 4
    assert sample(text, 'doku_gateway_inquiry_duration_seconds_count{resolver="demo"}') == 4
    assert (
        abs(sample(text, 'doku_gateway_inquiry_duration_seconds_sum{resolver="demo"}') - 20.0035)
        < 1e-9
    )
    assert "# TYPE doku_gateway_inquiry_duration_seconds histogram" in text


def test_build_info_and_process_collectors_on_the_gateway_registry() -> None:
    from gateway import __version__

    text = Metrics().render().decode()
    assert f'doku_gateway_build_info{{version="{__version__}"}} 1.0' in text
    for name in ("process_resident_memory_bytes", "python_info", "python_gc_collections_total"):
        assert name in text
    # Two gateways in one process (tests, embedding) do not collide on a global registry.
    assert "doku_gateway_build_info" in Metrics().render().decode()


def test_redis_up_is_exported_only_when_redis_is_used() -> None:
    metrics = Metrics()
    assert "doku_gateway_redis_up" not in metrics.render().decode()
    metrics.use_redis()
    metrics.use_redis()
    metrics.redis_up.set(1)
    assert "doku_gateway_redis_up 1.0" in metrics.render().decode()


def test_delivery_outcomes_and_journal_gauges() -> None:
    metrics = Metrics()
    for outcome in ("delivered", "retried", "retried", "dead_letter"):
        metrics.deliveries.labels(outcome).inc()
    metrics.journal_backlog.set(3)
    metrics.journal_oldest.set(12.5)
    text = metrics.render().decode()
    assert 'doku_gateway_payment_deliveries_total{outcome="retried"} 2.0' in text
    assert 'doku_gateway_payment_deliveries_total{outcome="dead_letter"} 1.0' in text
    assert "doku_gateway_journal_backlog 3.0" in text
    assert "doku_gateway_journal_oldest_undelivered_seconds 12.5" in text
