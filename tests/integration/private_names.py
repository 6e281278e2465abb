"""Clean-up for integration tests that work under private names on the shared servers from `mixlm services up`:
their own topics (Faust's own included) and their own keyspace. A plain module, not a conftest: the test folders
share one module namespace, so its basename is unique across tests/."""

from __future__ import annotations

from collections.abc import Sequence


def drop_private_names(bootstrap: str, topic_prefixes: Sequence[str], hosts: Sequence[str], keyspace: str) -> None:
    """Delete every topic whose name starts with one of `topic_prefixes`, then the keyspace. Faust makes topics
    of its own per consumer group (e.g. `<group>-__assignor-__leader`): a group-name prefix catches them."""
    from cassandra.cluster import Cluster
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        ours = [t for t in admin.list_topics() if t.startswith(tuple(topic_prefixes))]
        if ours:
            admin.delete_topics(ours, raise_errors=False)
    finally:
        admin.close()
    cluster = Cluster(list(hosts), protocol_version=5)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=60)
    finally:
        cluster.shutdown()
