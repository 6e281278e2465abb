"""The thin Faust app: consume the items topic in batches, hand them to EncoderCore, then let offsets commit.

At-least-once: ``take_events`` acks a batch's events only after the loop body (process, write, DLQ produce)
returns, and Faust commits only acked offsets. A crash replays the uncommitted tail; the store's
timestamped, idempotent writes make the replay land in the same state. Bad input never stops the agent:
it goes to the DLQ. A store or DLQ outage pauses the agent (retrying) without committing anything.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from pathlib import Path

import faust
from aiokafka.errors import KafkaError

from encoder_worker.core import EncoderCore, Message
from ingest.kafka_config import kafka_ssl_context
from mixlm.errors import StoreUnavailable
from mixlm.settings import Settings

log = logging.getLogger(__name__)
RETRY_MAX_S = 30.0


async def retrying(what: str, call, first_delay_s: float = 0.5):
    """Retry what the outside world refuses (store down, DLQ produce failed) without acking the batch:
    its offsets stay uncommitted, so nothing is lost and the agent never stops."""
    delay = first_delay_s
    while True:
        try:
            return await call()
        except (StoreUnavailable, KafkaError) as e:
            log.warning("%s failed, retrying in %.1fs (offsets not committed): %s", what, delay, e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)


def faust_settings(settings: Settings) -> dict:
    """faust.App options from Settings (web server off and on loopback: Faust binds 0.0.0.0:6066 otherwise)."""
    broker = ";".join(f"kafka://{s.strip()}" for s in settings.kafka_bootstrap.split(",") if s.strip())
    options = dict(
        broker=broker,
        web_enabled=False,
        web_bind="127.0.0.1",
        datadir=str(Path(settings.home) / "faust" / settings.consumer_group),
        topic_partitions=settings.topic_partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.worker_session_timeout_s / 5),
        broker_commit_interval=1.0,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
    )
    context = kafka_ssl_context(settings)  # the same TLS settings every other Kafka client gets
    if settings.kafka_sasl_mechanism:
        options["broker_credentials"] = faust.SASLCredentials(
            username=settings.kafka_username, password=settings.kafka_password,
            mechanism=settings.kafka_sasl_mechanism, ssl_context=context)
    elif context is not None:
        options["broker_credentials"] = context
    return options


def create_app(settings: Settings, core: EncoderCore) -> faust.App:
    """The worker's Faust app around an already-built core (model and store are opened by the caller)."""
    options = faust_settings(settings)
    Path(options["datadir"]).parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = faust.App(settings.consumer_group, **options)
    items = app.topic(settings.items_topic, key_type=bytes, value_type=bytes, partitions=settings.topic_partitions)
    dlq = app.topic(settings.dlq_topic, key_type=bytes, value_type=bytes, partitions=1)
    metrics = core.metrics

    async def dead_letter(d):
        sent = await dlq.send(key=d.key, value=d.value, headers=d.headers())
        await sent  # on the broker before this batch's offsets may commit

    @app.agent(items)
    async def encode(stream):
        loop = asyncio.get_running_loop()
        async for events in stream.take_events(settings.worker_batch_size, within=settings.worker_batch_timeout_s):
            batch = [Message(e.message.key, e.message.value, e.message.partition, e.message.offset,
                             int(e.message.timestamp * 1000)) for e in events]
            # the core runs off the event loop, so heartbeats keep flowing during a long encode
            result = await retrying("batch", partial(loop.run_in_executor, None, core.process, batch))
            for d in result.dead_letters:
                await retrying("DLQ produce", partial(dead_letter, d))
            for tp in {e.message.tp for e in events}:
                last = max(e.message.offset for e in events if e.message.tp == tp)
                highwater = app.consumer.highwater(tp)
                if highwater is not None:
                    metrics.lag.labels(partition=str(tp.partition)).set(max(0, highwater - last - 1))
            log.info("batch of %d: %d encoded, %d deleted, %d unchanged, %d dead letters in %.3fs",
                     len(batch), len(result.embeddings), len(result.deletes), result.unchanged,
                     len(result.dead_letters), result.seconds)
            # Leaving the loop body acks these events; Faust then commits their offsets.

    if not settings.worker_metrics_port:
        @app.timer(interval=30.0)
        async def log_metrics():
            log.info("worker metrics %s", metrics.summary())

    return app
