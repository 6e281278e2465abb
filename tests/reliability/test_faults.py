"""Faults survived (issue 10, "Faults"), against a real Cassandra that the test stops and starts.

The shared Cassandra on 9042 serves other tests, so this module starts a PRIVATE one with `mixlm services up
--only cassandra` under its own MIXLM_HOME and ports, and stops/restarts it with `mixlm services down/up`.
- the ranker keeps running while its store goes away: 503 with Retry-After and /readyz 503, never a 500;
  once Cassandra is back the same app (not restarted) answers 200 with the same scores as before;
- the encoder worker's core, given a batch while the store is down, raises StoreUnavailable (so the
  transport does not commit the offsets) and writes every item of the same batch once the store is back;
- the real `mixlm worker` process (Faust, shared Kafka) stops committing while the store is down, stays up,
  and commits every offset with every item written once the store is back.
"""

from __future__ import annotations

import time

import msgspec
import pytest
from fastapi.testclient import TestClient

from encoder_worker.core import EncoderCore, Message
from encoder_worker.launch import free_port
from feature_store.base import open_store
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.errors import StoreUnavailable
from mixlm.schemas import ItemText
from mixlm.settings import Settings
from private_instances import private_services
from ranker_service.app import create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]
KEYSPACE = "mixlm_faults"
TEXTS = {"py": "Python engineer, Berlin.", "nurse": "Night nurse, city hospital.", "chef": "Pastry chef, hotel.",
         "ds": "Data scientist, ranking.", "welder": "Welder, shipyard."}




@pytest.fixture(scope="module")
def private_cassandra(tmp_path_factory, cassandra_hosts):
    """Settings pointing at a Cassandra of this module's own (own home, ports, 256 MB heap)."""
    home = tmp_path_factory.mktemp("faults_home")
    s = Settings(home=home, cassandra_hosts=["127.0.0.1"], cassandra_port=free_port(),
                 cassandra_storage_port=free_port(), cassandra_jmx_port=free_port(), cassandra_heap_mb=256,
                 cassandra_keyspace=KEYSPACE, cassandra_connect_timeout_s=2.0, cassandra_request_timeout_s=3.0)
    private_services(s, "cassandra", "up")
    try:
        yield s
    finally:
        private_services(s, "cassandra", "down")


def _items() -> list[ItemText]:
    return [ItemText(item_id=k, title="", text=v, content_hash=content_hash("", v), updated_at=1_700_000_000_000 + i)
            for i, (k, v) in enumerate(TEXTS.items())]


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"{what} did not happen within {timeout_s} s")


def test_store_outage_is_503_then_recovers_without_restart_and_the_worker_loses_nothing(
        private_cassandra, tiny_model, tiny_settings):
    settings = tiny_settings.model_copy(update={k: getattr(private_cassandra, k) for k in (
        "cassandra_hosts", "cassandra_port", "cassandra_keyspace", "cassandra_connect_timeout_s",
        "cassandra_request_timeout_s")})
    seeder = open_store(settings)
    seeder.init()
    seeder.put_items(_items())
    seeder.put_embeddings(encode_rows(tiny_model, _items()[:3], "bf16"))
    seeder.close()
    body = {"query": "python developer", "item_ids": list(TEXTS)[:3]}
    tried: dict[int, int] = {}

    def post(c: TestClient):
        r = c.post("/rank", json=body)
        tried[r.status_code] = tried.get(r.status_code, 0) + 1
        return r

    worker_store = open_store(settings)
    worker_store.init()
    core = EncoderCore(tiny_model, worker_store, settings)
    batch = [Message(key=f"new-{i}".encode(), offset=i, value=msgspec.json.encode(
        {"item_id": f"new-{i}", "op": "upsert", "updated_at": 1_700_000_100_000 + i, "text": f"posting {i}"}))
        for i in range(6)]
    try:
        with TestClient(create_app(settings, model=tiny_model)) as c:
            assert c.get("/readyz").status_code == 200
            before = post(c)
            assert before.status_code == 200 and len(before.json()["results"]) == 3

            private_services(private_cassandra, "cassandra", "down")
            for _ in range(5):
                r = post(c)
                assert r.status_code == 503, r.text
                assert int(r.headers["retry-after"]) > 0 and "Cassandra" in r.json()["detail"]
            ready = c.get("/readyz")
            assert ready.status_code == 503 and ready.headers["retry-after"]
            assert c.get("/healthz").status_code == 200  # alive, just not ready: no restart wanted
            with pytest.raises(StoreUnavailable):  # the transport retries the batch and commits nothing
                core.process(batch)

            private_services(private_cassandra, "cassandra", "up")
            _wait_for(lambda: c.get("/readyz").status_code == 200, 90, "the ranker's /readyz recovering")
            after = _wait_for(lambda: (r := post(c)).status_code == 200 and r, 30, "/rank recovering")
            assert after.json()["results"] == before.json()["results"]
            assert after.json()["missing"] == []
        result = _wait_for(lambda: _retry(core, batch), 30, "the worker's batch going through")
        assert result.dead_letters == [] and len(result.embeddings) == 6
        stored = worker_store.get_embeddings(tiny_model.model_version, [f"new-{i}" for i in range(6)])
        assert sorted(stored) == sorted(f"new-{i}" for i in range(6))  # items lost: 0
    finally:
        worker_store.close()
    assert 500 not in tried and tried.get(503, 0) >= 5
    print(f"faults: 1 store outage survived; /rank requests tried {sum(tried.values())} {tried}; items lost 0")


