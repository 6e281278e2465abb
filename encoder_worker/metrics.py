"""Worker metrics (Prometheus): items encoded, batch latency, lag, DLQ count, freshness.

Each worker owns its registry (no process-global singletons), served on a loopback port or logged."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)
# Freshness = stored time - source updated_at; nearline targets seconds, backfills can be hours old.
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600, float("inf"))
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, float("inf"))


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.items_encoded = Counter("mixlm_worker_items_encoded", "Items encoded and written", registry=r)
        self.items_unchanged = Counter("mixlm_worker_items_unchanged", "Upserts skipped: content hash unchanged", registry=r)
        self.items_deleted = Counter("mixlm_worker_items_deleted", "Deletes and tombstones applied", registry=r)
        self.dlq = Counter("mixlm_worker_dlq", "Messages sent to the dead-letter topic", registry=r)
        self.batch_latency = Histogram("mixlm_worker_batch_seconds", "Time to process one batch (decode, encode, write)",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.freshness = Histogram("mixlm_worker_freshness_seconds", "Source updated_at -> stored",
                                   buckets=FRESHNESS_BUCKETS, registry=r)
        self.lag = Gauge("mixlm_worker_lag", "Messages behind the partition high-water mark", ["partition"], registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, port)

    def summary(self) -> dict[str, float]:
        """Totals for a log line when no port is configured."""
        out: dict[str, float] = {}
        for family in self.registry.collect():
            for s in family.samples:
                if s.name.endswith(("_total", "_count", "_sum")) or family.type == "gauge":
                    label = ",".join(f"{v}" for v in s.labels.values())
                    out[s.name + (f"[{label}]" if label else "")] = s.value
        return out
