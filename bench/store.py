"""`mixlm bench store`: feature-store latency and write throughput, real Cassandra vs embedded SQLite.

Writes n items' tokens (T_S x dim bf16) in batches of 500, then times random reads of 50 ids (one /rank
request's candidates) and 1,000 ids (MAX_READ). The Python GC is frozen after set-up: the notes show the
client's collector, not the server, makes the p99 tail (notes/services.md).
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import click
import torch
from tqdm import tqdm

from bench.results import record
from feature_store.base import FeatureStore
from mixlm.cli import settings_of
from mixlm.codec import tokens_to_bytes
from mixlm.schemas import ItemEmbedding

BENCH_KEYSPACE = "mixlm_bench"
WRITE_BATCH = 500


def _rows(n_items: int, n_tokens: int, dim: int) -> list[ItemEmbedding]:
    tokens = torch.randn(n_items, n_tokens, dim, generator=torch.Generator().manual_seed(0))
    now = int(time.time() * 1000)
    return [ItemEmbedding(model_version="bench", item_id=f"job-{i:07d}", tokens=tokens_to_bytes(tokens[i], "bf16"),
                          n_tokens=n_tokens, dim=dim, dtype="bf16", content_hash=i.to_bytes(16, "little"),
                          source_updated_at=now, encoded_at=now) for i in range(n_items)]


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_backend(name: str, store: FeatureStore, rows: list[ItemEmbedding], reads: int) -> list[list]:
    store.init()
    t0 = time.perf_counter()
    for i in tqdm(range(0, len(rows), WRITE_BATCH), desc=f"{name} writes", leave=False):
        store.put_embeddings(rows[i:i + WRITE_BATCH])
    write_s = time.perf_counter() - t0
    out = [[name, "write", WRITE_BATCH, "", "", round(len(rows) / write_s)]]
    ids = [r.item_id for r in rows]
    rng = random.Random(0)
    for _ in range(20):  # warm-up: connections, prepared statements, page cache
        store.get_embeddings("bench", rng.sample(ids, 50))
    gc.collect()
    gc.freeze()
    try:
        for n_ids in (50, 1000):
            latencies = []
            for _ in tqdm(range(reads), desc=f"{name} {n_ids}-id reads", leave=False):
                batch = rng.sample(ids, n_ids)
                t = time.perf_counter()
                got = store.get_embeddings("bench", batch)
                latencies.append((time.perf_counter() - t) * 1000)
                assert len(got) == n_ids, f"{name}: read {len(got)} of {n_ids} ids"
            out.append([name, "read", n_ids, _percentile(latencies, 50), _percentile(latencies, 99),
                        round(n_ids * reads / (sum(latencies) / 1000))])
    finally:
        gc.unfreeze()
    return out


@click.command()
@click.option("--backend", type=click.Choice(["both", "cassandra", "sqlite"]), default="both", show_default=True)
@click.option("--items", "n_items", type=int, default=5000, show_default=True, help="Items written, then read from.")
@click.option("--reads", type=int, default=200, show_default=True, help="Timed reads per size (50 and 1,000 ids).")
@click.option("--n-tokens", type=int, default=1, show_default=True, help="T_S: tokens per item.")
@click.option("--dim", type=int, default=576, show_default=True, help="Token width (SmolLM2-135M: 576).")
@click.option("--read-batch", type=int, multiple=True,
              help="Cassandra ids per IN select (1 = one select per id); repeat to compare. Default: the setting.")
@click.pass_context
def store(ctx: click.Context, backend: str, n_items: int, reads: int, n_tokens: int, dim: int,
          read_batch: tuple[int, ...]) -> None:
    """p50/p99 of 50-id and 1,000-id reads and writes/s, against Cassandra (MIXLM_CASSANDRA_HOSTS, default the
    one from `mixlm services up`) and SQLite (a temporary file). Appends to bench/RESULTS.md."""
    from feature_store.cassandra import CassandraStore
    from feature_store.sqlite import SQLiteStore

    settings = settings_of(ctx)
    load_before = ", ".join(f"{v:.1f}" for v in os.getloadavg())  # other work on the box shows in the tail
    rows = _rows(max(n_items, 1000), n_tokens, dim)
    table: list[list] = []
    if backend in ("both", "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = SQLiteStore(Path(tmp) / "bench.sqlite")
            table += run_backend("sqlite (WAL)", sqlite, rows, reads)
            sqlite.close()
    if backend in ("both", "cassandra"):
        for k in read_batch or (settings.cassandra_read_batch,):
            cassandra = CassandraStore(settings.model_copy(update={
                "cassandra_keyspace": BENCH_KEYSPACE, "cassandra_read_batch": k,
                "cassandra_hosts": settings.cassandra_hosts or [settings.services_bind]}))
            mode = "one select per id" if k == 1 else f"IN chunks of {k}"
            try:
                table += run_backend(f"cassandra ({settings.cassandra_consistency}, {mode})", cassandra, rows, reads)
                cassandra._connect().execute(f"DROP KEYSPACE IF EXISTS {BENCH_KEYSPACE}", timeout=60)
            finally:
                cassandra.close()
    header = ["backend", "op", "ids per call", "p50 ms", "p99 ms", "rows/s"]
    click.echo(" | ".join(header))
    for row in table:
        click.echo(" | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    record("Feature store", header, table,
           note=f"load average before the run {load_before}, after {load}; {len(rows):,} items x [{n_tokens}, {dim}] bf16, {reads} timed reads per size, writes in batches of "
                f"{WRITE_BATCH}; loopback; Python GC frozen after set-up; concurrency {settings.cassandra_read_concurrency}")
