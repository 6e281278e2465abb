"""Data that ships with the package: the O*NET demo corpus (CC BY 4.0, see onet_demo/ATTRIBUTION.md).

``postings.jsonl`` holds JobUpdates (the Kafka wire shape); ``queries.jsonl`` a few demo queries with the
occupations O*NET lists for them. ``build_demo.py`` rebuilds both from the onet_titles relevance set.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import msgspec

from mixlm.schemas import JobUpdate

POSTINGS, QUERIES = "postings.jsonl", "queries.jsonl"


class DemoQuery(msgspec.Struct):
    query_id: str
    text: str
    relevant: list[str] = []  # item ids O*NET lists for this title (shown as a check mark, not used to rank)


def demo_dir() -> Path:
    """Folder of the shipped demo corpus."""
    return Path(str(files("mixlm.data") / "onet_demo"))


def _jsonl(path: Path, kind: type):
    decoder = msgspec.json.Decoder(kind)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def load_postings(folder: Path | None = None) -> list[JobUpdate]:
    return _jsonl((folder or demo_dir()) / POSTINGS, JobUpdate)


def load_queries(folder: Path | None = None) -> list[DemoQuery]:
    return _jsonl((folder or demo_dir()) / QUERIES, DemoQuery)
