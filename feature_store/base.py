"""The feature store seam: one small interface, one file per backend (Feast's online-store shape).

Rows are keyed by (model_version, item_id) for item tokens and by item_id for item text. Every write
carries the source ``updated_at`` (ms) as its timestamp: the newest timestamp wins, so replays are
idempotent and an older update, or an upsert older than a delete, never overwrites a newer state.
"""

from __future__ import annotations

import abc
from typing import Iterator, Sequence

from mixlm.schemas import ItemEmbedding, ItemText
from mixlm.settings import Settings

MAX_READ = 1000  # ids per get_* call, as the ranker asks for at most this many


class FeatureStore(abc.ABC):
    """Backends raise mixlm.errors.StoreUnavailable when the store cannot be reached and
    mixlm.errors.CodecError for item tokens whose bytes do not match n_tokens x dim x dtype."""

    @abc.abstractmethod
    def init(self) -> None:
        """Create keyspace/tables if missing (idempotent)."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Return if the store answers; raise StoreUnavailable otherwise."""

    @abc.abstractmethod
    def put_embeddings(self, rows: Sequence[ItemEmbedding]) -> None:
        """Write item tokens; each row's source_updated_at is its write timestamp."""

    @abc.abstractmethod
    def get_embeddings(self, model_version: str, item_ids: Sequence[str]) -> dict[str, ItemEmbedding]:
        """Item tokens for up to MAX_READ ids under one model_version; absent ids are left out."""

    @abc.abstractmethod
    def put_items(self, rows: Sequence[ItemText]) -> None:
        """Write item text; each row's updated_at is its write timestamp."""

    @abc.abstractmethod
    def get_items(self, item_ids: Sequence[str]) -> dict[str, ItemText]:
        """Item text for up to MAX_READ ids; absent or deleted ids are left out."""

    @abc.abstractmethod
    def delete_items(self, model_version: str, deletes: Sequence[tuple[str, int]]) -> None:
        """Delete (item_id, updated_at) pairs: the item text and its tokens under model_version.
        A later write with an older timestamp must not bring the item back."""

    @abc.abstractmethod
    def scan_items(self, batch_size: int = 500) -> Iterator[list[ItemText]]:
        """All live items, in batches (for backfill and re-encoding)."""

    def missing_embeddings(self, model_version: str, batch_size: int = 500) -> Iterator[list[ItemText]]:
        """Live items that have no item tokens (or stale ones, by content hash) under model_version."""
        for batch in self.scan_items(batch_size):
            have = self.get_embeddings(model_version, [it.item_id for it in batch])
            todo = [it for it in batch if it.item_id not in have or have[it.item_id].content_hash != it.content_hash]
            if todo:
                yield todo

    def close(self) -> None:
        """Release connections."""


def open_store(settings: Settings) -> FeatureStore:
    """Cassandra when contact points are configured, else the embedded SQLite store."""
    if settings.cassandra_hosts:
        from feature_store.cassandra import CassandraStore

        return CassandraStore(settings)
    from feature_store.sqlite import SQLiteStore

    return SQLiteStore(settings.resolved_sqlite_path())
