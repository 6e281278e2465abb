"""Ranking metrics of the paper's Table 3 (NDCG@10 with graded gains, MRR@10, Recall@50), via ir-measures.

ir-measures runs trec_eval (pytrec_eval): NDCG uses linear gains (gain = grade), a doc is relevant for
MRR and Recall when its grade >= 1. Rankings are passed as ordered lists and turned into strictly
decreasing scores, so trec_eval's own tie-breaking (by doc id) never reorders them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ir_measures
from ir_measures import RR, R, nDCG

MEASURES = {"NDCG@10": nDCG @ 10, "MRR@10": RR @ 10, "Recall@50": R @ 50}


def rank(scores: Mapping[str, float], order: Sequence[str]) -> list[str]:
    """Docs by decreasing score; equal scores keep their order in ``order`` (the first-stage order)."""
    position = {d: i for i, d in enumerate(order)}
    return sorted(scores, key=lambda d: (-scores[d], position.get(d, len(position))))


def per_query(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]],
              query_ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """{query_id: {metric: value}} for every query in query_ids; a query with an empty ranking scores 0."""
    wanted = set(query_ids)
    run = {q: {d: float(len(docs) - i) for i, d in enumerate(docs)} for q, docs in rankings.items() if q in wanted and docs}
    judged = {q: dict(qrels[q]) for q in query_ids if q in qrels}
    values = {q: dict.fromkeys(MEASURES, 0.0) for q in query_ids}
    name_of = {m: name for name, m in MEASURES.items()}
    for metric in ir_measures.iter_calc(list(MEASURES.values()), judged, run):
        values[metric.query_id][name_of[metric.measure]] = float(metric.value)
    return values


def mean_metrics(qrels: Mapping[str, Mapping[str, int]], rankings: Mapping[str, Sequence[str]],
                 query_ids: Sequence[str]) -> dict[str, float]:
    """Each metric averaged over query_ids (queries without a ranking count as 0, as in trec_eval -c)."""
    values = per_query(qrels, rankings, query_ids)
    n = max(len(query_ids), 1)
    return {name: sum(v[name] for v in values.values()) / n for name in MEASURES}
