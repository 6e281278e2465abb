"""`mixlm eval` over a folder of sets (like ../shared/data): every whole set gets its rows, the rest is skipped."""

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.errors import DataFormatError
from mixlm.settings import Settings
from training.datasets import Doc, Query, RelevanceSet, save_relevance_set
from training.evaluate import EvalRun, SkippedFolder, evaluate_sets, find_sets

# onet_related_occupations: each query is an occupation that is also a doc; its own doc must not be ranked.
# The query's text is its own doc's, word for word, so BM25 would put the own doc first if it were a candidate.
OWN = Doc("11-1011.00", "Chief Executives", "Direct and plan company strategy.")
RELATED = {
    "11-1021.00": Doc("11-1021.00", "General Managers", "Direct company operations and plan strategy."),
    "11-2011.00": Doc("11-2011.00", "Advertising Managers", "Plan advertising campaigns."),
}


def related_set() -> RelevanceSet:
    return RelevanceSet("onet_related_occupations", {OWN.doc_id: Query(OWN.doc_id, f"{OWN.title}. {OWN.text}")},
                        {OWN.doc_id: OWN, **RELATED}, {OWN.doc_id: {"11-1021.00": 3}})


@pytest.fixture
def data_root(tmp_path: Path, titles_set: RelevanceSet) -> Path:
    """Two whole sets and a docs-only corpus, like jobs_linkedin_indeed beside the relevance sets."""
    root = tmp_path / "data"
    save_relevance_set(titles_set, root / "synthetic_titles")
    save_relevance_set(related_set(), root / "onet_related_occupations")
    (root / "jobs_postings").mkdir()
    (root / "jobs_postings" / "docs.jsonl").write_bytes(msgspec.json.encode(OWN) + b"\n")
    return root


def tiny_env(settings: Settings) -> dict[str, str]:
    return {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_WEIGHTS": "none",
            "MIXLM_HOME": str(settings.home)}


