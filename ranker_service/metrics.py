"""Prometheus metrics of one app instance (its own CollectorRegistry, so several apps never collide)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("mixlm_requests", "HTTP requests by route and status code", ["route", "status"], registry=r)
        self.items = Counter("mixlm_items", "Items by route and outcome (scored, missing, cold_start)", ["route", "outcome"],
                             registry=r)
        self.stage_seconds = Histogram("mixlm_stage_seconds", "Latency per stage (store, cold_start, queue, assemble, "
                                       "score, total)", ["route", "stage"], buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_requests = Histogram("mixlm_batch_requests", "Requests merged into one engine call",
                                        buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.batch_tokens = Histogram("mixlm_batch_tokens", "Tokens in one engine call",
                                      buckets=(64, 256, 1024, 4096, 16384, 65536), registry=r)
        self.queue_depth = Gauge("mixlm_queue_depth", "Requests waiting for the engine", registry=r)

    def observe_batch(self, n_requests: int, n_tokens: int) -> None:
        self.batch_requests.observe(n_requests)
        self.batch_tokens.observe(n_tokens)

    def observe_stages(self, route: str, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_seconds.labels(route, stage).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
