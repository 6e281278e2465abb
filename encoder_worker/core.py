"""The encoder worker's processing core, free of any transport (paper §5.1, nearline encoding).

``process(batch)`` takes raw messages as Kafka (or the embedded bus) delivers them and:
1. decodes and checks each one; invalid ones become dead letters with the reason and source offset;
2. keeps the newest update per item within the batch (deletes included);
3. drops upserts whose content hash is unchanged (or that are older than what is stored) for the
   current model version;
4. encodes the rest in one batched ``MixLM.encode_items`` call;
5. writes item text, then item tokens, then deletes, each with the source ``updated_at`` as timestamp.
Every write is idempotent, so a batch replayed after a crash (at-least-once) ends in the same state.
"""

from __future__ import annotations

import logging
import time
from typing import Sequence

import msgspec

from encoder_worker.metrics import WorkerMetrics
from feature_store.base import MAX_READ, FeatureStore
from ingest.validation import parse_update
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.errors import InvalidJobUpdate, StoreUnavailable
from mixlm.model import MixLM
from mixlm.schemas import ItemEmbedding, ItemText, JobUpdate
from mixlm.settings import Settings

log = logging.getLogger(__name__)


class Message(msgspec.Struct):
    """One record as a transport delivers it. A null value is a tombstone (delete by key)."""

    key: bytes | None
    value: bytes | None
    partition: int = 0
    offset: int = 0
    timestamp_ms: int = 0  # the record's timestamp: the updated_at of a tombstone


class DeadLetter(msgspec.Struct):
    """A message the worker cannot use, with why and where it came from (DLQ headers)."""

    key: bytes | None
    value: bytes | None
    error: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        return [("error", self.error.encode()[:4096]), ("source_partition", str(self.partition).encode()),
                ("source_offset", str(self.offset).encode())]


class BatchResult(msgspec.Struct):
    """What one batch wrote, and what goes to the dead-letter topic."""

    embeddings: list[ItemEmbedding] = []
    items: list[ItemText] = []
    deletes: list[tuple[str, int]] = []
    dead_letters: list[DeadLetter] = []
    superseded: int = 0  # older updates of an item replaced by a newer one in the same batch
    unchanged: int = 0  # upserts skipped: this exact update (content hash and time) is already stored
    stale: int = 0  # upserts skipped: the store already holds a newer update of the item
    seconds: float = 0.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def latest_per_item(updates: Sequence[JobUpdate]) -> list[JobUpdate]:
    """The newest update of each item (by updated_at; a tie goes to the later message, as Kafka orders them)."""
    newest: dict[str, JobUpdate] = {}
    for u in updates:
        held = newest.get(u.item_id)
        if held is None or u.updated_at >= held.updated_at:
            newest[u.item_id] = u
    return list(newest.values())


def _dead(m: Message, error: str) -> DeadLetter:
    return DeadLetter(m.key, m.value, error, m.partition, m.offset)


def _item_text(u: JobUpdate) -> ItemText:
    return ItemText(item_id=u.item_id, title=u.title, text=u.text, fields=u.fields,
                    content_hash=content_hash(u.title, u.text, u.fields), updated_at=u.updated_at)


