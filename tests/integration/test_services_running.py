"""Against the servers `mixlm services up` started: they answer, `up` again reuses them, and
`mixlm store` inspects what a writer put in the real Cassandra."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from feature_store.cassandra import CassandraStore
from mixlm.cli import cli
from mixlm.codec import tokens_to_bytes
from mixlm.schemas import ItemEmbedding, ItemText
from mixlm.services.probes import cassandra_answers, kafka_answers
from mixlm.settings import Settings

pytestmark = pytest.mark.integration


def test_both_servers_answer_their_protocol(kafka_bootstrap, cassandra_hosts):
    host, port = kafka_bootstrap.split(":")
    assert "1 broker(s)" in kafka_answers(host, int(port))
    assert cassandra_answers(cassandra_hosts[0], 9042).startswith("Cassandra 5.0.")


def test_up_again_reuses_the_running_servers(kafka_bootstrap, cassandra_hosts):
    before = CliRunner().invoke(cli, ["services", "status"])
    assert before.exit_code == 0, before.output
    again = CliRunner().invoke(cli, ["services", "up"])
    assert again.exit_code == 0, again.output
    assert again.output.count("already running") == 2
    pids = lambda out: re.findall(r"pid (\d+)", out)  # noqa: E731
    assert pids(again.output) == pids(before.output)


def test_store_init_and_inspect_on_the_real_cassandra(cassandra_hosts):
    keyspace = "mixlm_cli_test"
    env = {"MIXLM_CASSANDRA_HOSTS": f'["{cassandra_hosts[0]}"]', "MIXLM_CASSANDRA_KEYSPACE": keyspace}
    result = CliRunner().invoke(cli, ["store", "init"], env=env)
    assert result.exit_code == 0 and f"keyspace {keyspace}" in result.output, result.output
    store = CassandraStore(Settings(cassandra_hosts=cassandra_hosts, cassandra_keyspace=keyspace))
    try:
        store.put_items([ItemText(item_id="job-1", title="Welder", text="MIG", content_hash=b"\x01" * 16, updated_at=5)])
        store.put_embeddings([ItemEmbedding(model_version="v9", item_id="job-1", tokens=tokens_to_bytes(torch.ones(2, 4), "bf16"),
                                            n_tokens=2, dim=4, dtype="bf16", content_hash=b"\x01" * 16,
                                            source_updated_at=5, encoded_at=6)])
        result = CliRunner().invoke(cli, ["store", "inspect", "job-1", "--model-version", "v9"], env=env)
        assert result.exit_code == 0, result.output
        assert "title: Welder" in result.output and "shape: [2, 4]  dtype: bf16" in result.output
        assert "stale" not in result.output
    finally:
        store._connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
        store.close()
