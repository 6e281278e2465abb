"""Private Kafka/Cassandra instances for fault tests: their own home and ports, so stopping them never touches
the shared servers on 9092/9042. A plain module, not a conftest: the test folders share one module namespace."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from mixlm.settings import Settings

MIXLM = str(Path(sys.executable).parent / "mixlm")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def private_services(settings: Settings, server: str, *args: str) -> str:
    """`mixlm services ARGS --only SERVER` for the instance these settings describe."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | {
        "MIXLM_HOME": str(settings.home),
        "MIXLM_KAFKA_PORT": str(settings.kafka_port),
        "MIXLM_KAFKA_CONTROLLER_PORT": str(settings.kafka_controller_port),
        "MIXLM_KAFKA_HEAP_MB": str(settings.kafka_heap_mb),
        "MIXLM_CASSANDRA_PORT": str(settings.cassandra_port),
        "MIXLM_CASSANDRA_STORAGE_PORT": str(settings.cassandra_storage_port),
        "MIXLM_CASSANDRA_JMX_PORT": str(settings.cassandra_jmx_port),
        "MIXLM_CASSANDRA_HEAP_MB": str(settings.cassandra_heap_mb),
    }
    proc = subprocess.run([MIXLM, "services", *args, "--only", server], env=env, capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
