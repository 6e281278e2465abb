"""The nearline pipeline on the real Kafka and Cassandra from `mixlm services up`:
`mixlm post` / the producer -> items topic -> `mixlm worker` (a subprocess, Faust) -> Cassandra.

Each test gets its own topics, consumer group and keyspace, so runs never see each other's data.
"""

from __future__ import annotations

import json
import socket
import signal
import threading
import time
import uuid
from pathlib import Path

import msgspec
import pytest
import torch
from click.testing import CliRunner
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient

from encoder_worker.backfill import run_backfill
from encoder_worker.core import EncoderCore
from encoder_worker.launch import settings_env, spawn_worker, stop_worker
from feature_store.base import open_store
from ingest.admin import create_topics, delete_topics
from ingest.producer import JobProducer
from mixlm import prompts
from mixlm.cli import cli
from mixlm.codec import bytes_to_tokens, content_hash
from mixlm.schemas import ItemText, JobUpdate
from mixlm.settings import Settings
from private_names import drop_private_names

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]
JOBS = Path("/work/shared/data/jobs_linkedin_indeed/docs.jsonl")


@pytest.fixture
def pipeline(kafka_bootstrap, cassandra_hosts, tiny_settings):
    run = uuid.uuid4().hex[:10]
    settings = Settings(home=tiny_settings.home, base_model="tiny", dtype="fp32", weights="none", device="cpu",
                        kafka_bootstrap=kafka_bootstrap, items_topic=f"it.items.{run}", dlq_topic=f"it.dlq.{run}",
                        consumer_group=f"it.encoder.{run}", topic_partitions=4, cassandra_hosts=cassandra_hosts,
                        cassandra_keyspace=f"it_{run}", worker_batch_size=32, worker_batch_timeout_s=0.2,
                        max_text_chars=4000, worker_session_timeout_s=6)
    create_topics(settings)
    store = open_store(settings)
    store.init()
    yield settings, store
    store.close()
    drop_private_names(kafka_bootstrap, [settings.items_topic, settings.dlq_topic, settings.consumer_group],
                       cassandra_hosts, settings.cassandra_keyspace)


class Worker:
    """`mixlm worker` in its own process, configured only through MIXLM_* variables."""

    def __init__(self, settings: Settings, log_path: Path):
        self.log_path = log_path
        self.proc = spawn_worker(settings, log_path)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_worker(self.proc)

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"worker exited {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}"


@pytest.fixture
def start_worker(tmp_path):
    workers: list[Worker] = []

    def start(settings: Settings) -> Worker:
        w = Worker(settings, tmp_path / f"worker{len(workers)}.log")
        workers.append(w)
        return w

    yield start
    for w in workers:
        w.stop()


