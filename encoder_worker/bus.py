"""The embedded in-process bus: the default when no Kafka is configured (Settings.kafka_bootstrap empty).

It stands in for the items topic inside one process: messages are queued in order with offsets, and a
consumer thread takes batches (size- and time-bound, like the Faust agent) into the same EncoderCore.
Nothing survives the process; use Kafka for durability and more than one worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter

import msgspec

from encoder_worker.core import BatchResult, DeadLetter, EncoderCore, Message, now_ms
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode
_STOP = object()


class EmbeddedBus:
    """A Publisher (see ingest.producer) whose consumer is an in-process EncoderCore."""

    def __init__(self, core: EncoderCore, batch_size: int, batch_timeout_s: float, owns_store: bool = False):
        self.core = core
        self.batch_size = batch_size
        self.batch_timeout_s = batch_timeout_s
        self.delivered = 0  # messages processed (written, skipped as unchanged, or dead-lettered)
        self.failures: Counter = Counter()
        self.dead_letters: list[DeadLetter] = []
        self.totals: Counter = Counter()
        self._owns_store = owns_store
        self._queue: queue.Queue = queue.Queue()
        self._offset = 0
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._consume, name="mixlm-embedded-bus", daemon=True)
        self._thread.start()

    def publish(self, update: JobUpdate) -> None:
        self.send(update.item_id.encode(), _encode(update))

    def send(self, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None) -> None:
        with self._idle:
            offset, self._offset = self._offset, self._offset + 1
            self._pending += 1
        self._queue.put(Message(key, value, 0, offset, now_ms() if timestamp_ms is None else timestamp_ms))

    def flush(self, timeout_s: float | None = None) -> None:
        """Block until everything sent so far has been processed."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s):
                raise TimeoutError(f"{self._pending} messages still pending after {timeout_s}s")

    def close(self) -> None:
        self.flush()
        self._queue.put(_STOP)
        self._thread.join()
        if self._owns_store:
            self.core.store.close()

    def _take(self) -> list[Message] | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        deadline = time.monotonic() + self.batch_timeout_s
        while len(batch) < self.batch_size:
            try:
                m = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if m is _STOP:
                self._queue.put(_STOP)  # finish this batch, stop on the next take
                break
            batch.append(m)
        return batch

    def _consume(self) -> None:
        while (batch := self._take()) is not None:
            ok = False
            try:
                self._record(self.core.process(batch))
                ok = True
            except Exception as e:  # a store outage: nothing durable to retry from, so count and go on
                log.exception("embedded bus: batch of %d failed", len(batch))
                self.failures[f"{type(e).__name__}: {e}"] += len(batch)
            finally:
                with self._idle:
                    self.delivered += len(batch) if ok else 0
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _record(self, result: BatchResult) -> None:
        self.dead_letters += result.dead_letters
        self.totals.update(encoded=len(result.embeddings), deleted=len(result.deletes), unchanged=result.unchanged,
                           stale=result.stale, superseded=result.superseded, dead_letters=len(result.dead_letters))


def open_embedded_bus(settings: Settings) -> EmbeddedBus:
    """Model + store + core + bus, for `mixlm post` without Kafka."""
    from feature_store.base import open_store
    from mixlm.weights import build_mixlm

    store = open_store(settings)
    store.init()
    core = EncoderCore(build_mixlm(settings), store, settings)
    return EmbeddedBus(core, settings.worker_batch_size, settings.worker_batch_timeout_s, owns_store=True)
