"""Shared fixtures. Tests build their own Settings; nothing reads the environment at import time."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from mixlm.settings import Settings

REAL_HOME = Settings().home  # converted model cache is shared across tests (built once, ~20 s)
KAFKA = ("127.0.0.1", 9092)
CASSANDRA = ("127.0.0.1", 9042)


def _listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(addr) == 0


@pytest.fixture
def tiny_settings(tmp_path: Path) -> Settings:
    """Tiny random model, fp32, SQLite store in tmp_path, no trained weights."""
    return Settings(home=REAL_HOME, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                    sqlite_path=tmp_path / "store.sqlite", weights_dir=tmp_path / "weights")


@pytest.fixture(scope="session")
def tiny_model():
    from mixlm.weights import build_mixlm

    return build_mixlm(Settings(home=REAL_HOME, base_model="tiny", dtype="fp32", weights="none", device="cpu"))


@pytest.fixture(scope="session")
def real_model():
    """The real SmolLM2-135M weights (untrained base), fp32 for exact comparisons."""
    from mixlm.weights import build_mixlm

    return build_mixlm(Settings(home=REAL_HOME, base_model="smollm2-135m", dtype="fp32", weights="none", device="cpu"))


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The real Kafka from `mixlm services up`. Fails (never skips) when it is not running."""
    if not _listening(KAFKA):
        pytest.fail(f"Kafka is not listening on {KAFKA[0]}:{KAFKA[1]}: run `mixlm services up` first")
    return f"{KAFKA[0]}:{KAFKA[1]}"


@pytest.fixture(scope="session")
def cassandra_hosts() -> list[str]:
    """The real Cassandra from `mixlm services up`. Fails (never skips) when it is not running."""
    if not _listening(CASSANDRA):
        pytest.fail(f"Cassandra is not listening on {CASSANDRA[0]}:{CASSANDRA[1]}: run `mixlm services up` first")
    return [CASSANDRA[0]]
