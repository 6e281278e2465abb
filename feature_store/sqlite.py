"""The embedded feature store: one SQLite file in WAL mode, same contract as Cassandra.

Cassandra's last-write-wins by write timestamp is reproduced explicitly: an upsert lands only when its
timestamp is newer than the stored row's and than the item's delete tombstone (a tie goes to the delete,
as in Cassandra), so replays are no-ops and a late, older upsert never revives a deleted item.
Thread-safe: one connection per thread (the ranker reads from a thread pool); WAL lets reads run
beside a writer.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Sequence

import msgspec

from feature_store.base import MAX_READ, FeatureStore
from feature_store.validate import check_embeddings, check_items
from mixlm.errors import StoreUnavailable
from mixlm.schemas import ItemEmbedding, ItemText

_CHUNK = 500  # ids per IN (...) query, well under SQLite's bound-parameter limit

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    item_id TEXT PRIMARY KEY, title TEXT NOT NULL, text TEXT NOT NULL, fields TEXT NOT NULL,
    content_hash BLOB NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS item_embeddings (
    model_version TEXT NOT NULL, item_id TEXT NOT NULL, tokens BLOB NOT NULL, n_tokens INTEGER NOT NULL,
    dim INTEGER NOT NULL, dtype TEXT NOT NULL, content_hash BLOB NOT NULL,
    source_updated_at INTEGER NOT NULL, encoded_at INTEGER NOT NULL,
    PRIMARY KEY (model_version, item_id));
-- delete tombstones, kept so an upsert older than the delete stays ignored (Cassandra does this itself)
CREATE TABLE IF NOT EXISTS item_tombstones (item_id TEXT PRIMARY KEY, deleted_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS embedding_tombstones (
    model_version TEXT NOT NULL, item_id TEXT NOT NULL, deleted_at INTEGER NOT NULL,
    PRIMARY KEY (model_version, item_id));
"""

_PUT_ITEM = """
INSERT INTO items (item_id, title, text, fields, content_hash, updated_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6
WHERE NOT EXISTS (SELECT 1 FROM item_tombstones WHERE item_id = ?1 AND deleted_at >= ?6)
ON CONFLICT (item_id) DO UPDATE SET title = excluded.title, text = excluded.text, fields = excluded.fields,
    content_hash = excluded.content_hash, updated_at = excluded.updated_at
WHERE excluded.updated_at > items.updated_at
"""

_PUT_EMBEDDING = """
INSERT INTO item_embeddings (model_version, item_id, tokens, n_tokens, dim, dtype, content_hash,
                             source_updated_at, encoded_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
WHERE NOT EXISTS (SELECT 1 FROM embedding_tombstones
                  WHERE model_version = ?1 AND item_id = ?2 AND deleted_at >= ?8)
ON CONFLICT (model_version, item_id) DO UPDATE SET tokens = excluded.tokens, n_tokens = excluded.n_tokens,
    dim = excluded.dim, dtype = excluded.dtype, content_hash = excluded.content_hash,
    source_updated_at = excluded.source_updated_at, encoded_at = excluded.encoded_at
WHERE excluded.source_updated_at > item_embeddings.source_updated_at
"""

_EMB_COLUMNS = "model_version, item_id, tokens, n_tokens, dim, dtype, content_hash, source_updated_at, encoded_at"
_ITEM_COLUMNS = "item_id, title, text, fields, content_hash, updated_at"