def test_every_set_folder_gets_rows_and_a_docs_only_folder_is_reported_skipped(data_root: Path, tmp_path: Path,
                                                                                 tiny_settings: Settings):
    out = tmp_path / "all.json"
    result = CliRunner(env=tiny_env(tiny_settings)).invoke(
        cli, ["eval", "--data", str(data_root), "--systems", "bm25,mixlm", "--candidates", "bm25:3", "--queries", "4",
              "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = msgspec.json.decode(out.read_bytes(), type=EvalRun)
    assert [r.data_set for r in run.reports] == ["onet_related_occupations", "synthetic_titles"]
    assert all([s.system for s in r.results] == ["bm25", "mixlm"] for r in run.reports)
    assert run.skipped == [SkippedFolder("jobs_postings", "no queries.jsonl, qrels.tsv (only docs.jsonl)")]
    assert run.not_run == []
    assert "skipped jobs_postings: no queries.jsonl, qrels.tsv" in result.output
    # One table, a row per set and system.
    table_rows = [line for line in result.output.splitlines() if line.startswith("│") and "bm25:3" in line]
    assert len(table_rows) == 4
    # The related-occupations query never sees its own occupation: the related one is ranked first.
    related = run.reports[0]
    assert related.results[0].metrics["MRR@10"] == pytest.approx(1.0)
    assert related.results[0].n_items == 2  # 3 docs minus the query's own


def test_a_folder_with_neither_a_set_nor_set_folders_is_a_usage_error(tmp_path: Path):
    (tmp_path / "jobs_postings").mkdir()
    (tmp_path / "jobs_postings" / "docs.jsonl").write_bytes(msgspec.json.encode(OWN) + b"\n")
    result = CliRunner().invoke(cli, ["eval", "--data", str(tmp_path), "--systems", "bm25"])
    assert result.exit_code == 2
    assert "holds no set folders" in result.output and "jobs_postings" in result.output
    with pytest.raises(DataFormatError):
        find_sets(tmp_path / "jobs_postings")


def test_a_set_folder_given_directly_is_the_only_set(data_root: Path):
    assert find_sets(data_root / "synthetic_titles") == ([data_root / "synthetic_titles"], [])


def test_one_model_serves_every_set_and_a_second_run_encodes_nothing(data_root: Path, tiny_settings: Settings,
                                                                     tmp_path: Path, monkeypatch):
    import mixlm.weights

    builds = []
    real_build = mixlm.weights.build_mixlm
    monkeypatch.setattr(mixlm.weights, "build_mixlm", lambda s: builds.append(s) or real_build(s))
    folders, _ = find_sets(data_root)
    cache = tmp_path / "cache"
    first = list(evaluate_sets(folders, tiny_settings, ["mixlm"], "bm25:3", cache_dir=cache))
    assert len(builds) == 1
    assert all(r.results[0].encode_s > 0 for r in first)
    second = list(evaluate_sets(folders, tiny_settings, ["mixlm"], "bm25:3", cache_dir=cache))
    assert all(r.results[0].encode_s == 0.0 for r in second)  # item tokens come from the cache
    assert [r.results[0].metrics for r in second] == [r.results[0].metrics for r in first]


def test_queries_the_newest_weight_set_was_trained_on_are_left_out_of_the_sample(data_root: Path, tmp_path: Path,
                                                                                  tiny_settings: Settings):
    from training.config import DataConfig
    from training.datasets import load_relevance_set
    from training.pairs import split_by_query

    data = DataConfig(sets=["synthetic_titles"], train_queries=20, dev_queries=8, seed=0)
    weights = tmp_path / "weights" / "v1"
    weights.mkdir(parents=True)
    manifest = {"base_model": "tiny", "n_item_tokens": tiny_settings.n_item_tokens, "created_at": 1,
                "config": {"data": msgspec.to_builtins(data)}}
    (weights / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    out = tmp_path / "run.json"
    # --weights none: the untrained base is scored on the same held-out sample as the newest weight set.
    env = {**tiny_env(tiny_settings), "MIXLM_WEIGHTS_DIR": str(weights.parent)}
    result = CliRunner(env=env).invoke(
        cli, ["eval", "--data", str(data_root), "--systems", "bm25", "--candidates", "bm25:3", "--queries", "0",
              "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    reports = {r.data_set: r for r in msgspec.json.decode(out.read_bytes(), type=EvalRun).reports}
    titles = load_relevance_set(data_root / "synthetic_titles")
    train = set(split_by_query(titles, 8, 20, 0)[0])
    assert reports["synthetic_titles"].trained_on == 20
    assert set(reports["synthetic_titles"].query_ids) == set(titles.qrels) - train
    assert "20 training queries left out" in result.output
    assert reports["onet_related_occupations"].trained_on == 0  # a set the weights never saw keeps every query


def test_held_out_of_leaves_out_another_sets_training_queries(data_root: Path, tmp_path: Path,
                                                              tiny_settings: Settings):
    # Two weight sets compared on one sample: both evaluated --held-out-of the one trained on more queries.
    from training.config import DataConfig
    from training.datasets import load_relevance_set
    from training.pairs import split_by_query

    for name, n, created in (("small", 10, 1), ("big", 20, 2)):
        folder = tmp_path / "weights" / name
        folder.mkdir(parents=True)
        data = DataConfig(sets=["synthetic_titles"], train_queries=n, dev_queries=8, seed=0)
        manifest = {"base_model": "tiny", "n_item_tokens": tiny_settings.n_item_tokens, "created_at": created,
                    "config": {"data": msgspec.to_builtins(data)}}
        (folder / "manifest.json").write_bytes(msgspec.json.encode(manifest))
    env = {**tiny_env(tiny_settings), "MIXLM_WEIGHTS_DIR": str(tmp_path / "weights")}
    out = tmp_path / "run.json"
    args = ["eval", "--data", str(data_root / "synthetic_titles"), "--systems", "bm25", "--candidates", "bm25:3",
            "--queries", "0", "--out", str(out)]
    result = CliRunner(env=env).invoke(cli, [*args, "--held-out-of", str(tmp_path / "weights" / "small")],
                                       catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = msgspec.json.decode(out.read_bytes(), type=EvalRun).reports[0]
    titles = load_relevance_set(data_root / "synthetic_titles")
    assert report.trained_on == 10  # the named set's, not the newest one's (20)
    assert set(report.query_ids) == set(titles.qrels) - set(split_by_query(titles, 8, 10, 0)[0])
    result = CliRunner(env=env).invoke(cli, [*args, "--held-out-of", str(tmp_path)])
    assert result.exit_code == 2
    assert "--held-out-of" in result.output and "no manifest.json" in result.output


def test_a_weights_folder_without_a_manifest_is_a_usage_error(data_root: Path, tmp_path: Path, tiny_settings: Settings):
    result = CliRunner(env=tiny_env(tiny_settings)).invoke(
        cli, ["eval", "--data", str(data_root), "--systems", "bm25", "--weights", str(tmp_path)])
    assert result.exit_code == 2
    assert "--weights" in result.output and "no manifest.json" in result.output
