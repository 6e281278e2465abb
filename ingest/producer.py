"""Publishing job updates: a kafka-python producer (key = item_id, acks=all, idempotent retries,
compression). Delivery outcomes are counted in callbacks so `mixlm post` can report sent/failed."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Protocol

import msgspec
from kafka import KafkaProducer
from kafka.errors import KafkaError

from ingest.kafka_config import kafka_config
from mixlm.errors import ServiceError
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode


class Publisher(Protocol):
    """Where job updates go: Kafka (JobProducer) or the embedded in-process bus (encoder_worker.bus)."""

    delivered: int
    failures: Counter

    def publish(self, update: JobUpdate) -> None: ...

    def flush(self, timeout_s: float | None = None) -> None: ...

    def close(self) -> None: ...


class JobProducer:
    """Kafka publisher of JobUpdates to the items topic (or any topic, for the DLQ and tests)."""

    def __init__(self, settings: Settings, topic: str | None = None, **overrides):
        self.topic = topic or settings.items_topic
        self.delivered = 0
        self.failures: Counter = Counter()
        options = dict(
            acks="all",
            # Idempotence makes retries safe: the broker drops duplicates of a retried batch, and
            # ordering per partition (per item_id) holds with up to 5 requests in flight.
            enable_idempotence=True,
            retries=2**31 - 1,
            max_in_flight_requests_per_connection=5,
            compression_type=None if settings.kafka_compression == "none" else settings.kafka_compression,
            linger_ms=5,
            key_serializer=None,
            value_serializer=None,
        )
        try:
            self._producer = KafkaProducer(**kafka_config(settings), **(options | overrides))
        except KafkaError as e:
            raise ServiceError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {e}") from e

    def publish(self, update: JobUpdate) -> None:
        self.send(update.item_id.encode(), _encode(update))

    def send(self, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None,
             topic: str | None = None) -> None:
        """Send raw bytes (a null value is a tombstone); the outcome is counted when the broker answers."""
        future = self._producer.send(topic or self.topic, key=key, value=value, headers=headers or [])
        future.add_callback(self._ok).add_errback(self._failed)

    def _ok(self, _metadata) -> None:
        self.delivered += 1

    def _failed(self, exc: BaseException) -> None:
        log.warning("delivery failed: %s", exc)
        self.failures[f"{type(exc).__name__}: {exc}"] += 1

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self) -> None:
        self._producer.close()


def open_publisher(settings: Settings) -> Publisher:
    """Kafka when a bootstrap is configured, else the embedded bus that encodes in this process."""
    if settings.kafka_bootstrap:
        return JobProducer(settings)
    from encoder_worker.bus import open_embedded_bus

    return open_embedded_bus(settings)
