"""Backfill (cold start, new model version): encode items that have text but no item tokens for the
current model version, or the items of a file. Resumable by construction: it only ever works on what
is still missing, so after a kill the next run picks up where this one stopped."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

import msgspec
from tqdm import tqdm

from encoder_worker.core import EncoderCore
from ingest.producer import Publisher
from ingest.readers import read_file
from mixlm.schemas import ItemText, JobUpdate

log = logging.getLogger(__name__)


class BackfillReport(msgspec.Struct):
    considered: int = 0  # items that needed encoding (or, from a file, valid records)
    encoded: int = 0
    published: int = 0  # --via-kafka: re-published to the items topic instead of written here
    skipped: int = 0  # from a file: already stored with the same content (or newer)
    rejected: Counter = msgspec.field(default_factory=Counter)  # from a file: reason -> count


def as_update(item: ItemText) -> JobUpdate:
    """A stored item as the upsert that would have produced it (same updated_at, so writes stay idempotent)."""
    return JobUpdate(item_id=item.item_id, op="upsert", updated_at=item.updated_at, title=item.title, text=item.text,
                     fields=item.fields)


def missing_batches(core: EncoderCore, batch_size: int) -> Iterator[list[JobUpdate]]:
    for items in core.store.missing_embeddings(core.model_version, batch_size):
        yield [as_update(it) for it in items]


def file_batches(path: Path, core: EncoderCore, batch_size: int, report: BackfillReport) -> Iterator[list[JobUpdate]]:
    batch: list[JobUpdate] = []
    for r in read_file(path, core.settings.max_text_chars):
        if r.update is None:
            report.rejected[r.reason] += 1
            continue
        batch.append(r.update)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_backfill(
    core: EncoderCore,
    batch_size: int,
    source: Path | None = None,
    dry_run: bool = False,
    publisher: Publisher | None = None,
    progress: bool = True,
) -> BackfillReport:
    """Encode (or, with a publisher, re-publish) what is missing; with dry_run only count it."""
    report = BackfillReport()
    batches: Iterable[list[JobUpdate]] = (
        missing_batches(core, batch_size) if source is None else file_batches(source, core, batch_size, report)
    )
    bar = tqdm(desc="backfill (dry run)" if dry_run else "backfill", unit="item", disable=not progress)
    try:
        for batch in batches:
            report.considered += len(batch)
            if source is not None:  # a file may repeat what is stored: only count what needs work
                upserts = [u for u in batch if u.op == "upsert"]
                todo, refresh, _, _ = core.needs_encoding(upserts)
                report.skipped += len(upserts) - len(todo) - len(refresh)
            if dry_run:
                bar.update(len(batch))
                continue
            if publisher is not None:
                for u in batch:
                    publisher.publish(u)
                report.published += len(batch)
            else:
                result = core.apply(batch)
                report.encoded += len(result.embeddings)
            bar.update(len(batch))
        if publisher is not None:
            publisher.flush()
    finally:
        bar.close()
    log.info("backfill: %s", msgspec.structs.asdict(report))
    return report
