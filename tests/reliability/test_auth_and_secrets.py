"""Security (issue 10, "Security"): API keys on every route but the probes and the page shell, compared in
constant time; no secret in
logs, errors or reprs; credentials reach the drivers; the services from `mixlm services up` listen on
loopback only."""

from __future__ import annotations

import hmac
import logging
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from feature_store.base import open_store
from feature_store.sqlite import SQLiteStore
from ingest.kafka_config import kafka_config, kafka_ssl_context
from mixlm.errors import StoreUnavailable
from mixlm.services import lifecycle, servers
from mixlm.settings import Settings
from mixlm.tls import client_context
from ranker_service import security
from ranker_service.app import create_app

KEY, OTHER_KEY = "k-4f1c9a-the-real-one", "k-77b0e2-the-other"
NEAR_MISS = KEY[:-1] + "X"  # a wrong key that shares all but its last character
# Routes that need no key: the probes (health.py) and the static page shell (it holds no data and sends the key
# the user types). Every other route must ask for one: the data routes, /metrics and the API documents.
OPEN = security.OPEN_PATHS
assert OPEN == {"/healthz", "/readyz", "/"}
BODIES = {"/rank": {"query": "python", "item_ids": ["a"]}, "/v1/rerank": {"query": "python", "documents": ["d"]}}


@pytest.fixture
def keyed_client(tiny_settings, tiny_model):
    settings = tiny_settings.model_copy(update={"api_keys": [KEY, OTHER_KEY]})
    store = SQLiteStore(settings.resolved_sqlite_path())
    store.init()
    with TestClient(create_app(settings, model=tiny_model, store=store)) as c:
        yield c
    store.close()


def _all_routes(routes) -> list[tuple[str, str]]:
    """(method, path) of every route, also inside included routers (FastAPI keeps those nested)."""
    out = []
    for r in routes:
        if getattr(r, "original_router", None) is not None:
            out += _all_routes(r.original_router.routes)
        elif isinstance(r, Route):  # FastAPI's APIRoute is one too
            out += [(m, r.path) for m in sorted(r.methods - {"HEAD"})]
    return out


def _guarded_routes(app) -> list[tuple[str, str]]:
    return [(m, p) for m, p in _all_routes(app.routes) if p not in OPEN]


def _call(c: TestClient, method: str, path: str, headers: dict[str, str]):
    return c.request(method, path, json=BODIES.get(path), headers=headers)


def test_every_route_but_the_probes_and_the_page_shell_needs_a_configured_key(keyed_client):
    guarded = _guarded_routes(keyed_client.app)
    assert {("POST", "/rank"), ("POST", "/v1/rerank"), ("GET", "/items"), ("GET", "/metrics"),
            ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")} <= set(guarded)
    for method, path in guarded:
        for headers in ({}, {"X-API-Key": NEAR_MISS}, {"Authorization": f"Bearer {NEAR_MISS}"},
                        {"Authorization": f"Basic {KEY}"}, {"X-API-Key": ""}):
            r = _call(keyed_client, method, path, headers)
            assert r.status_code == 401, (method, path, headers, r.status_code)
            assert r.headers["www-authenticate"].startswith("Bearer")
        for headers in ({"X-API-Key": KEY}, {"X-API-Key": OTHER_KEY}, {"Authorization": f"Bearer {OTHER_KEY}"}):
            r = _call(keyed_client, method, path, headers)
            assert r.status_code < 400, (method, path, headers, r.status_code, r.text)
    for path in OPEN:
        assert keyed_client.get(path).status_code == 200
    assert keyed_client.get("/docs/oauth2-redirect").status_code == 404  # no OAuth: FastAPI's helper page is gone


def test_metrics_scrape_with_a_bearer_token_and_the_schema_says_which_routes_need_a_key(keyed_client):
    scrape = keyed_client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert scrape.status_code == 200 and "mixlm_requests_total" in scrape.text
    doc = keyed_client.get("/openapi.json", headers={"X-API-Key": KEY}).json()
    assert doc["paths"]["/metrics"]["get"]["security"] and "401" in doc["paths"]["/metrics"]["get"]["responses"]
    assert "security" not in doc["paths"]["/healthz"]["get"] and "security" not in doc["paths"]["/readyz"]["get"]


def test_the_open_page_shell_holds_no_data_and_sends_the_typed_key(keyed_client):
    page = keyed_client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert KEY not in page.text and OTHER_KEY not in page.text
    assert 'h["X-API-Key"] = key' in page.text and 'id="api_key"' in page.text  # fetch() carries what was typed


def test_keys_are_compared_with_compare_digest_against_every_key(keyed_client, monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)
    # A match on the first key still compares the second: the time taken does not say which key was near.
    assert security.key_matches(KEY, [KEY, OTHER_KEY]) and len(compared) == 2
    compared.clear()
    assert keyed_client.post("/rank", json=BODIES["/rank"], headers={"X-API-Key": NEAR_MISS}).status_code == 401
    assert {b for _, b in compared} == {KEY.encode(), OTHER_KEY.encode()}


def test_no_secret_in_logs_responses_or_the_settings_repr(keyed_client, caplog):
    caplog.set_level(logging.DEBUG)
    answers = [_call(keyed_client, m, p, h) for m, p in _guarded_routes(keyed_client.app)
               for h in ({"X-API-Key": NEAR_MISS}, {"X-API-Key": KEY}, {})]
    answers.append(keyed_client.get("/metrics", headers={"Authorization": f"Bearer {KEY}"}))
    answers.append(keyed_client.get("/openapi.json", headers={"X-API-Key": KEY}))
    for secret in (KEY, OTHER_KEY, NEAR_MISS):
        assert secret not in caplog.text
        for r in answers:
            assert secret not in r.text and secret not in str(r.headers)
    s = Settings(api_keys=[KEY], kafka_password="kafka-pw-SECRET", cassandra_password="cass-pw-SECRET")
    for text in (repr(s), str(s)):
        assert KEY not in text and "kafka-pw-SECRET" not in text and "cass-pw-SECRET" not in text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cassandra_credentials_stay_out_of_errors_and_driver_logs(tiny_settings, caplog):
    caplog.set_level(logging.DEBUG)
    s = tiny_settings.model_copy(update={"cassandra_hosts": ["127.0.0.1"], "cassandra_port": _closed_port(),
                                         "cassandra_username": "mixlm", "cassandra_password": "cass-pw-SECRET",
                                         "cassandra_connect_timeout_s": 1.0})
    store = open_store(s)
    with pytest.raises(StoreUnavailable) as exc:
        store.init()
    store.close()
    assert "cass-pw-SECRET" not in str(exc.value) and "cass-pw-SECRET" not in caplog.text


def test_kafka_credentials_reach_the_client_config_and_not_its_logs(caplog):
    s = Settings(kafka_bootstrap=f"127.0.0.1:{_closed_port()}", kafka_security_protocol="SASL_PLAINTEXT",
                 kafka_sasl_mechanism="PLAIN", kafka_username="mixlm", kafka_password="kafka-pw-SECRET")
    config = kafka_config(s)
    assert (config["sasl_mechanism"], config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "PLAIN", "mixlm", "kafka-pw-SECRET")
    assert config["security_protocol"] == "SASL_PLAINTEXT"
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaError) as exc:
        KafkaProducer(**config, bootstrap_timeout_ms=1500)
    assert "kafka-pw-SECRET" not in caplog.text and "kafka-pw-SECRET" not in str(exc.value)


