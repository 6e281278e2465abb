"""Does a server answer? Kafka: cluster metadata through kafka-python. Cassandra: a query on system.local
through cassandra-driver (protocol v5, the default libev connection). Each returns a short description
or raises; `up` polls them until they pass."""

from __future__ import annotations

import logging
from contextlib import contextmanager


@contextmanager
def _quiet(*loggers: str):
    """The clients log every refused connection while a server is still booting; that is expected here."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def kafka_answers(host: str, port: int, timeout_s: float = 3.0) -> str:
    from kafka import KafkaAdminClient

    with _quiet("kafka"):
        admin = KafkaAdminClient(bootstrap_servers=f"{host}:{port}", request_timeout_ms=int(timeout_s * 1000),
                                 bootstrap_timeout_ms=int(timeout_s * 1000))
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
    brokers = cluster.get("brokers", [])
    if not brokers:
        raise RuntimeError("no broker in the cluster metadata yet")
    return f"cluster {cluster.get('cluster_id')}, {len(brokers)} broker(s)"


def cassandra_answers(host: str, port: int, timeout_s: float = 3.0) -> str:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=timeout_s)
    with _quiet("cassandra"):
        cluster = Cluster([host], port=port, protocol_version=5, connect_timeout=timeout_s,
                          control_connection_timeout=timeout_s, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version FROM system.local", timeout=timeout_s).one()
        finally:
            cluster.shutdown()
    return f"Cassandra {row.release_version}"


PROBES = {"kafka": kafka_answers, "cassandra": cassandra_answers}
