"""`mixlm bench pipeline`: nearline freshness (post -> rankable) and encoder throughput.

- encoder items/s: one MixLM.encode_items call per batch of real postings, as the worker makes it.
- freshness: updates are posted at a steady rate with updated_at = now; the bench polls the store the
  ranker reads (get_embeddings under the model version) and takes, per item, the first time it is there
  minus its updated_at. With Kafka configured the path is producer -> topic -> `mixlm worker` (a child
  process) -> store; without, the embedded bus in this process.
- burst (`--burst N`, Kafka only): N updates posted as fast as the producer goes to a fresh topic, drained by a
  real `mixlm worker` process into a store of the run's own (Cassandra keyspace or SQLite file); consumer-group
  lag (end offsets - committed offsets) and the worker's RSS are sampled while it drains.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import click
from tqdm import tqdm

from bench.http_load import rss_bytes
from bench.results import record
from mixlm.cli import settings_of
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings

DEFAULT_DATA = Path("../shared/data/jobs_linkedin_indeed/docs.jsonl")  # the data folder beside the checkout
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
@click.option("--burst", type=int, default=0, help="Instead: post this many updates at once through Kafka and "
              "measure how the worker drains them (max lag, drain time, items/s, items stored).")
@click.option("--no-record", is_flag=True, help="Print only; do not append to bench/RESULTS.md.")
@click.pass_context
def pipeline(ctx, n_items, rate, encode_items, text_chars, data, burst, no_record):
    """Freshness p50/p99 (post -> rankable) and encoder items/s with the configured model and transport."""
    if burst:
        return burst_bench(settings_of(ctx), burst, text_chars, data, no_record)
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
            f"timeout {settings.worker_batch_timeout_s}s; T_S={model.n_item_tokens}; "
            f"1-min load average {load:.1f} at start (shared machine)")
    for row in rows:
        click.echo(" | ".join(str(v) for v in row))
    if not no_record:
        record("pipeline", header, rows, note)


def _kafka_freshness(settings, store, model_version, postings, rate, run) -> list[float]:
    """Through a real topic and a `mixlm worker` child process (own topic and group per run)."""
    from encoder_worker.launch import spawn_worker
    from ingest.admin import create_topics, delete_topics
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
        delete_topics(settings)


# --- burst: N updates at once, drained by a real worker ----------------------------------------------------
@dataclass
class LagSample:
    t_s: float  # since the first post
    end: int  # end offsets of the items topic, summed over partitions
    committed: int  # the worker group's committed offsets, summed
    rss_mb: float  # the worker process's resident memory

    @property
    def lag(self) -> int:
        return self.end - self.committed


@dataclass
class BurstReport:
    posted: int
    post_s: float  # first post -> the producer's flush returned
    drain_s: float  # first post -> every offset committed (lag 0 with all N on the topic)
    rss_ready_mb: float  # the worker's RSS once ready, before the burst
    samples: list[LagSample] = field(default_factory=list)

    @property
    def max_lag(self) -> int:
        return max(s.lag for s in self.samples)

    @property
    def rss_max_mb(self) -> float:
        return max(s.rss_mb for s in self.samples)


def group_offsets(admin, settings: Settings) -> tuple[int, int]:
    """(end offsets, committed offsets) of the consumer group on the items topic, summed over its partitions.
    A partition the group never committed counts as 0 committed (the topic is consumed from the earliest)."""
    from kafka import TopicPartition
    from kafka.admin import OffsetSpec

    tps = [TopicPartition(settings.items_topic, p) for p in range(settings.topic_partitions)]
    ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    committed = admin.list_group_offsets({settings.consumer_group: tps}).get(settings.consumer_group, {})
    return (sum(o.offset for o in ends.values()),
            sum(max(0, committed[tp].offset) for tp in tps if tp in committed))


def rss_mb(pid: int) -> float:
    try:
        return rss_bytes(pid) / 2**20
    except ProcessLookupError:  # the worker died: the drain loop reports its exit right after
        return 0.0


def _wait_worker_ready(worker: subprocess.Popen, log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while "Worker]: Ready" not in log_path.read_text(errors="replace"):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise click.ClickException(f"worker not ready (exit {worker.poll()}); log tail:\n"
                                       f"{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.5)


def run_burst(settings: Settings, updates: list[JobUpdate], log_path: Path, sample_s: float = 0.5,
              timeout_s: float = 1800) -> BurstReport:
    """Start `mixlm worker` on settings' topic and group, post every update as fast as the producer goes once it
    is ready, sample lag and RSS until every offset is committed, stop the worker. The caller gives a fresh
    topic, group and store, and cleans them up."""
    from kafka.admin import KafkaAdminClient

    from encoder_worker.launch import spawn_worker, stop_worker
    from ingest.admin import create_topics
    from ingest.kafka_config import kafka_config
    from ingest.producer import JobProducer

    create_topics(settings)
    worker = spawn_worker(settings, log_path)
    admin = KafkaAdminClient(**kafka_config(settings))
    try:
        _wait_worker_ready(worker, log_path, 300)
        report = BurstReport(posted=len(updates), post_s=0.0, drain_s=0.0, rss_ready_mb=rss_mb(worker.pid))
        producer = JobProducer(settings)
        posted = threading.Event()
        t0 = time.monotonic()

        def post_all() -> None:
            try:
                for update in updates:
                    producer.publish(update)
                producer.flush()
                report.post_s = time.monotonic() - t0
            finally:
                posted.set()

        threading.Thread(target=post_all, daemon=True).start()
        with tqdm(total=len(updates), desc="drained", leave=False) as bar:
            while True:
                end, committed = group_offsets(admin, settings)
                now = time.monotonic() - t0
                report.samples.append(LagSample(round(now, 2), end, committed, round(rss_mb(worker.pid), 1)))
                bar.update(committed - bar.n)
                if posted.is_set() and committed >= end >= len(updates):
                    report.drain_s = now
                    break
                if worker.poll() is not None or now > timeout_s:
                    raise click.ClickException(f"burst not drained (worker exit {worker.poll()}, {committed}/{end} "
                                               f"committed after {now:.0f} s); log tail:\n"
                                               f"{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(sample_s)
        producer.close()
        if producer.failures:
            raise click.ClickException(f"delivery failures: {dict(producer.failures)}")
        return report
    finally:
        admin.close()
        stop_worker(worker)


def burst_updates(postings: list[tuple[str, str]], n_updates: int, n_items: int, run: str,
                  base_ms: int) -> list[JobUpdate]:
    """n_updates upserts over n_items ids (update i -> item i % n_items, updated_at base_ms + i): with
    n_items < n_updates some items get several versions, and the last one must win."""
    return [JobUpdate(item_id=f"{run}-{i % n_items}", op="upsert", updated_at=base_ms + i,
                      title=postings[i % len(postings)][0], text=postings[i % len(postings)][1] + f" (version {i})")
            for i in range(n_updates)]


def stored_ids(store, model_version: str, item_ids: list[str]) -> dict:
    """item_id -> ItemEmbedding for those of item_ids stored under model_version (reads of 500 ids)."""
    out: dict = {}
    for s in range(0, len(item_ids), 500):
        out |= store.get_embeddings(model_version, item_ids[s : s + 500])
    return out


def burst_store_settings(settings: Settings, run: str) -> Settings:
    """The run's own topic, group and store: a keyspace of its own on Cassandra, a temp file otherwise."""
    update = {"items_topic": f"{run}.items", "dlq_topic": f"{run}.dlq", "consumer_group": f"{run}.encoder"}
    if settings.cassandra_hosts:
        update["cassandra_keyspace"] = run.replace("-", "_")
    else:
        update["sqlite_path"] = Path(tempfile.gettempdir()) / f"{run}.sqlite"
    return settings.model_copy(update=update)


