"""What makes a JobUpdate acceptable, beyond its schema. One place, used by `mixlm post` before sending
and by the encoder worker before encoding (anything it rejects goes to the DLQ)."""

from __future__ import annotations

import msgspec

from mixlm.errors import InvalidJobUpdate
from mixlm.schemas import JobUpdate, decode_job_update


def check_update(update: JobUpdate, max_text_chars: int) -> JobUpdate:
    """Return the update if it can be encoded and stored; raise InvalidJobUpdate naming the problem."""
    if update.op == "upsert":
        if not update.title.strip() and not update.text.strip():
            raise InvalidJobUpdate("upsert with neither title nor text: nothing to encode")
        size = len(update.title) + len(update.text) + sum(len(k) + len(v) for k, v in update.fields.items())
        if size > max_text_chars:
            raise InvalidJobUpdate(f"text too long: {size} chars > max_text_chars={max_text_chars}")
    return update


def parse_update(raw: bytes, max_text_chars: int, key: str | None = None) -> JobUpdate:
    """Decode and check one Kafka value; `key` (the message key) must equal item_id when given,
    since partitioning by key is what keeps one item's updates in order."""
    try:
        update = decode_job_update(raw)
    except msgspec.ValidationError as e:
        raise InvalidJobUpdate(f"invalid JobUpdate: {e}") from e
    except msgspec.DecodeError as e:
        raise InvalidJobUpdate(f"malformed JSON: {e}") from e
    if key is not None and key != update.item_id:
        raise InvalidJobUpdate(f"message key {key!r} does not match item_id {update.item_id!r}")
    return check_update(update, max_text_chars)
