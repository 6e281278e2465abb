"""Typed errors map to their HTTP codes in one table; 422 names the field; a 500 never shows a traceback."""

from __future__ import annotations

import msgspec
import pytest

from mixlm.errors import QueueFull, StoreUnavailable
from mixlm.schemas import RankRequest
from ranker_service.errors import (BodyTooLarge, EngineUnavailable, RequestInvalid, TooManyItems, Unauthorized,
                                   error_response, field_of)


@pytest.mark.parametrize("body, field", [
    (b'{"query": 1, "item_ids": ["a"]}', "query"),
    (b'{"item_ids": ["a"]}', "query"),
    (b'{"query": "q", "item_ids": []}', "item_ids"),
    (b'{"query": "q", "item_ids": ["a", ""]}', "item_ids[1]"),
    (b'{"query": "q", "item_ids": ["a"], "top_k": 0}', "top_k"),
    (b'{"query": "q", "item_ids": ["a"], "surprise": 1}', "surprise"),
])
def test_validation_errors_name_the_field(body, field):
    with pytest.raises(msgspec.ValidationError) as exc:
        msgspec.json.decode(body, type=RankRequest)
    response = error_response(exc.value)
    assert response.status_code == 422
    assert msgspec.json.decode(response.body)["field"] == field


def test_field_of_nested_missing_field():
    assert field_of("Object missing required field `text` - at `$.documents[0]`") == "documents[0].text"


def test_malformed_json_is_422_on_the_body():
    with pytest.raises(msgspec.DecodeError) as exc:
        msgspec.json.decode(b"{nope", type=RankRequest)
    response = error_response(exc.value)
    assert response.status_code == 422 and msgspec.json.decode(response.body)["field"] == "body"


@pytest.mark.parametrize("exc, status, header", [
    (RequestInvalid("bad", "query"), 422, None),
    (TooManyItems("too many"), 413, None),
    (BodyTooLarge("too big"), 413, None),
    (Unauthorized("no key"), 401, "www-authenticate"),
    (QueueFull("full"), 429, "retry-after"),
    (StoreUnavailable("down"), 503, "retry-after"),
    (EngineUnavailable("down"), 503, "retry-after"),
])
def test_each_typed_error_has_its_status(exc, status, header):
    response = error_response(exc)
    assert response.status_code == status
    if header:
        assert response.headers[header]


def test_unexpected_error_is_an_opaque_500():
    response = error_response(KeyError("secret internals"))
    assert response.status_code == 500
    detail = msgspec.json.decode(response.body)["detail"]
    assert "secret" not in detail and "Traceback" not in detail and "internal error" in detail
