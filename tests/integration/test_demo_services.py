"""`mixlm demo --kafka --cassandra` against the real servers from `mixlm services up`: the corpus goes to a
Kafka topic, a real `mixlm worker` process encodes it into Cassandra, and the ranker serves from there.
Own topic, consumer group and keyspace, so other tests' data is neither read nor touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid

import pytest

from mixlm.data import load_postings, load_queries
from mixlm.settings import Settings
from private_names import drop_private_names

pytestmark = pytest.mark.integration


def test_demo_runs_through_real_kafka_a_worker_process_and_cassandra(kafka_bootstrap, cassandra_hosts):
    tag = uuid.uuid4().hex[:8]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | {
        "MIXLM_KAFKA_BOOTSTRAP": kafka_bootstrap, "MIXLM_CASSANDRA_HOSTS": f'["{cassandra_hosts[0]}"]',
        "MIXLM_ITEMS_TOPIC": f"demo-test-{tag}", "MIXLM_DLQ_TOPIC": f"demo-test-{tag}.dlq",
        "MIXLM_CONSUMER_GROUP": f"demo-test-{tag}", "MIXLM_CASSANDRA_KEYSPACE": f"demo_test_{tag}",
        "MIXLM_TOPIC_PARTITIONS": "2", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "COLUMNS": "200"}
    # The worker's Faust state lives under <home>/faust/<consumer group>: unique here too.
    try:
        run = subprocess.run([sys.executable, "-c", "from mixlm.cli import main; main()", "demo", "--kafka",
                              "--cassandra", "--base-model", "tiny", "--weights", "none", "--exit", "--top-k", "2"],
                             env=env, capture_output=True, text=True, timeout=900)
    finally:
        drop_private_names(kafka_bootstrap, [f"demo-test-{tag}"], cassandra_hosts, env["MIXLM_CASSANDRA_KEYSPACE"])
        shutil.rmtree(Settings().home / "faust" / f"demo-test-{tag}", ignore_errors=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert f"bus     Kafka {kafka_bootstrap}" in out and "store   Cassandra" in out
    assert f"{len(load_postings())} postings sent to demo-test-{tag} and stored by the worker" in out
    for q in load_queries():
        assert q.text in out
    assert out.count("round trip") == len(load_queries())
