"""Security (issue 10): the feature store against a real Cassandra with PasswordAuthenticator and TLS on its
native port (a PRIVATE instance: own home and ports, a self-signed certificate made with keytool). Credentials
and TLS files go through Settings only; a wrong password or an untrusted certificate is a typed
StoreAuthenticationFailed that names what failed and never the password."""

from __future__ import annotations

import logging

import pytest

from encoder_worker.launch import free_port
from feature_store.base import open_store
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.errors import StoreAuthenticationFailed, StoreUnavailable
from mixlm.schemas import ItemText
from mixlm.settings import Settings
from private_instances import (SUPERUSER, make_tls_files, secured_cassandra_down, secured_cassandra_up)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]
USER, PASSWORD = "mixlm_app", "app-pw-SECRET-7c1e"
WRONG = "wrong-pw-SECRET-93ab"


@pytest.fixture(scope="module")
def secured(tmp_path_factory, cassandra_hosts):
    """Settings for a private Cassandra with auth and TLS, with an application role (USER) created in it."""
    home = tmp_path_factory.mktemp("secured_home")
    keystore, ca = make_tls_files(home / "tls")
    s = Settings(home=home, cassandra_hosts=["127.0.0.1"], cassandra_port=free_port(),
                 cassandra_storage_port=free_port(), cassandra_jmx_port=free_port(), cassandra_heap_mb=256,
                 cassandra_keyspace="mixlm_secured", cassandra_ssl_cafile=str(ca), cassandra_connect_timeout_s=5.0)
    secured_cassandra_up(s, keystore)
    try:
        admin = open_store(s.model_copy(update={"cassandra_username": SUPERUSER[0], "cassandra_password": SUPERUSER[1]}))
        admin._connect().execute(f"CREATE ROLE IF NOT EXISTS {USER} WITH PASSWORD = '{PASSWORD}' AND LOGIN = true")
        admin.close()
        yield s, home
    finally:
        secured_cassandra_down(s)


def _failure(settings: Settings, caplog) -> StoreUnavailable:
    caplog.set_level(logging.DEBUG)
    store = open_store(settings)
    try:
        with pytest.raises(StoreUnavailable) as exc:
            store.init()
    finally:
        store.close()
    return exc.value


def test_the_store_with_the_right_credentials_and_ca_inits_writes_and_reads(secured, tiny_settings, tiny_model):
    s, _ = secured
    settings = tiny_settings.model_copy(update={k: getattr(s, k) for k in (
        "cassandra_hosts", "cassandra_port", "cassandra_keyspace", "cassandra_ssl_cafile")} | {
        "cassandra_username": USER, "cassandra_password": PASSWORD})
    items = [ItemText(item_id=f"sec-{i}", title=f"Role {i}", text=f"Posting {i}",
                      content_hash=content_hash(f"Role {i}", f"Posting {i}"), updated_at=1_700_000_000_000 + i)
             for i in range(3)]
    store = open_store(settings)
    try:
        store.init()
        store.put_items(items)
        store.put_embeddings(encode_rows(tiny_model, items, "bf16"))
        assert sorted(store.get_items([i.item_id for i in items])) == ["sec-0", "sec-1", "sec-2"]
        got = store.get_embeddings(tiny_model.model_version, ["sec-0", "sec-2", "nope"])
        assert sorted(got) == ["sec-0", "sec-2"] and got["sec-0"].n_tokens == tiny_model.n_item_tokens
        # the session really is TLS and authenticated as USER, not something that merely answered
        (user,) = store._connect().execute("SELECT username FROM system_views.clients WHERE ssl_enabled = true "
                                            "ALLOW FILTERING").one() or ("none",)
        assert user == USER
    finally:
        store.close()


def test_a_wrong_password_is_a_typed_authentication_error_without_the_password(secured, caplog):
    s, _ = secured
    err = _failure(s.model_copy(update={"cassandra_username": USER, "cassandra_password": WRONG}), caplog)
    assert isinstance(err, StoreAuthenticationFailed)
    assert "authentication failed" in str(err) and USER in str(err)
    print(f"wrong password: {err}")
    for secret in (WRONG, PASSWORD):
        assert secret not in str(err) and secret not in caplog.text


def test_no_credentials_against_password_auth_is_the_same_typed_error(secured, caplog):
    s, _ = secured
    err = _failure(s, caplog)
    assert isinstance(err, StoreAuthenticationFailed) and "authentication failed" in str(err)


def test_a_client_that_does_not_trust_the_servers_certificate_is_refused_as_tls_authentication(secured, caplog):
    s, home = secured
    _, other_ca = make_tls_files(home / "other_tls", "other")  # a CA that did not sign the server's certificate
    for tls in ({"cassandra_ssl_cafile": str(other_ca)}, {"cassandra_ssl_cafile": "", "cassandra_ssl": True}):
        err = _failure(s.model_copy(update={"cassandra_username": USER, "cassandra_password": PASSWORD} | tls), caplog)
        assert isinstance(err, StoreAuthenticationFailed), (tls, err)
        assert "TLS" in str(err) and "certificate" in str(err) and PASSWORD not in str(err)
        print(f"untrusted certificate ({tls}): {err}")
    assert PASSWORD not in caplog.text


def test_a_plaintext_client_cannot_use_the_tls_port(secured, caplog):
    s, _ = secured
    err = _failure(s.model_copy(update={"cassandra_username": USER, "cassandra_password": PASSWORD,
                                        "cassandra_ssl_cafile": "", "cassandra_connect_timeout_s": 3.0}), caplog)
    assert "Cassandra at 127.0.0.1" in str(err) and "requires TLS" in str(err)
    assert PASSWORD not in str(err) + caplog.text
    print(f"plaintext client against the TLS port: {err}")
