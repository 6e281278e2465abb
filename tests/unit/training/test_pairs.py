"""Training data: split by query, normalised labels, mined negatives, the data card."""

from __future__ import annotations

import msgspec

from training.config import DataConfig
from training.datasets import load_relevance_set
from training.pairs import build_training_data, normalised_labels, split_by_query, trained_on

CFG = DataConfig(sets=["synthetic_titles"], train_queries=20, dev_queries=8, max_positives=2, hard_negatives=3,
                 random_negatives=2, first_stage=["bm25"], candidates_k=6, max_item_tokens=32, seed=0)


def test_train_and_dev_queries_are_disjoint_and_fixed_by_the_seed(titles_set):
    rs = titles_set
    train, dev = split_by_query(rs, n_dev=8, n_train=None, seed=0)
    assert not set(train) & set(dev)
    assert len(dev) == 8 and len(train) == len(rs.qrels) - 8
    assert split_by_query(rs, 8, None, seed=0) == (train, dev)
    assert split_by_query(rs, 8, None, seed=1)[1] != dev


def test_a_manifest_names_the_queries_its_weights_were_trained_on(titles_set):
    manifest = {"config": {"data": msgspec.to_builtins(CFG)}}
    data = build_training_data([titles_set], CFG, None)
    assert trained_on(manifest, titles_set) == sorted({g.query_id for g in data.groups})
    assert not set(trained_on(manifest, titles_set)) & set(data.dev["synthetic_titles"])
    other = msgspec.structs.replace(CFG, sets=["onet_titles"])
    assert trained_on({"config": {"data": msgspec.to_builtins(other)}}, titles_set) == []
    assert trained_on({}, titles_set) == []  # a manifest without a training config (hand-made weights)


def test_labels_are_grade_over_the_max_grade_of_the_set(titles_set):
    labels = normalised_labels(titles_set)
    assert labels["nurse-0"] == {"nurse": 1.0, "pilot": 0.5}
    assert labels["chef-1"] == {"chef": 1.0}


def test_groups_hold_positives_hard_and_random_negatives_never_a_judged_doc(titles_set):
    rs = titles_set
    data = build_training_data([rs], CFG)
    assert len(data.groups) == 20
    for g in data.groups:
        judged = rs.qrels[g.query_id]
        doc_ids = [item.doc_id for item in g.items]
        assert len(doc_ids) == len(set(doc_ids))
        for item in g.items:
            if item.source == "positive":
                assert item.label == judged[item.doc_id] / 2
            else:
                assert item.doc_id not in judged and item.label == 0.0
        assert {i.source for i in g.items} >= {"positive", "bm25", "random"}
    assert not {g.query_id for g in data.groups} & set(data.dev["synthetic_titles"])


def test_graded_set_gives_two_label_levels_and_the_card_counts_them(titles_set):
    data = build_training_data([titles_set], CFG)
    card = data.card
    assert card.overlap == 0 and card.train_queries == 20 and card.dev_queries == 8
    assert card.pairs == sum(len(g.items) for g in data.groups) == sum(card.label_histogram.values())
    labels = {item.label for g in data.groups for item in g.items}
    assert 0.0 in labels and 1.0 in labels
    text = card.render()
    assert "train=20 dev=8 (in both: 0)" in text and "label histogram" in text


def test_the_same_config_builds_the_same_groups(titles_dir):
    a = build_training_data([load_relevance_set(titles_dir)], CFG).groups
    b = build_training_data([load_relevance_set(titles_dir)], CFG).groups
    assert a == b


def test_bi_encoder_candidates_feed_hard_negatives(titles_set):
    cfg = msgspec.structs.replace(CFG, train_queries=6, dev_queries=2, first_stage=["biencoder"], candidates_k=4,
                                  hard_negatives=2, random_negatives=0)
    data = build_training_data([titles_set], cfg)
    assert data.card.by_source["biencoder"] == 12
