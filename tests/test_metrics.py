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
