"""`mixlm services`: real Kafka and Cassandra for development, tests and CI, started from Maven jars."""

from mixlm.services.cli import services

__all__ = ["services"]
