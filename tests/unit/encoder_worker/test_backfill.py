import json

import msgspec

from encoder_worker.backfill import run_backfill
from mixlm.codec import content_hash
from mixlm.schemas import ItemText


def _store_texts(store, n: int, start: int = 0) -> list[str]:
    ids = [f"i{k}" for k in range(start, start + n)]
    store.put_items([ItemText(item_id=i, title=f"Title {i}", text="Drives trucks", content_hash=content_hash(f"Title {i}", "Drives trucks"),
                              updated_at=50) for i in ids])
    return ids


def test_items_with_text_but_no_tokens_are_encoded_with_their_source_time(core, store, tiny_model):
    ids = _store_texts(store, 7)
    report = run_backfill(core, batch_size=3, progress=False)
    assert report.encoded == 7
    got = store.get_embeddings(tiny_model.model_version, ids)
    assert sorted(got) == sorted(ids) and {r.source_updated_at for r in got.values()} == {50}


def test_dry_run_counts_what_is_missing_and_writes_nothing(core, store, tiny_model):
    ids = _store_texts(store, 5)
    report = run_backfill(core, batch_size=2, dry_run=True, progress=False)
    assert report.considered == 5 and report.encoded == 0
    assert store.get_embeddings(tiny_model.model_version, ids) == {}


def test_a_rerun_after_an_interrupted_backfill_encodes_only_the_rest(core, store, encode_calls):
    _store_texts(store, 4)
    run_backfill(core, batch_size=10, progress=False)  # stands for the part done before the kill
    _store_texts(store, 3, start=4)
    report = run_backfill(core, batch_size=10, progress=False)
    assert report.encoded == 3
    assert sorted(encode_calls[-1]) == sorted(f"Title i{k}\nDrives trucks" for k in range(4, 7))
    assert run_backfill(core, batch_size=10, progress=False).considered == 0


def test_backfill_from_a_file_encodes_valid_records_and_reports_rejects(core, store, tiny_model, tmp_path):
    path = tmp_path / "jobs.jsonl"
    rows = [{"item_id": "f1", "title": "Baker", "updated_at": 10}, {"title": "no id"}, {"item_id": "f2", "text": "Bakes"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = run_backfill(core, batch_size=10, source=path, progress=False)
    assert report.encoded == 2 and dict(report.rejected) == {"missing field item_id": 1}
    assert sorted(store.get_embeddings(tiny_model.model_version, ["f1", "f2"])) == ["f1", "f2"]
    again = run_backfill(core, batch_size=10, source=path, dry_run=True, progress=False)
    assert again.skipped == 1  # f1 (fixed updated_at) is stored unchanged; f2's updated_at is "now", so newer


class _ListPublisher:
    def __init__(self):
        self.sent, self.delivered, self.failures = [], 0, {}

    def publish(self, update):
        self.sent.append(msgspec.structs.asdict(update))

    def flush(self, timeout_s=None):
        pass


def test_via_a_publisher_backfill_republishes_instead_of_writing(core, store, tiny_model):
    ids = _store_texts(store, 3)
    publisher = _ListPublisher()
    report = run_backfill(core, batch_size=10, publisher=publisher, progress=False)
    assert report.published == 3 and sorted(u["item_id"] for u in publisher.sent) == sorted(ids)
    assert all(u["updated_at"] == 50 and u["op"] == "upsert" for u in publisher.sent)
    assert store.get_embeddings(tiny_model.model_version, ids) == {}
