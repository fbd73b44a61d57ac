"""Prometheus metrics, on a registry owned by the app (no module-level collectors).

Names start with ``doku_gateway_``; labels carry resolver names, results and reasons, never a VA
number (unbounded cardinality, and payment data does not belong in monitoring).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "LoopCounter", "LoopHistogram", "Metrics"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Count:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class LoopCounter:
    """A labelled counter for the per-request hot path: plain numbers, no lock.

    Only the event loop's thread touches it (handlers, and ``/metrics``, which runs on the same
    loop), so prometheus_client's per-increment mutex buys nothing there but cost.
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self._children: dict[tuple[str, ...], Count] = {}

    def labels(self, *values: str) -> Count:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Count()
        return child

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            family.add_metric(list(values), child.value)
        yield family


class Buckets:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value


class LoopHistogram:
    """The histogram counterpart of :class:`LoopCounter`."""

    def __init__(
        self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(buckets)
        self._children: dict[tuple[str, ...], Buckets] = {}

    def labels(self, *values: str) -> Buckets:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = Buckets(self.bounds)
        return child

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in self._children.items():
            cumulative, total = [], 0
            for bound, count in zip((*self.bounds, float("inf")), child.counts, strict=True):
                total += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), total))
            family.add_metric(list(values), cumulative, child.sum)
        yield family


class Metrics:
    """All of the gateway's collectors, registered on one :class:`CollectorRegistry`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inquiries = LoopCounter(
            "doku_gateway_inquiries",
            "Inquiries answered, by resolver and result.",
            ["resolver", "result"],
        )
        self.inquiry_latency = LoopHistogram(
            "doku_gateway_inquiry_duration_seconds",
            "Time from request received to answer ready, by resolver.",
            ["resolver"],
            _LATENCY_BUCKETS,
        )
        self.cache = LoopCounter(
            "doku_gateway_cache_lookups",
            "Answer cache lookups, by result (hit or miss).",
            ["result"],
        )
        self.key_matches = LoopCounter(
            "doku_gateway_signature_key_matches",
            "Signatures that verified, by credential (client_secret, doku_public_key) and key "
            "(current, or next during a rotation).",
            ["credential", "key"],
        )
        self.refused_heads = LoopCounter(
            "doku_gateway_refused_request_heads",
            "Connections closed for their request head, by reason (header_bytes, header_count, "
            "header_timeout).",
            ["reason"],
        )
        self.resolver_latency = LoopHistogram(
            "doku_gateway_resolver_duration_seconds",
            "Time spent inside resolver plugins (cache misses only).",
            ["resolver"],
            _LATENCY_BUCKETS,
        )
        self.payments = LoopCounter(
            "doku_gateway_payment_notifications",
            "Payment notifications, by result (new, duplicate, rejected, journal_error).",
            ["result"],
        )
        self.deliveries = LoopCounter(
            "doku_gateway_payment_deliveries",
            "Deliveries to resolvers' on_payment hooks, by outcome "
            "(delivered, retried, dead_letter).",
            ["outcome"],
        )
        for hot in (
            self.inquiries,
            self.resolver_latency,
            self.payments,
            self.deliveries,
            self.inquiry_latency,
            self.cache,
            self.key_matches,
            self.refused_heads,
        ):
            r.register(hot)
        self.signature_failures = Counter(
            "doku_gateway_signature_failures",
            "Requests refused (or logged, in log-only mode) for a bad token or signature.",
            ["endpoint", "reason"],
            registry=r,
        )
        self.rejections = Counter(
            "doku_gateway_rejected_requests",
            "Requests answered with a 4xx SNAP code, by endpoint and response code.",
            ["endpoint", "code"],
            registry=r,
        )
        self.tokens_issued = Counter(
            "doku_gateway_tokens_issued", "Access tokens issued to DOKU.", registry=r
        )
        self.replays = Counter(
            "doku_gateway_replayed_requests",
            "Requests whose X-EXTERNAL-ID was seen before, by outcome.",
            ["outcome"],
            registry=r,
        )
        # Registered by use_redis() only: in memory mode a 0 here would fire "Redis down".
        self.redis_up = Gauge(
            "doku_gateway_redis_up", "1 when the Redis backend answers, else 0.", registry=None
        )
        self._redis_registered = False
        self.redis_errors = Counter(
            "doku_gateway_redis_errors", "Redis commands that failed or timed out.", registry=r
        )

        self.build_info = Gauge(
            "doku_gateway_build_info", "Always 1; the version as a label.", ["version"], registry=r
        )
        from . import __version__  # here: the package imports this module while it loads

        self.build_info.labels(__version__).set(1)
        self.resolver_up = Gauge(
            "doku_gateway_resolver_up",
            "1 when the resolver's health() passed at the last check (/readyz), else 0.",
            ["resolver"],
            registry=r,
        )
        self.journal_backlog = Gauge(
            "doku_gateway_journal_backlog",
            "Payment journal entries not yet delivered (sampled at scrape).",
            registry=r,
        )
        self.journal_oldest = Gauge(
            "doku_gateway_journal_oldest_undelivered_seconds",
            "Age of the oldest undelivered journal entry, 0 when none (sampled at scrape).",
            registry=r,
        )
        # Process (CPU, memory, file descriptors) and Python (version, GC) collectors, on this
        # registry rather than prometheus_client's global one.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.flagged = Counter(
            "doku_gateway_payments_flagged",
            "Payments that broke their bill's rules, by flag; delivered anyway.",
            ["flag"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "doku_gateway_payment_dead_letters",
            "Payments parked after repeated delivery failures, as last counted.",
            registry=r,
        )
        self.journal_unreadable = Counter(
            "doku_gateway_journal_unreadable_entries",
            "Payment journal records found unreadable (a torn write, a corrupt line); each is "
            "logged as an error with its position, never delivered or merged.",
            registry=r,
        )

    def use_redis(self) -> None:
        """Export ``doku_gateway_redis_up``: only when a Redis backend is configured."""
        if not self._redis_registered:
            self.registry.register(self.redis_up)
            self._redis_registered = True

    def render(self) -> bytes:
        return generate_latest(self.registry)
