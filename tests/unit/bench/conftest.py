from pathlib import Path

import pytest

from training.datasets import Doc, Query, RelevanceSet, save_relevance_set


@pytest.fixture
def hand_set(tmp_path: Path, monkeypatch) -> Path:
    """A six-doc relevance set ("hand": query i is about doc i); bench results go to tmp_path, not bench/."""
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(bench.results, "RESULTS_JSONL", tmp_path / "results.jsonl")
    docs = {f"d{i}": Doc(f"d{i}", f"Job {i}", f"Work with tools number {i} every day.") for i in range(6)}
    queries = {f"q{i}": Query(f"q{i}", f"tools number {i}") for i in range(3)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(3)}
    return save_relevance_set(RelevanceSet("hand", queries, docs, qrels), tmp_path / "hand")
