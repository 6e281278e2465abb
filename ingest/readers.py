"""Job postings from JSONL or CSV files -> validated JobUpdates, each bad record with its reason.

A record has ``item_id`` (or ``doc_id``/``id``/``job_id``, as the data sets spell it), ``title``, ``text``,
optional ``op`` ("upsert"|"delete"), ``updated_at`` (ms since epoch, or ISO 8601; default: now) and
``fields`` (an object); any other column becomes a field (company, location, ...).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
from pathlib import Path
from typing import IO, Iterable, Iterator

import msgspec

from ingest.validation import check_update
from mixlm.errors import InvalidJobUpdate
from mixlm.schemas import JobUpdate

ID_KEYS = ("item_id", "doc_id", "id", "job_id")
KNOWN_KEYS = set(ID_KEYS) | {"op", "title", "text", "fields", "updated_at"}


class ReadResult(msgspec.Struct):
    """One input record: its 1-based line (JSONL) or row (CSV) number and either an update or a reason."""

    line: int
    update: JobUpdate | None = None
    reason: str | None = None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _millis(value: object) -> int:
    if isinstance(value, bool):
        raise InvalidJobUpdate(f"updated_at must be ms since epoch or ISO 8601, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidJobUpdate(f"updated_at must be ms since epoch or ISO 8601, got {text!r}") from e
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return int(stamp.timestamp() * 1000)


def to_update(record: dict, max_text_chars: int, default_ms: int) -> JobUpdate:
    """One parsed record -> a checked JobUpdate; raises InvalidJobUpdate with the reason."""
    if not isinstance(record, dict):
        raise InvalidJobUpdate(f"record must be an object, got {type(record).__name__}")
    item_id = next((record[k] for k in ID_KEYS if record.get(k) not in (None, "")), None)
    if item_id is None:
        raise InvalidJobUpdate("missing field item_id")
    fields = record.get("fields") or {}
    if not isinstance(fields, dict):
        raise InvalidJobUpdate("fields must be an object")
    extras = {k: v for k, v in record.items() if k not in KNOWN_KEYS and v not in (None, "")}
    fields = {str(k): str(v) for k, v in {**extras, **fields}.items()}
    raw = {
        "item_id": str(item_id),
        "op": record.get("op") or "upsert",
        "updated_at": _millis(record["updated_at"]) if record.get("updated_at") not in (None, "") else default_ms,
        "title": str(record.get("title") or ""),
        "text": str(record.get("text") or ""),
        "fields": fields,
    }
    try:
        update = msgspec.convert(raw, JobUpdate)
    except msgspec.ValidationError as e:
        raise InvalidJobUpdate(str(e)) from e
    return check_update(update, max_text_chars)


def _jsonl_records(stream: Iterable[str]) -> Iterator[tuple[int, dict | None, str | None]]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line), None
        except json.JSONDecodeError as e:
            yield n, None, f"malformed JSON: {e}"


def _csv_records(stream: Iterable[str]) -> Iterator[tuple[int, dict | None, str | None]]:
    # Postings carry long quoted descriptions: lift the csv module's 128 KB field cap.
    csv.field_size_limit(1 << 30)
    for n, row in enumerate(csv.DictReader(stream), 2):  # row 1 is the header
        if None in row:
            yield n, None, "more values than header columns"
            continue
        yield n, row, None


def detect_format(name: str, head: str) -> str:
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    return "jsonl" if head.lstrip().startswith("{") else "csv"


def read_updates(
    stream: IO[str], max_text_chars: int, fmt: str | None = None, name: str = "-", default_ms: int | None = None
) -> Iterator[ReadResult]:
    """Yield a ReadResult per record of a JSONL or CSV stream (fmt None: from the name, else sniffed)."""
    if fmt is None:
        head = stream.read(4096)
        fmt = detect_format(name, head)
        stream = _rejoin(head, stream)
    default_ms = now_ms() if default_ms is None else default_ms
    records = _csv_records(stream) if fmt == "csv" else _jsonl_records(stream)
    for line, record, error in records:
        if error is not None:
            yield ReadResult(line, reason=error)
            continue
        try:
            yield ReadResult(line, update=to_update(record, max_text_chars, default_ms))
        except InvalidJobUpdate as e:
            yield ReadResult(line, reason=str(e))


def read_file(path: str | Path, max_text_chars: int, fmt: str | None = None) -> Iterator[ReadResult]:
    with open(path, newline="", encoding="utf-8") as f:
        yield from read_updates(f, max_text_chars, fmt=fmt, name=str(path))


def _rejoin(head: str, rest: IO[str]) -> Iterator[str]:
    """The lines of a stream whose first bytes were peeked for format sniffing (stdin cannot seek)."""
    if head and not head.endswith("\n"):
        head += rest.readline()  # finish the line the peek cut
    yield from io.StringIO(head, newline="")  # splits on newlines only, not on U+2028 inside JSON strings
    yield from rest