def wait_until(predicate, timeout_s: float, what: str, worker: Worker | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None:
            worker.assert_alive()
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def all_consumed(settings: Settings) -> bool:
    """The worker group's committed offsets reached the end of every partition of the items topic."""
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        tps = [TopicPartition(settings.items_topic, p) for p in range(settings.topic_partitions)]
        ends = consumer.end_offsets(tps)
        committed = admin.list_group_offsets({settings.consumer_group: tps}).get(settings.consumer_group, {})
        return all(ends[tp] == 0 or (tp in committed and committed[tp].offset >= ends[tp]) for tp in tps)
    finally:
        consumer.close()
        admin.close()


def read_all(store, model_version: str, ids: list[str]) -> dict:
    out = {}
    for s in range(0, len(ids), 1000):
        out |= store.get_embeddings(model_version, ids[s : s + 1000])
    return out


def job_records(n: int) -> list[dict]:
    rows = []
    with open(JOBS) as f:
        for line in f:
            doc = json.loads(line)
            rows.append({"item_id": doc["doc_id"], "title": doc["title"], "text": doc["text"][:300]})
            if len(rows) == n:
                return rows
    raise AssertionError(f"{JOBS} has fewer than {n} postings")


def test_1000_posted_updates_are_all_readable_under_the_model_version(pipeline, start_worker, tiny_model, tmp_path):
    settings, store = pipeline
    rows = job_records(1000)
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = CliRunner().invoke(cli, ["post", str(path)], env=settings_env(settings))
    assert out.exit_code == 0 and "sent 1,000, rejected 0, failed 0" in out.output, out.output
    worker = start_worker(settings)
    ids = [r["item_id"] for r in rows]
    wait_until(lambda: all_consumed(settings), 100, "the worker to consume all 1,000", worker)
    got = read_all(store, tiny_model.model_version, ids)
    assert {e.model_version for e in got.values()} == {tiny_model.model_version}
    assert {e.content_hash for e in got.values()} == {content_hash(r["title"], r["text"]) for r in rows}
    texts = store.get_items(ids)
    assert len(texts) == 1000 and texts[ids[7]].title == rows[7]["title"]


def test_worker_killed_mid_stream_and_restarted_loses_nothing_and_ends_in_the_last_state(
    pipeline, start_worker, tiny_model
):
    settings, store = pipeline
    n_items, rounds = 120, 4
    producer = JobProducer(settings)
    base = int(time.time() * 1000)

    def update(i: int, r: int) -> JobUpdate:
        return JobUpdate(item_id=f"k{i}", op="upsert", updated_at=base + r * 1000 + i, title=f"Role {i} rev {r}",
                         text=f"Revision {r} of posting {i}: welding, forklifts, night shifts.")

    def produce():  # a steady stream (~5 s), so the kill lands while messages are still arriving
        for r in range(rounds):
            for i in range(n_items):
                producer.publish(update(i, r))
                if i % 30 == 0:
                    producer.flush()
                    time.sleep(0.3)
        producer.flush()

    worker = start_worker(settings)
    wait_until(lambda: "Worker]: Ready" in worker.log_path.read_text(errors="replace"), 60, "worker ready", worker)
    sender = threading.Thread(target=produce)
    sender.start()
    ids = [f"k{i}" for i in range(n_items)]
    wait_until(lambda: len(store.get_embeddings(tiny_model.model_version, ids)) >= 20, 60, "first writes", worker)
    assert sender.is_alive(), "the stream ended before the kill: nothing mid-stream was tested"
    worker.kill()  # SIGKILL: no shutdown, no final commit
    sender.join()
    producer.close()
    restarted = start_worker(settings)
    wait_until(lambda: all_consumed(settings), 100, "the restarted worker to consume everything", restarted)

    last = {f"k{i}": update(i, rounds - 1) for i in range(n_items)}
    items = store.get_items(ids)
    embeddings = store.get_embeddings(tiny_model.model_version, ids)
    assert sorted(items) == sorted(ids) and sorted(embeddings) == sorted(ids)
    for item_id, u in last.items():
        assert items[item_id].title == u.title and items[item_id].updated_at == u.updated_at
        assert embeddings[item_id].content_hash == content_hash(u.title, u.text)
        assert embeddings[item_id].source_updated_at == u.updated_at
    # the tokens are the encoding of the final text, not of an earlier revision
    sample = ids[:5]
    expected = tiny_model.encode_items([prompts.item_text(last[i].title, last[i].text) for i in sample])
    for k, item_id in enumerate(sample):
        e = embeddings[item_id]
        torch.testing.assert_close(bytes_to_tokens(e.tokens, e.n_tokens, e.dim, e.dtype).float(),
                                   expected[k].to(torch.bfloat16).float())


def test_out_of_order_updates_for_one_item_end_with_the_newest(pipeline, start_worker, tiny_model):
    settings, store = pipeline
    producer = JobProducer(settings)
    worker = start_worker(settings)
    for ts, title in [(3000, "newest"), (1000, "oldest")]:
        producer.publish(JobUpdate(item_id="ooo", op="upsert", updated_at=ts, title=title))
    producer.flush()
    wait_until(lambda: all_consumed(settings), 60, "first pair consumed", worker)
    producer.publish(JobUpdate(item_id="ooo", op="upsert", updated_at=2000, title="middle"))  # a later batch
    producer.publish(JobUpdate(item_id="ooo", op="delete", updated_at=2500))  # an older delete must lose too
    producer.flush()
    producer.close()
    wait_until(lambda: all_consumed(settings), 60, "late updates consumed", worker)
    assert store.get_items(["ooo"])["ooo"].title == "newest"
    row = store.get_embeddings(tiny_model.model_version, ["ooo"])["ooo"]
    assert row.source_updated_at == 3000 and row.content_hash == content_hash("newest", "")


def test_malformed_missing_field_and_oversized_messages_go_to_the_dlq_and_the_rest_goes_through(
    pipeline, start_worker, tiny_model
):
    settings, store = pipeline
    producer = JobProducer(settings)
    good = [JobUpdate(item_id=f"g{i}", op="upsert", updated_at=100 + i, title=f"Good {i}") for i in range(6)]
    for u in good[:3]:
        producer.publish(u)
    producer.send(b"bad-json", b'{"item_id": "bad-json", "op": ')
    producer.send(b"no-time", msgspec.json.encode({"item_id": "no-time", "op": "upsert", "title": "T"}))
    producer.send(b"huge", msgspec.json.encode({"item_id": "huge", "op": "upsert", "updated_at": 5, "text": "x" * 5000}))
    for u in good[3:]:
        producer.publish(u)
    producer.flush()
    producer.close()
    worker = start_worker(settings)
    wait_until(lambda: all_consumed(settings), 60, "everything consumed", worker)
    assert sorted(store.get_embeddings(tiny_model.model_version, [u.item_id for u in good] + ["huge"])) == \
        sorted(u.item_id for u in good)

    dlq = KafkaConsumer(settings.dlq_topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                        consumer_timeout_ms=5000)
    letters = {m.key: (m.value, dict(m.headers)) for m in dlq}
    dlq.close()
    assert sorted(letters) == [b"bad-json", b"huge", b"no-time"]
    assert b"malformed JSON" in letters[b"bad-json"][1]["error"]
    assert b"updated_at" in letters[b"no-time"][1]["error"]
    assert b"too long" in letters[b"huge"][1]["error"]
    assert letters[b"no-time"][0].startswith(b'{"item_id":"no-time"')  # the original value is kept
    assert all({"source_partition", "source_offset"} <= set(h) for _, h in letters.values())
    worker.assert_alive()  # bad input never stops the worker
    with socket.socket() as s:  # and it opened no web server (Faust's default is 0.0.0.0:6066)
        assert s.connect_ex(("127.0.0.1", 6066)) != 0


def test_delete_and_tombstone_remove_items_from_what_rank_reads(pipeline, start_worker, tiny_model):
    settings, store = pipeline
    producer = JobProducer(settings)
    worker = start_worker(settings)
    for item_id in ("keep", "del-op", "tomb"):
        producer.publish(JobUpdate(item_id=item_id, op="upsert", updated_at=1000, title=f"Posting {item_id}"))
    producer.flush()
    ids = ["keep", "del-op", "tomb"]
    wait_until(lambda: len(store.get_embeddings(tiny_model.model_version, ids)) == 3, 60, "three items", worker)
    producer.publish(JobUpdate(item_id="del-op", op="delete", updated_at=int(time.time() * 1000)))
    producer.send(b"tomb", None)  # a Kafka tombstone: null value, deletes by key
    producer.flush()
    producer.close()
    wait_until(lambda: all_consumed(settings), 60, "deletes consumed", worker)
    assert sorted(store.get_embeddings(tiny_model.model_version, ids)) == ["keep"]
    assert sorted(store.get_items(ids)) == ["keep"]


def test_topics_create_is_idempotent_and_list_shows_the_partitions(kafka_bootstrap, tiny_settings):
    run = uuid.uuid4().hex[:10]
    settings = tiny_settings.model_copy(update={"kafka_bootstrap": kafka_bootstrap, "items_topic": f"it.topics.{run}",
                                                "dlq_topic": f"it.topics.{run}.dlq", "topic_partitions": 5,
                                                "consumer_group": f"it.topics.{run}"})
    runner, env = CliRunner(), settings_env(settings)
    try:
        first = runner.invoke(cli, ["topics", "create"], env=env)
        again = runner.invoke(cli, ["topics", "create"], env=env)
        listed = runner.invoke(cli, ["topics", "list"], env=env)
        assert f"it.topics.{run}: created" in first.output and f"it.topics.{run}: exists" in again.output
        assert f"it.topics.{run}\t5 partitions" in listed.output
        assert f"it.topics.{run}.dlq\t1 partitions" in listed.output
    finally:
        delete_topics(settings)


def test_backfill_via_kafka_republishes_cold_items_and_the_worker_encodes_them(pipeline, start_worker, tiny_model):
    settings, store = pipeline
    cold = [ItemText(item_id=f"cold{i}", title=f"Archivist {i}", text="Catalogues", updated_at=500 + i,
                     content_hash=content_hash(f"Archivist {i}", "Catalogues")) for i in range(5)]
    store.put_items(cold)
    producer = JobProducer(settings)
    report = run_backfill(EncoderCore(tiny_model, store, settings), 10, publisher=producer, progress=False)
    producer.close()
    assert report.published == 5 and store.get_embeddings(tiny_model.model_version, [c.item_id for c in cold]) == {}
    worker = start_worker(settings)
    wait_until(lambda: all_consumed(settings), 60, "republished items consumed", worker)
    got = store.get_embeddings(tiny_model.model_version, [c.item_id for c in cold])
    assert {k: v.source_updated_at for k, v in got.items()} == {c.item_id: c.updated_at for c in cold}
    assert list(store.missing_embeddings(tiny_model.model_version)) == []
