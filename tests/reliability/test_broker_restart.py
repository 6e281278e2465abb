"""Kafka broker restarted mid-stream (issue 10, "Faults"): the running `mixlm worker` (a subprocess, Faust)
rides it out, resumes, and every posted update ends in the store. The broker is a PRIVATE one (own
MIXLM_HOME and ports, `mixlm services up/down --only kafka`): the shared Kafka on 9092 is left alone."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from encoder_worker.launch import free_port, spawn_worker, stop_worker
from feature_store.base import open_store
from ingest.admin import create_topics
from ingest.producer import JobProducer
from mixlm.schemas import JobUpdate
from mixlm.services import lifecycle, servers
from mixlm.settings import Settings
from private_instances import private_services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
# Enough before the restart that even a quiet machine is still encoding when the broker goes down.
FIRST, TOTAL = 4000, 4200  # posted before the restart, in all




@pytest.fixture
def private_kafka(tmp_path, kafka_bootstrap):
    home = tmp_path / "home"
    s = Settings(home=home, kafka_port=free_port(), kafka_controller_port=free_port(), kafka_heap_mb=256)
    private_services(s, "kafka", "up")
    try:
        yield s
    finally:
        private_services(s, "kafka", "down")


def _wait(predicate, timeout_s: float, what: str, worker: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"worker exited {worker.returncode}:\n{log.read_text()[-3000:]}"
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout_s} s:\n{log.read_text()[-3000:]}")


def test_worker_rides_out_a_broker_restart_and_loses_nothing(private_kafka, tiny_settings, tiny_model, tmp_path):
    run = uuid.uuid4().hex[:8]
    settings = tiny_settings.model_copy(update={
        "kafka_bootstrap": f"127.0.0.1:{private_kafka.kafka_port}", "items_topic": f"rel.items.{run}",
        "dlq_topic": f"rel.dlq.{run}", "consumer_group": f"rel.encoder.{run}", "topic_partitions": 4,
        "worker_batch_size": 8, "worker_batch_timeout_s": 0.2, "worker_session_timeout_s": 6})
    create_topics(settings)
    store = open_store(settings)
    store.init()
    base = int(time.time() * 1000)

    def post(ids: range) -> None:
        producer = JobProducer(settings)
        for i in ids:
            producer.publish(JobUpdate(item_id=f"b{i}", op="upsert", updated_at=base + i, title=f"Role {i}",
                                       text=f"Posting {i}: forklifts, welding, night shifts."))
        producer.flush()
        producer.close()

    def stored() -> int:
        return _count(store, tiny_model.model_version)

    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, log)
    try:
        _wait(lambda: "Worker]: Ready" in log.read_text(errors="replace"), 90, "worker ready", worker, log)
        post(range(0, FIRST))
        _wait(lambda: stored() >= 10, 60, "first writes", worker, log)
        # `mixlm services down`'s own function, in-process: the CLI's start-up time would let the worker drain
        print(lifecycle.bring_down(servers.servers(private_kafka)["kafka"]))
        at_down = stored()
        assert at_down < FIRST, "the worker drained everything before the broker went: nothing mid-stream was tested"
        time.sleep(3)
        assert worker.poll() is None, log.read_text()[-3000:]
        private_services(private_kafka, "kafka", "up")
        post(range(FIRST, TOTAL))
        _wait(lambda: stored() == TOTAL, 360, "all updates written after the restart", worker, log)
        assert worker.poll() is None  # the same process resumed: no restart was needed
    finally:
        stop_worker(worker)
        store.close()
    lost = TOTAL - stored_after(settings, tiny_model)
    print(f"faults: 1 broker restart survived ({at_down}/{FIRST} written when it went down); {TOTAL} updates posted; "
          f"items lost {lost}")
    assert lost == 0


def stored_after(settings: Settings, model) -> int:
    store = open_store(settings)
    try:
        return _count(store, model.model_version)
    finally:
        store.close()


def _count(store, model_version: str) -> int:
    ids = [f"b{i}" for i in range(TOTAL)]
    return sum(len(store.get_embeddings(model_version, ids[s : s + 500])) for s in range(0, TOTAL, 500))
