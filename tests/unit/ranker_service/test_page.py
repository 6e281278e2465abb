"""The search page route and GET /items (ranker_service/page.py), through the real app factory."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from feature_store.base import open_store
from mixlm.codec import content_hash
from mixlm.schemas import ItemText
from ranker_service.app import create_app

ITEMS = [ItemText(item_id=f"job-{i}", title=f"Title {i}", text=f"text {i}", fields={"category": "Demo"},
                  content_hash=content_hash(f"Title {i}", f"text {i}", {"category": "Demo"}), updated_at=1000 + i)
         for i in range(5)]


@pytest.fixture
def client_for(tiny_settings, tiny_model):
    opened = []

    def make(**overrides):
        settings = tiny_settings.model_copy(update=overrides)
        store = open_store(settings)
        store.init()
        store.put_items(ITEMS)
        client = TestClient(create_app(settings, model=tiny_model, store=store))
        client.__enter__()
        opened.append((client, store))
        return client

    yield make
    for client, store in opened:
        client.__exit__(None, None, None)
        store.close()


def test_root_serves_the_search_page_without_an_api_key(client_for):
    client = client_for(api_keys=["secret"])
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="query"' in page.text and "/rank" in page.text


def test_items_by_id_keep_the_asked_order_and_list_unknown_ids_as_missing(client_for):
    body = client_for().get("/items", params={"ids": "job-3,nope,job-1"}).json()
    assert [it["item_id"] for it in body["items"]] == ["job-3", "job-1"]
    assert body["items"][0] == {"item_id": "job-3", "title": "Title 3", "fields": {"category": "Demo"}}
    assert body["missing"] == ["nope"]


def test_items_accepts_repeated_ids_and_drops_duplicates(client_for):
    body = client_for().get("/items?ids=job-2&ids=job-0,job-2").json()
    assert [it["item_id"] for it in body["items"]] == ["job-2", "job-0"]


def test_items_without_ids_lists_the_store_up_to_the_limit(client_for):
    client = client_for()
    assert {it["item_id"] for it in client.get("/items").json()["items"]} == {it.item_id for it in ITEMS}
    assert len(client.get("/items", params={"limit": 2}).json()["items"]) == 2


def test_items_rejects_more_ids_than_max_items_with_413(client_for):
    response = client_for(max_items=3).get("/items", params={"ids": "a,b,c,d"})
    assert response.status_code == 413


def test_items_needs_the_api_key_when_keys_are_configured(client_for):
    client = client_for(api_keys=["secret"])
    assert client.get("/items").status_code == 401
    assert client.get("/items", headers={"X-API-Key": "secret"}).status_code == 200


def test_items_is_in_the_openapi_schema_with_its_response_shape(client_for):
    schema = client_for().get("/openapi.json").json()
    ok = schema["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(ok["properties"]) == {"items", "missing"}
    assert set(ok["properties"]["items"]["items"]["properties"]) == {"item_id", "title", "fields"}
