import msgspec
import pytest

from mixlm.schemas import JobUpdate, RankRequest, decode_job_update


def test_job_update_decodes_from_the_wire_shape():
    raw = b'{"item_id":"j1","op":"upsert","title":"Nurse","text":"ICU","fields":{"company":"X"},"updated_at":1700000000000}'
    u = decode_job_update(raw)
    assert u == JobUpdate(item_id="j1", op="upsert", title="Nurse", text="ICU", fields={"company": "X"}, updated_at=1700000000000)
    assert decode_job_update(msgspec.json.encode(u)) == u


@pytest.mark.parametrize(
    "raw,field",
    [
        (b'{"op":"upsert","updated_at":1}', "item_id"),
        (b'{"item_id":"j1","op":"merge","updated_at":1}', "op"),
        (b'{"item_id":"j1","op":"upsert","updated_at":-5}', "updated_at"),
        (b'{"item_id":"","op":"upsert","updated_at":1}', "item_id"),
    ],
)
def test_invalid_job_updates_name_the_field(raw, field):
    with pytest.raises(msgspec.ValidationError, match=field):
        decode_job_update(raw)


def test_rank_request_rejects_unknown_fields_and_empty_ids():
    with pytest.raises(msgspec.ValidationError, match="item_ids"):
        msgspec.json.decode(b'{"query":"q","item_ids":[]}', type=RankRequest)
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.json.decode(b'{"query":"q","item_ids":["a"],"colour":1}', type=RankRequest)
