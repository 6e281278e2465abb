"""Relevance sets in the common format of ../shared/data (queries.jsonl, docs.jsonl, qrels.tsv), read once.

qrels.tsv is ``query_id<TAB>doc_id<TAB>grade`` with no header; TREC's four-column form (an unused second
column) is accepted too. Every error names the file and line.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Collection
from pathlib import Path

import msgspec

from mixlm.errors import DataFormatError
from mixlm.prompts import item_text

log = logging.getLogger(__name__)

QUERIES, DOCS, QRELS = "queries.jsonl", "docs.jsonl", "qrels.tsv"
# Sets whose queries are themselves docs of the corpus (doc_id == query_id) and must not be ranked
# against themselves: see onet_related_occupations/SOURCE.md ("exclude it from a query's ranking").
SELF_EXCLUDING_SETS = frozenset({"onet_related_occupations"})


class Query(msgspec.Struct):
    query_id: str
    text: str


class Doc(msgspec.Struct):
    doc_id: str
    title: str
    text: str


class RelevanceSet(msgspec.Struct):
    name: str
    queries: dict[str, Query]
    docs: dict[str, Doc]
    qrels: dict[str, dict[str, int]]  # qrels[query_id][doc_id] = grade


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataFormatError(f"{path} is missing: a relevance set needs {QUERIES}, {DOCS} and {QRELS}")
    return path


def _read_jsonl(path: Path, kind: type[msgspec.Struct]) -> list:
    decoder = msgspec.json.Decoder(kind)
    rows = []
    with open(_require(path), "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(decoder.decode(line))
            except msgspec.DecodeError as e:
                raise DataFormatError(f"{path}:{n}: not a valid {kind.__name__} ({e})") from e
    return rows


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with open(_require(path), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split("\t") if "\t" in line else line.split()
            if len(parts) == 4:  # TREC form: query_id, iteration (unused), doc_id, grade
                parts = [parts[0], parts[2], parts[3]]
            if len(parts) != 3:
                raise DataFormatError(f"{path}:{n}: expected query_id<TAB>doc_id<TAB>grade, got {line.strip()!r}")
            query_id, doc_id, grade = parts
            try:
                qrels.setdefault(query_id, {})[doc_id] = int(grade)
            except ValueError as e:
                raise DataFormatError(f"{path}:{n}: grade {grade!r} is not an integer") from e
    return qrels


def load_relevance_set(path: Path) -> RelevanceSet:
    """Read a folder in the common format. Judgements of unknown queries or docs are dropped with a warning."""
    path = Path(path)
    if not path.is_dir():
        raise DataFormatError(f"{path} is not a folder with {QUERIES}, {DOCS} and {QRELS}")
    queries = {q.query_id: q for q in _read_jsonl(path / QUERIES, Query)}
    docs = {d.doc_id: d for d in _read_jsonl(path / DOCS, Doc)}
    raw = _read_qrels(path / QRELS)
    qrels: dict[str, dict[str, int]] = {}
    dropped = 0
    for query_id, judged in raw.items():
        kept = {d: g for d, g in judged.items() if d in docs}
        dropped += len(judged) - len(kept)
        if query_id in queries and kept:
            qrels[query_id] = kept
        elif query_id not in queries:
            dropped += len(kept)
    if dropped:
        log.warning("%s: dropped %d judgements of unknown queries or docs", path, dropped)
    return RelevanceSet(name=path.resolve().name, queries=queries, docs=docs, qrels=qrels)


def doc_text(doc: Doc) -> str:
    """The text a doc is known by: the same item text the encoder and the teacher read."""
    return item_text(doc.title, doc.text)


def sample_queries(rs: RelevanceSet, n: int | None, seed: int = 0, exclude: Collection[str] = ()) -> list[str]:
    """Up to n judged query ids not in ``exclude``, the same ones for the same (set, n, seed, exclude); all of
    them when n is None."""
    left_out = set(exclude)
    judged = sorted(q for q in rs.qrels if rs.qrels[q] and q not in left_out)
    if n is None or n >= len(judged):
        return judged
    return sorted(random.Random(seed).sample(judged, n))


def excluded_docs(rs: RelevanceSet, query_ids: list[str]) -> dict[str, set[str]]:
    """Docs that must not appear in a query's ranking: its own occupation in SELF_EXCLUDING_SETS."""
    if rs.name not in SELF_EXCLUDING_SETS:
        return {}
    return {q: {q} for q in query_ids if q in rs.docs}


def save_relevance_set(rs: RelevanceSet, path: Path) -> Path:
    """Write a set in the common format (the inverse of load_relevance_set), e.g. a subset or a test set."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / QUERIES).write_bytes(b"".join(msgspec.json.encode(q) + b"\n" for q in rs.queries.values()))
    (path / DOCS).write_bytes(b"".join(msgspec.json.encode(d) + b"\n" for d in rs.docs.values()))
    lines = [f"{q}\t{d}\t{g}\n" for q, judged in rs.qrels.items() for d, g in judged.items()]
    (path / QRELS).write_text("".join(lines), encoding="utf-8")
    return path