class SQLiteStore(FeatureStore):
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._ready = False

    # --- connections ------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE for writes);
                # check_same_thread=False only so close() can close every thread's connection.
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except (sqlite3.Error, OSError) as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        if not self._ready:
            self.init()
        return conn

    def init(self) -> None:
        self._ready = True  # set first: _conn() below must not recurse into init()
        try:
            self._conn().executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._ready = False
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def ping(self) -> None:
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _write(self, sql: str, params: list[tuple]) -> None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, params)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def _select_in(self, sql: str, head: tuple, ids: Sequence[str]) -> list[tuple]:
        if len(ids) > MAX_READ:
            raise ValueError(f"at most {MAX_READ} ids per read, got {len(ids)}")
        conn, rows = self._conn(), []
        unique = list(dict.fromkeys(ids))
        try:
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i:i + _CHUNK]
                rows += conn.execute(sql.format(marks=",".join("?" * len(chunk))), (*head, *chunk)).fetchall()
        except sqlite3.OperationalError as exc:  # locked past the timeout, disk I/O error, ...
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
        return rows

    # --- item tokens --------------------------------------------------------------------------------
    def put_embeddings(self, rows: Sequence[ItemEmbedding]) -> None:
        check_embeddings(rows)
        self._write(_PUT_EMBEDDING, [(r.model_version, r.item_id, r.tokens, r.n_tokens, r.dim, r.dtype, r.content_hash,
                                      r.source_updated_at, r.encoded_at) for r in rows])

    def get_embeddings(self, model_version: str, item_ids: Sequence[str]) -> dict[str, ItemEmbedding]:
        sql = f"SELECT {_EMB_COLUMNS} FROM item_embeddings WHERE model_version = ? AND item_id IN ({{marks}})"
        out = {}
        for mv, iid, tokens, n, dim, dtype, chash, src, enc in self._select_in(sql, (model_version,), item_ids):
            out[iid] = ItemEmbedding(model_version=mv, item_id=iid, tokens=bytes(tokens), n_tokens=n, dim=dim,
                                     dtype=dtype, content_hash=bytes(chash), source_updated_at=src, encoded_at=enc)
        return out

    # --- item text ----------------------------------------------------------------------------------
    def put_items(self, rows: Sequence[ItemText]) -> None:
        check_items(rows)
        self._write(_PUT_ITEM, [(r.item_id, r.title, r.text, msgspec.json.encode(r.fields).decode(), r.content_hash,
                                 r.updated_at) for r in rows])

    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemText]:
        sql = f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id IN ({{marks}})"
        return {row[0]: _item(row) for row in self._select_in(sql, (), item_ids)}

    def delete_items(self, model_version: str, deletes: Sequence[tuple[str, int]]) -> None:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            for item_id, ts in deletes:
                # a delete older than the stored row loses, exactly like a Cassandra tombstone would
                conn.execute("DELETE FROM items WHERE item_id = ? AND updated_at <= ?", (item_id, ts))
                conn.execute("DELETE FROM item_embeddings WHERE model_version = ? AND item_id = ? AND source_updated_at <= ?",
                             (model_version, item_id, ts))
                conn.execute("INSERT INTO item_tombstones VALUES (?, ?) ON CONFLICT (item_id) DO UPDATE "
                             "SET deleted_at = max(deleted_at, excluded.deleted_at)", (item_id, ts))
                conn.execute("INSERT INTO embedding_tombstones VALUES (?, ?, ?) ON CONFLICT (model_version, item_id) "
                             "DO UPDATE SET deleted_at = max(deleted_at, excluded.deleted_at)", (model_version, item_id, ts))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc

    def scan_items(self, batch_size: int = 500) -> Iterator[list[ItemText]]:
        # keyset paging: stable under concurrent writes and cheap at any offset
        last = ""
        while True:
            try:
                rows = self._conn().execute(
                    f"SELECT {_ITEM_COLUMNS} FROM items WHERE item_id > ? ORDER BY item_id LIMIT ?", (last, batch_size)
                ).fetchall()
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from exc
            if not rows:
                return
            yield [_item(r) for r in rows]
            last = rows[-1][0]

    def count(self) -> dict[str, int]:
        """Rows per table (for `mixlm store stats`)."""
        conn = self._conn()
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("items", "item_embeddings", "item_tombstones")}


def _item(row: tuple) -> ItemText:
    item_id, title, text, fields, chash, updated_at = row
    return ItemText(item_id=item_id, title=title, text=text, fields=msgspec.json.decode(fields),
                    content_hash=bytes(chash), updated_at=updated_at)
