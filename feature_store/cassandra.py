"""The Cassandra feature store (DESIGN.md "Contracts/Cassandra"; Feast's Cassandra online store shape).

- item_embeddings: PRIMARY KEY ((model_version, item_id)), so every read is a single-partition lookup;
  a new model version writes a partition set beside the old one.
- items: keyed by item_id (title/text/fields/content_hash) for backfill, re-encoding and the text baseline.
- Every write and delete carries USING TIMESTAMP = the source updated_at (ms -> µs): Cassandra's
  last-write-wins then makes replays idempotent, an older update lose, and a delete shadow any upsert
  that is not newer (a tie goes to the delete).
- Reads of up to 1,000 ids run as concurrent prepared selects: one per id (cassandra_read_batch=1, the
  classic single-partition pattern) or, by default, `item_id IN ?` chunks of 50 ids. The Python driver spends
  ~150-200 µs of CPU per request, so 1,000 single selects cost ~0.2 s of client CPU; 20 IN chunks cost ~10 ms
  and let the coordinator do the fan-out (`mixlm bench store --read-batch 1` vs the default).
- The default libev connection: AsyncioConnection with protocol v5 fails concurrent reads ("CRC mismatch").
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from typing import Iterator, Sequence

from cassandra import (AuthenticationFailed, ConsistencyLevel, CoordinationFailure, InvalidRequest, OperationTimedOut, ReadTimeout,
                       Unavailable, WriteTimeout)
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.connection import ConnectionException, ConnectionShutdown
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import tuple_factory

from feature_store.base import MAX_READ, FeatureStore
from feature_store.validate import check_embeddings, check_items
from mixlm.errors import StoreAuthenticationFailed, StoreUnavailable
from mixlm.schemas import ItemEmbedding, ItemText
from mixlm.settings import Settings
from mixlm.tls import client_context

log = logging.getLogger(__name__)

# errors that mean "the store cannot serve this now" (HTTP 503), as opposed to a bug in our CQL
UNAVAILABLE = (NoHostAvailable, OperationTimedOut, Unavailable, ReadTimeout, WriteTimeout, CoordinationFailure,
               ConnectionException)
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")
_EMB_SELECT = ("item_id, tokens, n_tokens, dim, dtype, content_hash, toUnixTimestamp(source_updated_at), "
               "toUnixTimestamp(encoded_at)")
_ITEM_SELECT = "item_id, title, text, fields, content_hash, toUnixTimestamp(updated_at)"


def schema(keyspace: str, replication_factor: int) -> list[str]:
    """The CQL that `mixlm store init` runs (idempotent)."""
    if not _IDENT.match(keyspace):
        raise ValueError(f"invalid keyspace name {keyspace!r}")
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication_factor)}}}",
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.item_embeddings (
            model_version text, item_id text, tokens blob, n_tokens int, dim int, dtype text,
            content_hash blob, source_updated_at timestamp, encoded_at timestamp,
            PRIMARY KEY ((model_version, item_id)))""",
        f"""CREATE TABLE IF NOT EXISTS {keyspace}.items (
            item_id text PRIMARY KEY, title text, text text, fields frozen<map<text, text>>,
            content_hash blob, updated_at timestamp)""",
    ]


def _micros(ms: int) -> int:
    return int(ms) * 1000  # USING TIMESTAMP is in microseconds; the platform's updated_at in milliseconds


