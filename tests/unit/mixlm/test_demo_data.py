"""The shipped demo corpus (mixlm/data/onet_demo): valid JobUpdates, queries that point into it, the
CC BY 4.0 attribution, small enough to ship, and rebuilt byte for byte by mixlm/data/build_demo.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixlm.data import demo_dir, load_postings, load_queries
from mixlm.data.build_demo import build

ONET_TITLES = Path("/work/shared/data/onet_titles")


def test_postings_are_valid_job_updates_with_unique_ids_titles_texts_and_a_category():
    postings = load_postings()
    assert 200 <= len(postings) <= 1000
    assert len({p.item_id for p in postings}) == len(postings)
    for p in postings:
        assert p.op == "upsert" and p.title and p.text and p.fields["category"]


def test_every_demo_query_has_its_relevant_occupations_in_the_corpus():
    ids = {p.item_id for p in load_postings()}
    queries = load_queries()
    assert len(queries) >= 5
    for q in queries:
        assert q.relevant and set(q.relevant) <= ids, q


def test_the_corpus_ships_with_its_cc_by_attribution_and_stays_under_1_mb():
    attribution = (demo_dir() / "ATTRIBUTION.md").read_text()
    assert "CC BY 4.0" in attribution and "O*NET 29.3" in attribution and "USDOL/ETA" in attribution
    assert sum(f.stat().st_size for f in demo_dir().iterdir()) < 1_000_000


@pytest.mark.skipif(not ONET_TITLES.is_dir(), reason="the onet_titles source set is not on this machine")
def test_build_demo_reproduces_the_shipped_files_byte_for_byte(tmp_path):
    build(ONET_TITLES, tmp_path)
    for name in ("postings.jsonl", "queries.jsonl", "ATTRIBUTION.md"):
        assert (tmp_path / name).read_bytes() == (demo_dir() / name).read_bytes(), name