def drop_run_store(settings: Settings) -> None:
    from feature_store.base import open_store

    if settings.cassandra_hosts:
        store = open_store(settings)
        try:
            store.drop()
        finally:
            store.close()
    else:
        settings.resolved_sqlite_path().unlink(missing_ok=True)


def burst_bench(settings: Settings, n: int, text_chars: int, data: Path, no_record: bool) -> None:
    from feature_store.base import open_store
    from ingest.admin import delete_topics

    if not settings.kafka_bootstrap:
        raise click.ClickException("--burst needs Kafka: set MIXLM_KAFKA_BOOTSTRAP (e.g. 127.0.0.1:9092)")
    load = os.getloadavg()[0]
    run = f"burst{uuid.uuid4().hex[:8]}"
    settings = burst_store_settings(settings, run)
    updates = burst_updates(_postings(data, min(n, 5000), text_chars), n, n, run, int(time.time() * 1000))
    log_path = Path(tempfile.gettempdir()) / f"{run}-worker.log"
    try:
        report = run_burst(settings, updates, log_path)
        store = open_store(settings)
        try:  # the run's own store: its row counts are the distinct items written, nothing else
            counts = store.count()
        finally:
            store.close()
        stored = min(counts["items"], counts["item_embeddings"])
    finally:
        delete_topics(settings)
        drop_run_store(settings)
    where = f"{settings.base_model} {settings.dtype} on {settings.resolved_device()}"
    store_name = "cassandra" if settings.cassandra_hosts else "sqlite"
    header = ["model", "store", "updates posted", "post s", "max lag", "drain s", "items/s", "items stored",
              "items lost", "worker RSS ready/max MB"]
    rows = [[where, store_name, report.posted, round(report.post_s, 2), report.max_lag, round(report.drain_s, 1),
             round(report.posted / report.drain_s, 1), stored, report.posted - stored,
             f"{report.rss_ready_mb:.0f}/{report.rss_max_mb:.0f}"]]
    note = (f"burst: {n} upserts of distinct items posted at once to a fresh {settings.topic_partitions}-partition "
            f"topic, drained by one `mixlm worker` process (Faust); lag = end - committed offsets, sampled every "
            f"0.5 s; drain = first post -> all committed. Postings cut to {text_chars} chars; worker batch "
            f"{settings.worker_batch_size}; 1-min load average {load:.1f} at start (shared machine)")
    click.echo(" | ".join(header))
    for row in rows:
        click.echo(" | ".join(str(v) for v in row))
    if not no_record:
        record("pipeline burst", header, rows, note)
