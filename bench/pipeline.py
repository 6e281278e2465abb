"""`mixlm bench pipeline`: nearline freshness (post -> rankable) and encoder throughput.

- encoder items/s: one MixLM.encode_items call per batch of real postings, as the worker makes it.
- freshness: updates are posted at a steady rate with updated_at = now; the bench polls the store the
  ranker reads (get_embeddings under the model version) and takes, per item, the first time it is there
  minus its updated_at. With Kafka configured the path is producer -> topic -> `mixlm worker` (a child
  process) -> store; without, the embedded bus in this process.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from pathlib import Path

import click
from tqdm import tqdm

from bench.results import record
from mixlm.cli import settings_of
from mixlm.schemas import JobUpdate

DEFAULT_DATA = Path("/work/shared/data/jobs_linkedin_indeed/docs.jsonl")
POLL_S = 0.01


def _postings(path: Path, n: int, text_chars: int) -> list[tuple[str, str]]:
    rows = []
    if path.exists():
        with open(path) as f:
            for line in f:
                doc = json.loads(line)
                rows.append((doc["title"], doc["text"][:text_chars]))
    if not rows:  # no data set here: synthetic postings of the same length
        rows = [(f"Job {i}", ("Responsibilities include planning, reporting and support. " * 40)[:text_chars])
                for i in range(64)]
    return [rows[i % len(rows)] for i in range(n)]


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def encoder_throughput(model, texts: list[str], batch_size: int) -> float:
    model.encode_items(texts[:batch_size], batch_size=batch_size)  # warm-up
    started = time.perf_counter()
    for s in tqdm(range(0, len(texts), batch_size), desc="encode", leave=False):
        model.encode_items(texts[s : s + batch_size], batch_size=batch_size)
    return len(texts) / (time.perf_counter() - started)


def measure_freshness(publish, store, model_version: str, postings, rate: float, run: str) -> list[float]:
    """Post at `rate`/s; return post -> rankable seconds per item."""
    sent: dict[str, int] = {}
    lock = threading.Lock()

    def produce():
        for i, (title, text) in enumerate(postings):
            now = time.time_ns() // 1_000_000
            item_id = f"{run}-{i}"
            with lock:
                sent[item_id] = now
            publish(JobUpdate(item_id=item_id, op="upsert", updated_at=now, title=title, text=text))
            time.sleep(1 / rate)

    sender = threading.Thread(target=produce, daemon=True)
    sender.start()
    seen: dict[str, float] = {}
    deadline = time.monotonic() + len(postings) / rate + 300
    with tqdm(total=len(postings), desc="rankable", leave=False) as bar:
        while len(seen) < len(postings) and time.monotonic() < deadline:
            with lock:
                pending = [i for i in sent if i not in seen][:1000]
            if pending:
                got = store.get_embeddings(model_version, pending)
                now = time.time_ns() / 1e6
                for item_id in got:
                    seen[item_id] = (now - sent[item_id]) / 1000
                bar.update(len(got))
            time.sleep(POLL_S)
    if len(seen) < len(postings):
        raise click.ClickException(f"only {len(seen)}/{len(postings)} items became rankable in time")
    return list(seen.values())


@click.command()
@click.option("--items", "n_items", default=200, show_default=True, help="Updates posted for the freshness run.")
@click.option("--rate", default=10.0, show_default=True, help="Posts per second (keep it below encoder capacity).")
@click.option("--encode-items", default=256, show_default=True, help="Postings encoded for items/s.")
@click.option("--text-chars", default=1000, show_default=True, help="Postings are cut to this many characters.")
@click.option("--data", type=click.Path(path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--no-record", is_flag=True, help="Print only; do not append to bench/RESULTS.md.")
@click.pass_context
def pipeline(ctx, n_items, rate, encode_items, text_chars, data, no_record):
    """Freshness p50/p99 (post -> rankable) and encoder items/s with the configured model and transport."""
    from encoder_worker.core import EncoderCore
    from feature_store.base import open_store
    from mixlm import prompts
    from mixlm.weights import build_mixlm

    settings = settings_of(ctx)
    load = os.getloadavg()[0]  # the machine is shared: say how busy it was
    run = f"bench{uuid.uuid4().hex[:8]}"
    model = build_mixlm(settings)
    postings = _postings(data, max(encode_items, n_items), text_chars)
    texts = [prompts.item_text(t, x) for t, x in postings[:encode_items]]
    ips = encoder_throughput(model, texts, settings.worker_batch_size)

    store = open_store(settings)
    store.init()
    transport = "kafka" if settings.kafka_bootstrap else "embedded"
    try:
        if transport == "kafka":
            freshness = _kafka_freshness(settings, store, model.model_version, postings[:n_items], rate, run)
        else:
            from encoder_worker.bus import EmbeddedBus

            bus = EmbeddedBus(EncoderCore(model, store, settings), settings.worker_batch_size,
                              settings.worker_batch_timeout_s)
            try:
                freshness = measure_freshness(bus.publish, store, model.model_version, postings[:n_items], rate, run)
            finally:
                bus.close()
    finally:
        store.close()

    where = f"{settings.base_model} {settings.dtype} on {settings.resolved_device()}"
    store_name = "cassandra" if settings.cassandra_hosts else "sqlite"
    header = ["measure", "model", "transport", "store", "items", "value", "p50 s", "p99 s"]
    rows = [
        ["encoder items/s", where, "-", "-", len(texts), round(ips, 1), "", ""],
        [f"post->rankable @ {rate:g}/s", where, transport, store_name, n_items, "", round(_pct(freshness, 50), 3),
         round(_pct(freshness, 99), 3)],
    ]
    note = (f"postings cut to {text_chars} chars; worker batch {settings.worker_batch_size}, "
            f"timeout {settings.worker_batch_timeout_s}s; T_S={settings.n_item_tokens}; "
            f"1-min load average {load:.1f} at start (shared machine)")
    for row in rows:
        click.echo(" | ".join(str(v) for v in row))
    if not no_record:
        record("pipeline", header, rows, note)


def _kafka_freshness(settings, store, model_version, postings, rate, run) -> list[float]:
    """Through a real topic and a `mixlm worker` child process (own topic and group per run)."""
    import tempfile

    from kafka.admin import KafkaAdminClient

    from encoder_worker.launch import spawn_worker
    from ingest.admin import create_topics
    from ingest.kafka_config import kafka_config
    from ingest.producer import JobProducer

    settings = settings.model_copy(update={"items_topic": f"{run}.items", "dlq_topic": f"{run}.dlq",
                                           "consumer_group": f"{run}.encoder"})
    create_topics(settings)
    log_path = Path(tempfile.gettempdir()) / f"{run}-worker.log"
    worker = spawn_worker(settings, log_path)
    producer = JobProducer(settings, linger_ms=0)  # one posting at a time: no batching delay in the measure
    try:
        def publish(update):
            producer.publish(update)
            producer.flush()

        warm = [(f"warm-up {i}", "Warm-up posting.") for i in range(2)]  # waits out model load and group join
        measure_freshness(publish, store, model_version, warm, 2.0, f"{run}-warm")
        return measure_freshness(publish, store, model_version, postings, rate, run)
    finally:
        producer.close()
        worker.terminate()
        worker.wait(30)
        admin = KafkaAdminClient(**kafka_config(settings))
        try:
            admin.delete_topics([settings.items_topic, settings.dlq_topic,
                                 f"{settings.consumer_group}-__assignor-__leader"], raise_errors=False)  # Faust's own
        finally:
            admin.close()
