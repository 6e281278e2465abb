"""First-stage retrieval over a relevance set: BM25 (bm25s) and the MiniLM bi-encoder.

Each index scores a query against every doc; candidates are the top k, minus docs a query must not see
(datasets.excluded_docs). The eval reuses the same scores when BM25 or the bi-encoder is a ranking system.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from mixlm.settings import Settings
from training.datasets import RelevanceSet, doc_text

Exclude = Mapping[str, set[str]]


def _bm25s():
    """bm25s, with its logger put back to WARNING: it sets itself to DEBUG on import and floods every command."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


class BM25Index:
    """bm25s (Lucene BM25, k1=1.5, b=0.75) over title + text, lowercased, English stopwords removed."""

    def __init__(self, rs: RelevanceSet):
        bm25s = _bm25s()
        self.rs = rs
        self.doc_ids = list(rs.docs)
        corpus = bm25s.tokenize([doc_text(rs.docs[d]) for d in self.doc_ids], stopwords="en", show_progress=False)
        self.retriever = bm25s.BM25()
        self.retriever.index(corpus, show_progress=False)
        self.vocab = corpus.vocab

    def scores(self, query_ids: list[str]) -> np.ndarray:
        """[len(query_ids), n_docs] BM25 scores."""
        bm25s = _bm25s()
        texts = [self.rs.queries[q].text for q in query_ids]
        tokens = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        out = np.zeros((len(query_ids), len(self.doc_ids)), dtype=np.float32)
        for i, words in enumerate(tokens):
            known = [w for w in words if w in self.vocab]  # bm25s raises on words it never indexed
            if known:
                out[i] = self.retriever.get_scores(known)
        return out


class BiEncoderIndex:
    """Cosine similarity of MiniLM embeddings, read from the on-disk cache when present (training/biencoder.py)."""

    def __init__(self, rs: RelevanceSet, settings: Settings | None = None):
        from training.biencoder import BiEncoder

        self.rs = rs
        self.doc_ids = list(rs.docs)
        self.encoder = BiEncoder(settings)
        self.doc_vectors = self.encoder.embed_cached([doc_text(rs.docs[d]) for d in self.doc_ids],
                                                     progress=f"bi-encoder docs ({rs.name})")

    def scores(self, query_ids: list[str]) -> np.ndarray:
        queries = self.encoder.embed_cached([self.rs.queries[q].text for q in query_ids],
                                            progress=f"bi-encoder queries ({self.rs.name})")
        return queries @ self.doc_vectors.T


def top_k(doc_ids: list[str], scores: np.ndarray, query_ids: list[str], k: int, exclude: Exclude | None = None) -> dict[str, list[str]]:
    """Per query, the k best doc ids (best first), skipping excluded docs. Ties break by corpus order."""
    position = {d: i for i, d in enumerate(doc_ids)}
    out: dict[str, list[str]] = {}
    for row, q in zip(scores, query_ids):
        row = row.astype(np.float64, copy=True)
        for d in (exclude or {}).get(q, ()):
            if d in position:
                row[position[d]] = -np.inf
        n = min(k, len(doc_ids) - sum(1 for d in (exclude or {}).get(q, ()) if d in position))
        order = np.argsort(-row, kind="stable")[:n]
        out[q] = [doc_ids[i] for i in order]
    return out


def pick_scores(doc_ids: list[str], scores: np.ndarray, candidates: Mapping[str, list[str]]) -> dict[str, dict[str, float]]:
    """The rows of a [queries, docs] score matrix restricted to each query's candidates."""
    position = {d: i for i, d in enumerate(doc_ids)}
    return {q: {d: float(row[position[d]]) for d in candidates[q]} for q, row in zip(candidates, scores)}


def bm25_candidates(rs: RelevanceSet, query_ids: list[str], k: int = 50, exclude: Exclude | None = None) -> dict[str, list[str]]:
    index = BM25Index(rs)
    return top_k(index.doc_ids, index.scores(query_ids), query_ids, k, exclude)


def biencoder_candidates(
    rs: RelevanceSet, query_ids: list[str], k: int = 50, settings: Settings | None = None, exclude: Exclude | None = None
) -> dict[str, list[str]]:
    index = BiEncoderIndex(rs, settings)
    return top_k(index.doc_ids, index.scores(query_ids), query_ids, k, exclude)


def bm25_scores(rs: RelevanceSet, candidates: Mapping[str, list[str]]) -> dict[str, dict[str, float]]:
    """BM25 score of each query's candidates (to use BM25 as a ranking system)."""
    index = BM25Index(rs)
    return pick_scores(index.doc_ids, index.scores(list(candidates)), candidates)


def biencoder_scores(
    rs: RelevanceSet, candidates: Mapping[str, list[str]], settings: Settings | None = None
) -> dict[str, dict[str, float]]:
    """Bi-encoder cosine of each query's candidates (to use it as a ranking system)."""
    index = BiEncoderIndex(rs, settings)
    return pick_scores(index.doc_ids, index.scores(list(candidates)), candidates)