def _retry(core: EncoderCore, batch: list[Message]):
    try:
        return core.process(batch)
    except StoreUnavailable:
        return None


# --- the real worker process (Faust, shared Kafka) writing to the private Cassandra --------------------------
def _committed(settings: Settings) -> int:
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        tps = [TopicPartition(settings.items_topic, p) for p in range(settings.topic_partitions)]
        got = admin.list_group_offsets({settings.consumer_group: tps}).get(settings.consumer_group, {})
        return sum(max(0, o.offset) for o in got.values())
    finally:
        admin.close()


def readable(read) -> bool:
    from mixlm.errors import StoreUnavailable

    try:
        read()
        return True
    except StoreUnavailable:
        return False


def test_worker_pauses_without_committing_while_the_store_is_down_and_writes_everything_after(
        private_cassandra, kafka_bootstrap, tiny_settings, tiny_model, tmp_path):
    import uuid

    from encoder_worker.launch import spawn_worker, stop_worker
    from ingest.admin import create_topics, delete_topics
    from ingest.producer import JobProducer
    from mixlm.schemas import JobUpdate
    from mixlm.services import lifecycle, servers

    run = uuid.uuid4().hex[:8]
    total = 800
    settings = tiny_settings.model_copy(update={k: getattr(private_cassandra, k) for k in (
        "cassandra_hosts", "cassandra_port", "cassandra_keyspace", "cassandra_connect_timeout_s",
        "cassandra_request_timeout_s")} | {
        "kafka_bootstrap": kafka_bootstrap, "items_topic": f"rel.items.{run}", "dlq_topic": f"rel.dlq.{run}",
        "consumer_group": f"rel.encoder.{run}", "topic_partitions": 4, "worker_batch_size": 8,
        "worker_batch_timeout_s": 0.2, "worker_session_timeout_s": 6})
    create_topics(settings)
    ids = [f"{run}-{i}" for i in range(total)]
    store = open_store(settings)
    store.init()

    def stored() -> int:
        return sum(len(store.get_embeddings(tiny_model.model_version, ids[s : s + 500])) for s in range(0, total, 500))

    log = tmp_path / "worker.log"
    worker = spawn_worker(settings, log)
    cassandra = servers.servers(private_cassandra)["cassandra"]
    try:
        _wait_for(lambda: "Worker]: Ready" in log.read_text(errors="replace"), 90, "worker ready")
        producer = JobProducer(settings)
        for i, item_id in enumerate(ids):
            producer.publish(JobUpdate(item_id=item_id, op="upsert", updated_at=1_700_000_200_000 + i,
                                       title=f"Role {i}", text=f"Posting {i}: forklifts and night shifts."))
        producer.flush()
        producer.close()
        _wait_for(lambda: stored() >= 10, 60, "first writes")
        lifecycle.bring_down(cassandra)  # `mixlm services down --only cassandra`, in-process
        time.sleep(3)  # the batch in hand fails; the worker retries it
        paused_at = _committed(settings)
        time.sleep(6)
        assert worker.poll() is None, log.read_text()[-3000:]
        assert _committed(settings) == paused_at < total  # nothing committed while nothing can be written
        assert "offsets not committed" in log.read_text(errors="replace")
        private_services(private_cassandra, "cassandra", "up")
        _wait_for(lambda: _committed(settings) == total, 180, "every offset committed after the store returned")
        assert worker.poll() is None  # the same worker process resumed
        # This test's own driver session reconnects on its own backoff (up to ~17 s), after the worker's.
        _wait_for(lambda: readable(stored), 60, "the test's store session back")
        assert stored() == total  # items lost: 0
    finally:
        stop_worker(worker)
        store.close()
        delete_topics(settings)
    print(f"faults: store outage under the worker survived (committed {paused_at}/{total} while down); "
          f"items lost 0")
