"""Ranking metrics of the paper's Table 3 (NDCG@10 with graded gains, MRR@10, Recall@50), via ir-measures.

ir-measures runs trec_eval (pytrec_eval): NDCG uses linear gains (gain = grade), a doc is relevant for
MRR and Recall when its grade >= 1. Rankings are passed as ordered lists and turned into strictly
decreasing scores, so trec_eval's own tie-breaking (by doc id) never reorders them.
"""

from __future__ import annotations

import math
import statistics
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
    return means(per_query(qrels, rankings, query_ids))


def means(values: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Each metric of per_query's {query_id: {metric: value}} averaged over its queries."""
    n = max(len(values), 1)
    return {name: sum(v[name] for v in values.values()) / n for name in MEASURES}


def mean_and_se(values: Sequence[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / sqrt(n)); the error is 0 below two values."""
    if not values:
        return 0.0, 0.0
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def paired_difference(a: Mapping[str, float], b: Mapping[str, float]) -> tuple[float, float]:
    """Mean of a[q] - b[q] over the queries both have, and its standard error.

    Two systems on one query sample share its hard and easy queries, so the error of their difference is
    usually well below either system's own: this is the one to read a "within 0.01" or "+0.05" claim against."""
    return mean_and_se([a[q] - b[q] for q in a if q in b])
