from pathlib import Path

import pytest

from mixlm.errors import DataFormatError
from training.datasets import (
    Doc, Query, RelevanceSet, doc_text, excluded_docs, load_relevance_set, sample_queries, save_relevance_set,
)


def _set(name: str = "hand") -> RelevanceSet:
    queries = {f"q{i}": Query(f"q{i}", f"query {i}") for i in range(10)}
    docs = {f"d{i}": Doc(f"d{i}", f"Title {i}", f"text {i}") for i in range(5)}
    qrels = {f"q{i}": {f"d{i % 5}": 1 + i % 3} for i in range(8)}  # q8, q9 unjudged
    return RelevanceSet(name, queries, docs, qrels)


def test_save_then_load_round_trips_queries_docs_and_graded_qrels(tmp_path: Path):
    rs = _set()
    loaded = load_relevance_set(save_relevance_set(rs, tmp_path / "hand"))
    assert loaded == rs


def test_load_drops_judgements_of_unknown_docs_and_queries(tmp_path: Path):
    folder = save_relevance_set(_set(), tmp_path / "hand")
    with open(folder / "qrels.tsv", "a") as f:
        f.write("q0\tmissing-doc\t2\nno-such-query\td1\t1\n")
    loaded = load_relevance_set(folder)
    assert "missing-doc" not in loaded.qrels["q0"]
    assert "no-such-query" not in loaded.qrels


def test_load_accepts_trec_four_column_qrels(tmp_path: Path):
    folder = save_relevance_set(_set(), tmp_path / "hand")
    (folder / "qrels.tsv").write_text("q1 0 d3 2\n")
    assert load_relevance_set(folder).qrels == {"q1": {"d3": 2}}


def test_missing_file_is_named_in_the_error(tmp_path: Path):
    folder = save_relevance_set(_set(), tmp_path / "hand")
    (folder / "docs.jsonl").unlink()
    with pytest.raises(DataFormatError, match="docs.jsonl is missing"):
        load_relevance_set(folder)


def test_bad_json_line_is_reported_with_file_and_line_number(tmp_path: Path):
    folder = save_relevance_set(_set(), tmp_path / "hand")
    with open(folder / "queries.jsonl", "a") as f:
        f.write('{"query_id": "q99"}\n')  # no text
    with pytest.raises(DataFormatError, match=r"queries.jsonl:11"):
        load_relevance_set(folder)


def test_non_integer_grade_is_rejected(tmp_path: Path):
    folder = save_relevance_set(_set(), tmp_path / "hand")
    (folder / "qrels.tsv").write_text("q1\td1\thigh\n")
    with pytest.raises(DataFormatError, match=r"qrels.tsv:1: grade 'high'"):
        load_relevance_set(folder)


def test_sample_queries_is_deterministic_and_only_returns_judged_queries():
    rs = _set()
    first = sample_queries(rs, 5, seed=3)
    assert first == sample_queries(rs, 5, seed=3)
    assert len(first) == 5 and set(first) <= set(rs.qrels)
    assert sample_queries(rs, None) == sorted(rs.qrels)
    assert sample_queries(rs, 100) == sorted(rs.qrels)
    assert any(sample_queries(rs, 5, seed=s) != first for s in range(10))


def test_sample_queries_never_returns_an_excluded_query():
    rs = _set()
    excluded = sample_queries(rs, 3, seed=1)
    for seed in range(10):
        assert not set(sample_queries(rs, 5, seed, exclude=excluded)) & set(excluded)
    assert sample_queries(rs, None, exclude=excluded) == sorted(set(rs.qrels) - set(excluded))


def test_doc_text_joins_title_and_text():
    assert doc_text(Doc("d", "Nurse", "Cares for patients.")) == "Nurse\nCares for patients."


def test_only_self_excluding_sets_exclude_the_query_doc():
    rs = RelevanceSet("onet_related_occupations", {"d1": Query("d1", "x")}, {"d1": Doc("d1", "t", "x")}, {})
    assert excluded_docs(rs, ["d1"]) == {"d1": {"d1"}}
    assert excluded_docs(_set("cranfield"), ["q1"]) == {}
