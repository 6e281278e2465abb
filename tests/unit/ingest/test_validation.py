import msgspec
import pytest

from ingest.admin import topic_specs
from ingest.validation import parse_update
from mixlm.errors import InvalidJobUpdate
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings


def _raw(**kw) -> bytes:
    return msgspec.json.encode({"item_id": "a", "op": "upsert", "updated_at": 1, "title": "T", **kw})


def test_valid_value_parses_when_key_matches_item_id():
    assert parse_update(_raw(), 100, key="a") == JobUpdate(item_id="a", op="upsert", updated_at=1, title="T")


def test_key_that_differs_from_item_id_is_invalid():
    with pytest.raises(InvalidJobUpdate, match="does not match"):
        parse_update(_raw(), 100, key="b")


def test_missing_field_is_named_in_the_error():
    with pytest.raises(InvalidJobUpdate, match="updated_at"):
        parse_update(b'{"item_id": "a", "op": "upsert"}', 100)


def test_malformed_json_is_reported_as_such():
    with pytest.raises(InvalidJobUpdate, match="malformed JSON"):
        parse_update(b'{"item_id": ', 100)


def test_oversized_text_is_invalid():
    with pytest.raises(InvalidJobUpdate, match="too long"):
        parse_update(_raw(text="x" * 101), 100)


def test_items_topic_gets_the_configured_partitions_and_the_dlq_one():
    specs = topic_specs(Settings(topic_partitions=12))
    assert specs["mixlm.items.v1"]["num_partitions"] == 12
    assert specs["mixlm.items.dlq"]["num_partitions"] == 1
