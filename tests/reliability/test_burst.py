"""Load, burst (issue 10, "Load"): the real `mixlm worker` process (Faust) under a burst of updates posted at
once to the shared Kafka drains into the shared Cassandra (a topic, group and keyspace of this test's own):
lag stays bounded and returns to 0, every item is stored exactly once with its latest version, and the
worker's memory stays bounded. Shortened for CI; the full 10,000-update burst is `mixlm bench pipeline --burst`."""

from __future__ import annotations

import time
import uuid

import pytest

from bench.pipeline import burst_store_settings, burst_updates, drop_run_store, run_burst, stored_ids
from feature_store.base import open_store
from ingest.admin import delete_topics
from mixlm.codec import content_hash

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
UPDATES, ITEMS = 2000, 1500  # 500 items are updated twice within the burst: the second version must win
# The worker reads a batch at a time and keeps nothing per item, so the burst must not grow it by more than a
# margin for allocator and driver buffers (it holds ~900 MB with the tiny model, torch included, before it).
RSS_GROWTH_MB = 300


@pytest.fixture
def burst_settings(tiny_settings, kafka_bootstrap, cassandra_hosts):
    run = f"relburst{uuid.uuid4().hex[:8]}"
    s = burst_store_settings(tiny_settings.model_copy(update={
        "kafka_bootstrap": kafka_bootstrap, "cassandra_hosts": cassandra_hosts, "topic_partitions": 4,
        "worker_batch_size": 32, "worker_batch_timeout_s": 0.2}), run)
    yield s, run
    delete_topics(s)
    drop_run_store(s)


def test_a_burst_drains_with_bounded_lag_and_memory_and_every_item_stored_once_at_its_latest_version(
        burst_settings, tiny_model, tmp_path):
    settings, run = burst_settings
    postings = [(f"Role {i}", f"Posting {i}: forklifts, welding and night shifts.") for i in range(50)]
    updates = burst_updates(postings, UPDATES, ITEMS, run, base_ms=int(time.time() * 1000))
    latest = {u.item_id: u for u in updates}  # later updates of an id overwrite earlier ones here too

    report = run_burst(settings, updates, tmp_path / "worker.log", sample_s=0.2)

    lags = [s.lag for s in report.samples]
    assert report.samples[-1].lag == 0 and report.samples[-1].committed == UPDATES  # everything drained
    assert max(lags) > 0  # the burst did queue up: a burst that was never behind would test nothing
    assert 0 <= min(lags) and max(lags) <= UPDATES  # bounded: never more behind than what was posted
    assert report.rss_max_mb < report.rss_ready_mb + RSS_GROWTH_MB, (report.rss_ready_mb, report.rss_max_mb)

    store = open_store(settings)
    try:
        counts = store.count()
        stored = stored_ids(store, tiny_model.model_version, list(latest))
        texts = store.get_items(list(latest)[:1000]) | store.get_items(list(latest)[1000:])
    finally:
        store.close()
    assert counts == {"items": ITEMS, "item_embeddings": ITEMS}  # once each: no extra rows in the run's keyspace
    assert sorted(stored) == sorted(latest)  # items lost: 0
    assert all(stored[i].source_updated_at == u.updated_at for i, u in latest.items())
    assert all(texts[i].content_hash == content_hash(u.title, u.text, u.fields) for i, u in latest.items())
    print(f"burst: {UPDATES} updates over {ITEMS} items posted in {report.post_s:.1f} s; max lag {max(lags)}; "
          f"drained in {report.drain_s:.1f} s; items lost {ITEMS - len(stored)}; worker RSS "
          f"{report.rss_ready_mb:.0f} -> max {report.rss_max_mb:.0f} MB")