class CassandraStore(FeatureStore):
    """Connects lazily (the first call), so an app can start and report /readyz while Cassandra is down."""

    def __init__(self, settings: Settings):
        if not _IDENT.match(settings.cassandra_keyspace):
            raise ValueError(f"invalid keyspace name {settings.cassandra_keyspace!r}")
        self.settings = settings
        self.keyspace = settings.cassandra_keyspace
        self.consistency = ConsistencyLevel.name_to_value[settings.cassandra_consistency.upper()]
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._stmts: dict | None = None
        self._lock = threading.Lock()

    # --- connection ---------------------------------------------------------------------------------
    def _connect(self) -> Session:
        if self._session is not None:
            return self._session
        with self._lock:
            if self._session is None:
                s = self.settings
                profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                                           consistency_level=self.consistency, request_timeout=s.cassandra_request_timeout_s,
                                           row_factory=tuple_factory)
                auth = PlainTextAuthProvider(s.cassandra_username, s.cassandra_password) if s.cassandra_username else None
                tls = None
                if s.cassandra_ssl or s.cassandra_ssl_cafile:
                    tls = client_context(s.cassandra_ssl_cafile, s.cassandra_ssl_certfile, s.cassandra_ssl_keyfile,
                                         s.cassandra_ssl_check_hostname)
                cluster = Cluster(contact_points=s.cassandra_hosts, port=s.cassandra_port, protocol_version=5,
                                  execution_profiles={EXEC_PROFILE_DEFAULT: profile}, auth_provider=auth,
                                  ssl_context=tls, connect_timeout=s.cassandra_connect_timeout_s,
                                  control_connection_timeout=s.cassandra_connect_timeout_s)
                try:
                    self._session = cluster.connect()
                except UNAVAILABLE as exc:
                    cluster.shutdown()
                    raise self._unavailable(exc) from exc
                self._cluster = cluster
        return self._session

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        s = self.settings
        where = ",".join(s.cassandra_hosts) + f":{s.cassandra_port}"
        causes = list(exc.errors.values()) if isinstance(exc, NoHostAvailable) else [exc]
        if any(isinstance(c, AuthenticationFailed) for c in causes):
            who = f"user {s.cassandra_username!r}" if s.cassandra_username else "no credentials"
            # the driver's own text names the user at most; say which settings to fix
            return StoreAuthenticationFailed(
                f"Cassandra at {where}: authentication failed for {who} "
                f"(check MIXLM_CASSANDRA_USERNAME / MIXLM_CASSANDRA_PASSWORD)")
        detail = _tls_verify_failure(causes)
        if detail:
            return StoreAuthenticationFailed(
                f"Cassandra at {where}: TLS authentication of the server failed ({detail}); check "
                f"MIXLM_CASSANDRA_SSL_CAFILE / MIXLM_CASSANDRA_SSL_CHECK_HOSTNAME")
        hint = ""
        if not (s.cassandra_ssl or s.cassandra_ssl_cafile) and any(isinstance(c, (ConnectionResetError, ConnectionShutdown)) for c in causes):
            hint = " (a node that requires TLS resets plaintext clients: set MIXLM_CASSANDRA_SSL_CAFILE)"
        return StoreUnavailable(f"Cassandra at {where}: {type(exc).__name__}: {exc}{hint}")

    def _prepared(self) -> dict:
        if self._stmts is not None:
            return self._stmts
        session, ks = self._connect(), self.keyspace
        cql = {
            "put_emb": f"INSERT INTO {ks}.item_embeddings (model_version, item_id, tokens, n_tokens, dim, dtype, "
                       f"content_hash, source_updated_at, encoded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            "get_emb": f"SELECT {_EMB_SELECT} FROM {ks}.item_embeddings WHERE model_version = ? AND item_id = ?",
            "get_emb_in": f"SELECT {_EMB_SELECT} FROM {ks}.item_embeddings WHERE model_version = ? AND item_id IN ?",
            "del_emb": f"DELETE FROM {ks}.item_embeddings USING TIMESTAMP ? WHERE model_version = ? AND item_id = ?",
            "put_item": f"INSERT INTO {ks}.items (item_id, title, text, fields, content_hash, updated_at) "
                        f"VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
            "get_item": f"SELECT {_ITEM_SELECT} FROM {ks}.items WHERE item_id = ?",
            "get_item_in": f"SELECT {_ITEM_SELECT} FROM {ks}.items WHERE item_id IN ?",
            "del_item": f"DELETE FROM {ks}.items USING TIMESTAMP ? WHERE item_id = ?",
            "scan": f"SELECT {_ITEM_SELECT} FROM {ks}.items",
        }
        try:
            stmts = {name: session.prepare(q) for name, q in cql.items()}
        except InvalidRequest as exc:
            raise StoreUnavailable(f"Cassandra keyspace {ks} or its tables are missing ({exc}): run `mixlm store init`") from exc
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        for stmt in stmts.values():
            stmt.is_idempotent = True  # every write carries its own timestamp: retrying it is safe
        self._stmts = stmts
        return stmts

    def init(self) -> None:
        session = self._connect()
        try:
            for statement in schema(self.keyspace, self.settings.cassandra_replication_factor):
                session.execute(statement, timeout=60.0)  # schema changes wait for agreement
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        self._stmts = None

    def drop(self) -> None:
        """DROP the keyspace (benchmarks and tests that made one of their own; never the serving one by accident:
        the caller names it in Settings)."""
        try:
            self._connect().execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=60.0)
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        self._stmts = None

    def ping(self) -> None:
        try:
            self._connect().execute("SELECT release_version FROM system.local")
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._cluster is not None:
                self._cluster.shutdown()
            self._cluster = self._session = self._stmts = None

    def _run(self, name: str, params: list[tuple]) -> list:
        """Execute one prepared statement for many parameter tuples concurrently; rows of each, in order."""
        if not params:
            return []
        stmt = self._prepared()[name]
        try:
            results = execute_concurrent_with_args(self._session, stmt, params,
                                                   concurrency=self.settings.cassandra_read_concurrency,
                                                   raise_on_first_error=True)
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        return [result for _ok, result in results]

    # --- item tokens --------------------------------------------------------------------------------
    def put_embeddings(self, rows: Sequence[ItemEmbedding]) -> None:
        check_embeddings(rows)
        self._run("put_emb", [(r.model_version, r.item_id, r.tokens, r.n_tokens, r.dim, r.dtype, r.content_hash,
                               r.source_updated_at, r.encoded_at, _micros(r.source_updated_at)) for r in rows])

    def _read(self, name: str, head: tuple, item_ids: Sequence[str]) -> Iterator[tuple]:
        """Rows for the ids, by single-partition selects or IN chunks (cassandra_read_batch), concurrently."""
        unique, k = _unique(item_ids), self.settings.cassandra_read_batch
        if k == 1:
            params = [(*head, i) for i in unique]
        else:
            name, params = name + "_in", [(*head, unique[i:i + k]) for i in range(0, len(unique), k)]
        for result in self._run(name, params):
            yield from result

    def get_embeddings(self, model_version: str, item_ids: Sequence[str]) -> dict[str, ItemEmbedding]:
        out = {}
        for iid, tokens, n, dim, dtype, chash, src, enc in self._read("get_emb", (model_version,), item_ids):
            out[iid] = ItemEmbedding(model_version=model_version, item_id=iid, tokens=tokens, n_tokens=n, dim=dim,
                                     dtype=dtype, content_hash=chash, source_updated_at=src, encoded_at=enc)
        return out

    # --- item text ----------------------------------------------------------------------------------
    def put_items(self, rows: Sequence[ItemText]) -> None:
        check_items(rows)
        self._run("put_item", [(r.item_id, r.title, r.text, r.fields, r.content_hash, r.updated_at,
                                _micros(r.updated_at)) for r in rows])

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemText]:
        return {row[0]: _item(row) for row in self._read("get_item", (), item_ids)}

    def delete_items(self, model_version: str, deletes: Sequence[tuple[str, int]]) -> None:
        self._run("del_item", [(_micros(ts), item_id) for item_id, ts in deletes])
        self._run("del_emb", [(_micros(ts), model_version, item_id) for item_id, ts in deletes])

    def scan_items(self, batch_size: int = 500) -> Iterator[list[ItemText]]:
        bound = self._prepared()["scan"].bind(())
        bound.fetch_size = batch_size  # on the bound statement: the prepared one is shared across threads
        try:
            result = self._session.execute(bound)
            while True:
                page = [_item(row) for row in result.current_rows]
                if page:
                    yield page
                if not result.has_more_pages:
                    return
                result.fetch_next_page()
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc

    def count(self) -> dict[str, int]:
        """Rows per table (full scans: for `mixlm store stats` on dev-sized data only)."""
        session = self._connect()
        try:
            return {t: session.execute(f"SELECT count(*) FROM {self.keyspace}.{t}", timeout=120.0).one()[0]
                    for t in ("items", "item_embeddings")}
        except UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc


def _tls_verify_failure(causes: list) -> str | None:
    """The certificate-verification reason among connection errors, if that is why they failed. The driver
    re-raises the SSLError as a plain OSError ("... Last error: [SSL: CERTIFICATE_VERIFY_FAILED] ..."), so the
    text is what is left to look at."""
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message
        text = str(cause)
        if isinstance(cause, OSError) and "CERTIFICATE_VERIFY_FAILED" in text:
            return text.rsplit("certificate verify failed:", 1)[-1].split("(_ssl")[0].strip() or "certificate verify failed"
    return None


def _unique(item_ids: Sequence[str]) -> list[str]:
    if len(item_ids) > MAX_READ:
        raise ValueError(f"at most {MAX_READ} ids per read, got {len(item_ids)}")
    return list(dict.fromkeys(item_ids))


def _item(row: tuple) -> ItemText:
    item_id, title, text, fields, chash, updated_at = row
    return ItemText(item_id=item_id, title=title or "", text=text or "", fields=dict(fields or {}),
                    content_hash=chash or b"", updated_at=updated_at)
