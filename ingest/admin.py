"""Topic admin: the items topic (key = item_id, Settings.topic_partitions partitions) and the DLQ."""

from __future__ import annotations

import logging

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ingest.kafka_config import kafka_config
from mixlm.errors import ServiceError
from mixlm.settings import Settings

log = logging.getLogger(__name__)


def topic_specs(settings: Settings, replication_factor: int = 1) -> dict[str, dict]:
    """The topics the pipeline needs. The items topic's partition count bounds how many encoder
    workers can share the load (DESIGN.md, scale-out); the DLQ needs little parallelism."""
    return {
        settings.items_topic: {"num_partitions": settings.topic_partitions, "replication_factor": replication_factor},
        settings.dlq_topic: {"num_partitions": 1, "replication_factor": replication_factor},
    }


def _admin(settings: Settings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**kafka_config(settings))
    except KafkaError as e:
        raise ServiceError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {e}") from e


def create_topics(settings: Settings, replication_factor: int = 1) -> dict[str, str]:
    """Create missing topics (idempotent) -> {topic: "created" | "exists"}."""
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        wanted = {t: spec for t, spec in topic_specs(settings, replication_factor).items() if t not in existing}
        outcome = {t: "exists" for t in topic_specs(settings) if t in existing}
        if wanted:
            try:
                admin.create_topics(wanted, wait_for_metadata=True)
            except TopicAlreadyExistsError:  # raced with another creator: fine
                pass
            outcome |= {t: "created" for t in wanted}
            log.info("created topics %s", sorted(wanted))
        return outcome
    finally:
        admin.close()


def delete_topics(settings: Settings) -> None:
    """Delete the settings' items and DLQ topics and Faust's leader topic for its group (runs and tests that
    made topics of their own); topics that do not exist are ignored."""
    admin = _admin(settings)
    try:
        admin.delete_topics([settings.items_topic, settings.dlq_topic,
                             f"{settings.consumer_group}-__assignor-__leader"], raise_errors=False)
    finally:
        admin.close()


def list_topics(settings: Settings) -> dict[str, int]:
    """Topic -> partition count (internal topics left out)."""
    admin = _admin(settings)
    try:
        return {t["name"]: len(t["partitions"]) for t in admin.describe_topics() if not t.get("is_internal")}
    finally:
        admin.close()
