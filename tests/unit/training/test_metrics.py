"""Metric values from ir-measures agree with a direct implementation on hand-made qrels."""

import math

import pytest

from training.metrics import mean_and_se, mean_metrics, paired_difference, per_query, rank

QRELS = {
    "q1": {"a": 3, "b": 1, "c": 2, "z": 0},
    "q2": {"x": 1, "y": 1},
    "q3": {"m": 2},
}
RANKINGS = {
    "q1": ["b", "z", "a", "e", "c"],
    "q2": ["p", "q", "x"] + [f"n{i}" for i in range(60)] + ["y"],  # y beyond depth 50
    "q3": ["k"] * 0 + [f"n{i}" for i in range(12)] + ["m"],  # m at rank 13: outside @10
}


def _ndcg(qrel, ranking, k=10):
    dcg = sum(qrel.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranking[:k]))
    ideal = sorted((g for g in qrel.values() if g > 0), reverse=True)[:k]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def _mrr(qrel, ranking, k=10):
    return next((1 / (i + 1) for i, d in enumerate(ranking[:k]) if qrel.get(d, 0) >= 1), 0.0)


def _recall(qrel, ranking, k=50):
    relevant = {d for d, g in qrel.items() if g >= 1}
    return len(relevant & set(ranking[:k])) / len(relevant)


@pytest.mark.parametrize("q", sorted(QRELS))
def test_per_query_values_match_a_direct_implementation(q):
    got = per_query(QRELS, RANKINGS, [q])[q]
    assert got["NDCG@10"] == pytest.approx(_ndcg(QRELS[q], RANKINGS[q]), abs=1e-4)
    assert got["MRR@10"] == pytest.approx(_mrr(QRELS[q], RANKINGS[q]), abs=1e-4)
    assert got["Recall@50"] == pytest.approx(_recall(QRELS[q], RANKINGS[q]), abs=1e-4)


def test_hand_computed_values_for_graded_query():
    got = per_query(QRELS, RANKINGS, ["q1"])["q1"]
    dcg = 1 / 1 + 3 / math.log2(4) + 2 / math.log2(6)
    ideal = 3 + 2 / math.log2(3) + 1 / 2
    assert got["NDCG@10"] == pytest.approx(dcg / ideal, abs=1e-4)
    assert got["MRR@10"] == 1.0 and got["Recall@50"] == 1.0


def test_mean_counts_queries_without_a_ranking_as_zero():
    means = mean_metrics(QRELS, {"q2": RANKINGS["q2"]}, ["q2", "q3"])
    assert means["MRR@10"] == pytest.approx(_mrr(QRELS["q2"], RANKINGS["q2"]) / 2, abs=1e-4)
    assert means["Recall@50"] == pytest.approx(0.25, abs=1e-4)


def test_tied_scores_keep_first_stage_order_instead_of_trec_eval_doc_id_order():
    ranking = rank({"a": 0.5, "z": 0.5, "m": 0.9}, order=["a", "z", "m"])
    assert ranking == ["m", "a", "z"]
    # trec_eval would put "z" before "a" on a tie; the rank list must win.
    assert per_query({"q": {"a": 1}}, {"q": ranking}, ["q"])["q"]["MRR@10"] == pytest.approx(0.5)


def test_standard_error_is_the_sample_deviation_over_root_n():
    mean, se = mean_and_se([0.0, 1.0, 0.5, 0.5])
    assert mean == pytest.approx(0.5)
    assert se == pytest.approx(math.sqrt((0.25 + 0.25) / 3 / 4))
    assert mean_and_se([0.7]) == (0.7, 0.0) and mean_and_se([]) == (0.0, 0.0)


def test_paired_difference_removes_the_noise_both_systems_share():
    hard_and_easy = {"q1": 0.1, "q2": 0.9, "q3": 0.4, "q4": 0.6}
    better = {q: v + 0.05 for q, v in hard_and_easy.items()}
    diff, se = paired_difference(better, hard_and_easy)
    assert diff == pytest.approx(0.05) and se == pytest.approx(0.0, abs=1e-12)
    assert mean_and_se(list(better.values()))[1] > 0.1  # each system's own error is large
    # Only queries both systems were scored on count.
    assert paired_difference({"q1": 1.0, "extra": 0.0}, {"q1": 0.5}) == (0.5, 0.0)
