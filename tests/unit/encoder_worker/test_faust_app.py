"""The Faust app is built without touching Kafka: check the settings that matter for safety."""

import asyncio
import socket
import urllib.request

import pytest

from encoder_worker.app import create_app, retrying
from encoder_worker.metrics import WorkerMetrics
from mixlm.errors import StoreUnavailable


def test_faust_app_keeps_its_web_server_off_and_on_loopback_and_reads_raw_bytes(core, tiny_settings):
    settings = tiny_settings.model_copy(update={"kafka_bootstrap": "127.0.0.1:9092", "consumer_group": "g1",
                                                "items_topic": "items.t", "topic_partitions": 6})
    app = create_app(settings, core)
    assert app.conf.web_enabled is False and app.conf.web_bind == "127.0.0.1"
    assert app.conf.id == "g1" and [str(u) for u in app.conf.broker] == ["kafka://127.0.0.1:9092"]
    assert app.conf.consumer_auto_offset_reset == "earliest"
    [agent] = app.agents.values()
    topic = agent.channel
    assert topic.get_topic_name() == "items.t" and topic.partitions == 6
    assert topic.key_type is bytes and topic.value_type is bytes


def test_metrics_are_served_on_a_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics = WorkerMetrics()
    metrics.items_encoded.inc(3)
    metrics.serve(port)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert "mixlm_worker_items_encoded_total 3.0" in body
    assert "mixlm_worker_freshness_seconds_bucket" in body


def test_retrying_waits_out_a_store_outage_and_returns_the_result():
    attempts = []

    async def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise StoreUnavailable("down")
        return "written"

    assert asyncio.run(retrying("batch", flaky, first_delay_s=0.01)) == "written"
    assert len(attempts) == 3


def test_retrying_lets_other_errors_through():
    async def broken():
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError):
        asyncio.run(retrying("batch", broken, first_delay_s=0.01))


def test_the_worker_gets_the_same_kafka_tls_and_sasl_settings_as_every_other_client(tiny_settings):
    from encoder_worker.app import faust_settings

    assert "broker_credentials" not in faust_settings(tiny_settings)  # PLAINTEXT: nothing to pass
    tls = faust_settings(tiny_settings.model_copy(update={"kafka_security_protocol": "SSL",
                                                          "kafka_ssl_check_hostname": True}))
    assert tls["broker_credentials"].check_hostname is True
    sasl = faust_settings(tiny_settings.model_copy(update={
        "kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512",
        "kafka_username": "app", "kafka_password": "s3cret"}))["broker_credentials"]
    assert sasl.username == "app" and sasl.mechanism.value == "SCRAM-SHA-512" and sasl.ssl_context is not None
    assert "s3cret" not in repr(sasl)
