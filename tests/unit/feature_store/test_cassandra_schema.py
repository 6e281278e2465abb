"""The Cassandra backend's pure parts; its behaviour is proven against the real server in tests/contract."""

from __future__ import annotations

import pytest

from feature_store.cassandra import CassandraStore, schema
from mixlm.settings import Settings


def test_schema_keys_tokens_by_model_version_and_item_id():
    cql = " ".join(schema("mixlm", 3))
    assert "'replication_factor': 3" in cql
    assert "PRIMARY KEY ((model_version, item_id))" in cql
    assert "mixlm.items (\n            item_id text PRIMARY KEY" in cql


@pytest.mark.parametrize("name", ["mixlm; DROP", "1abc", "", "a-b"])
def test_schema_refuses_keyspace_names_that_are_not_identifiers(name):
    with pytest.raises(ValueError):
        schema(name, 1)


def test_store_connects_lazily_and_parses_the_consistency_level():
    store = CassandraStore(Settings(cassandra_hosts=["127.0.0.1"], cassandra_port=1, cassandra_consistency="quorum"))
    assert store._session is None
    from cassandra import ConsistencyLevel

    assert store.consistency == ConsistencyLevel.QUORUM


def test_unknown_consistency_level_fails_at_construction():
    with pytest.raises(KeyError):
        CassandraStore(Settings(cassandra_hosts=["127.0.0.1"], cassandra_consistency="MOST"))