class EncoderCore:
    """Holds the model and the store for one worker; created at startup, used for every batch."""

    def __init__(self, model: MixLM, store: FeatureStore, settings: Settings, metrics: WorkerMetrics | None = None):
        self.model = model
        self.store = store
        self.settings = settings
        self.metrics = metrics or WorkerMetrics()

    @property
    def model_version(self) -> str:
        return self.model.model_version

    def decode(self, batch: Sequence[Message]) -> tuple[list[tuple[JobUpdate, Message]], list[DeadLetter]]:
        """Messages -> checked updates with their message (tombstones become deletes), and dead letters."""
        updates: list[tuple[JobUpdate, Message]] = []
        dead: list[DeadLetter] = []
        for m in batch:
            try:
                updates.append((self._decode_one(m), m))
            except InvalidJobUpdate as e:
                dead.append(_dead(m, str(e)))
        return updates, dead

    def _decode_one(self, m: Message) -> JobUpdate:
        try:
            key = m.key.decode("utf-8") if m.key is not None else None
        except UnicodeDecodeError as e:
            raise InvalidJobUpdate(f"message key is not UTF-8: {e}") from e
        if m.value is None:
            if not key:
                raise InvalidJobUpdate("tombstone without a key: no item to delete")
            return JobUpdate(item_id=key, op="delete", updated_at=m.timestamp_ms)
        return parse_update(m.value, self.settings.max_text_chars, key=key)

    def process(self, batch: Sequence[Message]) -> BatchResult:
        """Decode, dedupe, encode and write one batch; never raises on bad input (it becomes dead letters).
        Raises StoreUnavailable (nothing is lost: the caller retries the batch before committing)."""
        started = time.perf_counter()
        updates, dead = self.decode(batch)
        try:
            result = self.apply([u for u, _ in updates])
        except StoreUnavailable:
            raise
        except Exception:
            # Something in the batch breaks encoding or the write: redo it one message at a time, in
            # order, so only the message that fails is dead-lettered and the rest goes through.
            log.exception("batch of %d failed; isolating the failing message", len(batch))
            result = self._one_by_one(updates)
        result.dead_letters = dead + result.dead_letters
        result.seconds = time.perf_counter() - started
        self.metrics.dlq.inc(len(result.dead_letters))
        self.metrics.batch_latency.observe(result.seconds)
        for d in result.dead_letters:
            log.warning("dead letter p%d@%d: %s", d.partition, d.offset, d.error)
        return result

    def _one_by_one(self, updates: list[tuple[JobUpdate, Message]]) -> BatchResult:
        total = BatchResult()
        for u, m in updates:
            try:
                r = self.apply([u])
            except StoreUnavailable:
                raise
            except Exception as e:
                total.dead_letters.append(_dead(m, f"processing failed: {type(e).__name__}: {e}"))
                continue
            total.embeddings += r.embeddings
            total.items += r.items
            total.deletes += r.deletes
            total.unchanged += r.unchanged
            total.stale += r.stale
        return total

    def apply(self, updates: Sequence[JobUpdate]) -> BatchResult:
        """Write checked updates (also the backfill's entry point): newest per item, skip unchanged, encode, write."""
        latest = latest_per_item(updates)
        result = BatchResult(superseded=len(updates) - len(latest))
        upserts = [u for u in latest if u.op == "upsert"]
        result.deletes = [(u.item_id, u.updated_at) for u in latest if u.op == "delete"]
        todo, refresh, result.unchanged, result.stale = self.needs_encoding(upserts)
        fresh = [*todo, *(u for u, _ in refresh)]
        if fresh:
            result.items = [_item_text(u) for u in fresh]
            result.embeddings = self._encode(result.items[: len(todo)])
            # Same content, newer timestamp: re-stamp the stored tokens instead of encoding again, so a
            # delete older than this update (arriving late) cannot remove the item.
            result.embeddings += [msgspec.structs.replace(have, source_updated_at=u.updated_at) for u, have in refresh]
            # Text before tokens: a crash in between leaves an item that replay or backfill re-encodes,
            # never tokens whose text is missing (which the unchanged-hash check would then skip forever).
            self.store.put_items(result.items)
            self.store.put_embeddings(result.embeddings)
        if result.deletes:
            self.store.delete_items(self.model_version, result.deletes)
        stored = now_ms()
        for u in fresh:
            self.metrics.freshness.observe(max(0, stored - u.updated_at) / 1000)
        self.metrics.items_encoded.inc(len(todo))
        self.metrics.items_unchanged.inc(result.unchanged)
        self.metrics.items_deleted.inc(len(result.deletes))
        return result

    def needs_encoding(
        self, upserts: list[JobUpdate]
    ) -> tuple[list[JobUpdate], list[tuple[JobUpdate, ItemEmbedding]], int, int]:
        """Split upserts into: to encode; unchanged content but newer (re-stamp); unchanged; stale."""
        stored: dict[str, ItemEmbedding] = {}
        for s in range(0, len(upserts), MAX_READ):
            stored |= self.store.get_embeddings(self.model_version, [u.item_id for u in upserts[s : s + MAX_READ]])
        todo, refresh, unchanged, stale = [], [], 0, 0
        for u in upserts:
            have = stored.get(u.item_id)
            if have is None:
                todo.append(u)
            elif have.source_updated_at > u.updated_at:
                stale += 1  # the store keeps the newer one anyway; encoding this would be wasted work
            elif have.content_hash != content_hash(u.title, u.text, u.fields):
                todo.append(u)
            elif have.source_updated_at < u.updated_at:
                refresh.append((u, have))
            else:
                unchanged += 1  # a replay of what is stored
        return todo, refresh, unchanged, stale

    def _encode(self, items: list[ItemText]) -> list[ItemEmbedding]:
        return encode_rows(self.model, items, self.settings.store_dtype, batch_size=self.settings.worker_batch_size)