def test_kafka_tls_settings_reach_the_client_config_and_the_ssl_context(tmp_path):
    ca, cert, key = _self_signed(tmp_path)
    s = Settings(kafka_bootstrap="127.0.0.1:9093", kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                 kafka_username="mixlm", kafka_password="kafka-pw-SECRET", kafka_ssl_cafile=str(ca),
                 kafka_ssl_certfile=str(cert), kafka_ssl_keyfile=str(key), kafka_ssl_check_hostname=False)
    config = kafka_config(s)
    assert (config["ssl_cafile"], config["ssl_certfile"], config["ssl_keyfile"]) == (str(ca), str(cert), str(key))
    assert config["ssl_check_hostname"] is False and config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512" and config["sasl_plain_username"] == "mixlm"
    context = kafka_ssl_context(s)  # what Faust/aiokafka take
    assert context is not None and context.check_hostname is False and context.verify_mode == ssl.CERT_REQUIRED
    assert kafka_ssl_context(Settings(kafka_bootstrap="127.0.0.1:9092")) is None  # PLAINTEXT: no TLS
    assert kafka_ssl_context(s.model_copy(update={"kafka_ssl_check_hostname": True})).check_hostname is True


def test_cassandra_tls_context_carries_the_ca_the_client_certificate_and_the_hostname_check(tmp_path):
    ca, cert, key = _self_signed(tmp_path)
    context = client_context(str(ca), str(cert), str(key), check_hostname=False)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is False
    assert any(c["subject"] == ((("commonName", "127.0.0.1"),),) for c in context.get_ca_certs())
    with pytest.raises(FileNotFoundError):  # a wrong path fails at once, not at the first query
        client_context(str(tmp_path / "missing.pem"))


def _self_signed(folder: Path) -> tuple[Path, Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl): (CA file, client certificate, key)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    return cert, cert, key


def test_rendered_service_configs_bind_loopback_only(tmp_path):
    settings = Settings(home=tmp_path)
    for server in servers.servers(settings).values():
        servers.write_configs(server, settings)
    kafka = (tmp_path / "services/kafka/conf/server.properties").read_text()
    cassandra = (tmp_path / "services/cassandra/conf/cassandra.yaml").read_text()
    assert "0.0.0.0" not in kafka and "0.0.0.0" not in cassandra
    assert "listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093" in kafka
    for key in ("listen_address: 127.0.0.1", "rpc_address: 127.0.0.1"):
        assert key in cassandra


# --- the servers `mixlm services up` started ------------------------------------------------------------
def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket the process holds, from /proc (Linux)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_addr)
            if width == 8:
                addr = socket.inet_ntop(socket.AF_INET, raw[::-1])
            else:  # four little-endian 32-bit words
                addr = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
            found.append((addr, int(hex_port, 16)))
    return found


LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


@pytest.mark.integration
def test_running_services_listen_on_loopback_only(kafka_bootstrap, cassandra_hosts):
    for server in servers.servers(Settings()).values():
        pid = lifecycle.running_pid(server)
        assert pid, f"{server.name} from `mixlm services up` is not running"
        listening = _listening_addresses(pid)
        assert (server.host, server.port) in [(a.removeprefix("::ffff:"), p) for a, p in listening]
        assert all(a in LOOPBACK for a, _ in listening), (server.name, listening)
