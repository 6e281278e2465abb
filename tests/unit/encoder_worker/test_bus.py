from encoder_worker.bus import EmbeddedBus
from mixlm.schemas import JobUpdate


def _update(i: int, updated_at: int = 100, **kw) -> JobUpdate:
    return JobUpdate(item_id=f"j{i}", op="upsert", updated_at=updated_at, title=f"Job {i}", text="Welding", **kw)


def test_everything_published_is_written_after_flush_in_batches_of_at_most_batch_size(core, store, tiny_model, monkeypatch):
    sizes: list[int] = []
    real = core.process
    monkeypatch.setattr(core, "process", lambda batch: sizes.append(len(batch)) or real(batch))
    bus = EmbeddedBus(core, batch_size=4, batch_timeout_s=0.05)
    for i in range(10):
        bus.publish(_update(i))
    bus.flush(timeout_s=60)
    assert bus.delivered == 10 and sum(sizes) == 10 and max(sizes) <= 4
    assert len(store.get_embeddings(tiny_model.model_version, [f"j{i}" for i in range(10)])) == 10
    bus.close()


def test_bus_keeps_per_item_order_so_the_last_publish_wins(core, store):
    bus = EmbeddedBus(core, batch_size=2, batch_timeout_s=0.01)
    for n, title in enumerate(["v1", "v2", "v3", "v4", "v5"]):
        bus.publish(JobUpdate(item_id="a", op="upsert", updated_at=100 + n, title=title))
    bus.close()
    assert store.get_items(["a"])["a"].title == "v5"


def test_tombstone_on_the_bus_deletes_and_bad_bytes_are_dead_lettered(core, store, tiny_model):
    bus = EmbeddedBus(core, batch_size=8, batch_timeout_s=0.01)
    bus.publish(_update(1, updated_at=100))
    bus.flush(timeout_s=60)
    bus.send(b"j1", None, timestamp_ms=200)
    bus.send(b"j2", b"garbage")
    bus.close()
    assert store.get_embeddings(tiny_model.model_version, ["j1"]) == {}
    assert [d.offset for d in bus.dead_letters] == [2] and "malformed JSON" in bus.dead_letters[0].error
    assert bus.totals["deleted"] == 1
