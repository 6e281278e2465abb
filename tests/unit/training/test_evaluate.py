"""`mixlm eval` end to end on a hand-made relevance set with the tiny random model."""

import json
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.settings import Settings
from training.datasets import Doc, Query, RelevanceSet, save_relevance_set
from training.evaluate import EvalReport, EvalRun, Evaluation, SystemResult, compare_runs, parse_candidates, parse_system
from training.item_cache import cache_file

DOCS = {
    "nurse": Doc("nurse", "Registered Nurse", "Cares for patients in hospitals and gives medication."),
    "welder": Doc("welder", "Welder", "Joins metal parts with torches and welding machines."),
    "chef": Doc("chef", "Head Chef", "Plans menus and cooks food in a restaurant kitchen."),
    "driver": Doc("driver", "Truck Driver", "Drives heavy trucks to deliver goods across the country."),
    "teacher": Doc("teacher", "School Teacher", "Teaches children reading, writing and arithmetic."),
}
QUERIES = {
    "q1": Query("q1", "hospital nurse"),
    "q2": Query("q2", "welding metal parts"),
    "q3": Query("q3", "restaurant cook"),
    "q4": Query("q4", "truck driving job"),
}
QRELS = {"q1": {"nurse": 2}, "q2": {"welder": 1}, "q3": {"chef": 3, "nurse": 1}, "q4": {"driver": 1}}


@pytest.fixture
def hand_set(tmp_path: Path) -> Path:
    return save_relevance_set(RelevanceSet("hand", QUERIES, DOCS, QRELS), tmp_path / "hand")


def test_cli_reports_every_system_as_table_and_json(hand_set: Path, tmp_path: Path, tiny_settings: Settings):
    out = tmp_path / "report.json"
    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_WEIGHTS": "none",
           "MIXLM_HOME": str(tiny_settings.home)}
    result = CliRunner(env=env).invoke(
        cli, ["eval", "--data", str(hand_set), "--systems", "bm25,teacher,mixlm,teacher@4",
              "--candidates", "bm25:3", "--queries", "3", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "NDCG@10" in result.output and "teacher@4" in result.output
    run = msgspec.json.decode(out.read_bytes(), type=EvalRun)
    assert len(run.reports) == 1 and run.skipped == [] and run.not_run == []
    report = run.reports[0]
    assert [r.system for r in report.results] == ["bm25", "teacher", "mixlm", "teacher@4"]
    assert report.n_queries == 3 and len(report.query_ids) == 3
    for r in report.results:
        assert set(r.metrics) == {"NDCG@10", "MRR@10", "Recall@50"}
        assert all(0.0 <= v <= 1.0 for v in r.metrics.values())
        assert r.n_items == 9  # 3 queries x 3 candidates
    # Reranking never changes which docs are in the list, so Recall@50 is the first stage's for everyone.
    assert len({r.metrics["Recall@50"] for r in report.results}) == 1
    assert report.results[2].n_item_tokens == 1
    # Per-query NDCG@10 behind the mean, its standard error in the table, and the paired differences printed.
    for r in report.results:
        assert sorted(r.per_query) == sorted(report.query_ids)
        assert sum(r.per_query.values()) / 3 == pytest.approx(r.metrics["NDCG@10"])
    assert "NDCG@10 SE" in result.output
    assert "hand: mixlm - teacher: NDCG@10 " in result.output and "± " in result.output


def test_bm25_system_on_its_own_candidates_finds_the_lexical_matches(hand_set: Path, tiny_settings: Settings):
    from training.datasets import load_relevance_set

    report = Evaluation(load_relevance_set(hand_set), tiny_settings, candidates="bm25:5").run(["bm25"])
    assert report.results[0].metrics["MRR@10"] == pytest.approx(1.0)
    assert report.model_version is None  # no LLM was loaded for BM25 alone


def test_mixlm_items_are_encoded_once_and_then_read_from_the_cache(tiny_settings: Settings, tiny_model, tmp_path: Path):
    rs = RelevanceSet("hand", QUERIES, DOCS, QRELS)
    cache = tmp_path / "cache"
    first = Evaluation(rs, tiny_settings, candidates="bm25:5", cache_dir=cache)
    first.use_model(tiny_model)
    a = first.run(["mixlm"]).results[0]
    assert cache_file(tiny_model, cache).exists() and a.encode_s > 0
    second = Evaluation(rs, tiny_settings, candidates="bm25:5", cache_dir=cache)
    second.use_model(tiny_model)
    b = second.run(["mixlm"]).results[0]
    assert b.encode_s == 0.0  # nothing left to encode
    assert b.metrics == a.metrics


def test_mixlm_scores_equal_scoring_freshly_encoded_items(tiny_settings: Settings, tiny_model, tmp_path: Path):
    rs = RelevanceSet("hand", QUERIES, DOCS, QRELS)
    ev = Evaluation(rs, tiny_settings, candidates="bm25:5", n_queries=1, cache_dir=tmp_path)
    ev.use_model(tiny_model)
    scores, _, _ = ev._mixlm()
    q = ev.query_ids[0]
    docs = ev.candidates[q]
    from training.datasets import doc_text

    fresh = tiny_model.score_mixed(QUERIES[q].text, list(tiny_model.encode_items([doc_text(DOCS[d]) for d in docs])))
    assert [scores[q][d] for d in docs] == pytest.approx(fresh.tolist(), abs=1e-5)


def test_query_own_occupation_is_left_out_for_related_occupations(tiny_settings: Settings):
    docs = {"11-1011.00": Doc("11-1011.00", "Chief Executives", "Direct companies."),
            "11-1021.00": Doc("11-1021.00", "General Managers", "Direct operations of companies."),
            "11-2011.00": Doc("11-2011.00", "Advertising Managers", "Plan advertising.")}
    queries = {"11-1011.00": Query("11-1011.00", "Chief Executives. Direct companies.")}
    qrels = {"11-1011.00": {"11-1021.00": 3}}
    for name, self_listed in (("onet_related_occupations", False), ("other", True)):
        ev = Evaluation(RelevanceSet(name, queries, docs, qrels), tiny_settings, candidates="bm25:50")
        assert ("11-1011.00" in ev.candidates["11-1011.00"]) is self_listed


def test_bad_system_and_candidate_specs_are_rejected():
    assert parse_candidates("biencoder:20") == ("biencoder", 20)
    assert parse_candidates("bm25") == ("bm25", 50)
    assert parse_system("teacher@48") == ("teacher", 48)
    for bad in ("bm25:0", "splade:50", "bm25:x"):
        with pytest.raises(ValueError):
            parse_candidates(bad)
    for bad in ("mixlm@4", "gpt", "teacher@0"):
        with pytest.raises(ValueError):
            parse_system(bad)


def test_cli_rejects_an_unknown_system_with_a_usage_error(hand_set: Path):
    result = CliRunner().invoke(cli, ["eval", "--data", str(hand_set), "--systems", "bm25,gpt"])
    assert result.exit_code == 2 and "gpt" in result.output


@pytest.fixture
def record_eval(hand_set: Path, tmp_path: Path, monkeypatch):
    """`mixlm eval --record --systems S` on the hand set, into tmp_path's RESULTS.md and results.jsonl."""
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(bench.results, "RESULTS_JSONL", tmp_path / "results.jsonl")

    def record(systems: str):
        result = CliRunner().invoke(cli, ["eval", "--data", str(hand_set), "--systems", systems, "--record"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output

    return record


def test_record_flag_appends_the_table_to_results_md(record_eval, tmp_path: Path):
    record_eval("bm25")
    text = (tmp_path / "RESULTS.md").read_text()
    assert "## eval hand" in text and "| hand | bm25:50 | 4 | bm25 |" in text
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert rows[0]["system"] == "bm25" and 0 <= rows[0]["NDCG@10"] <= 1


def test_record_note_carries_the_paired_differences_of_the_systems(record_eval, tmp_path: Path):
    record_eval("bm25,biencoder")
    note = next(line for line in (tmp_path / "RESULTS.md").read_text().splitlines() if line.startswith("- note:"))
    assert "; paired differences (± standard error): biencoder - bm25: NDCG@10 " in note
    assert "(4 queries)" in note and "hand:" not in note  # the section names the set; the note does not repeat it


def test_interrupted_run_still_reports_the_finished_systems(tiny_settings: Settings, monkeypatch):
    ev = Evaluation(RelevanceSet("hand", QUERIES, DOCS, QRELS), tiny_settings, candidates="bm25:5")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ev, "_teacher", interrupt)
    report = ev.run(["bm25", "teacher", "mixlm"])
    assert [r.system for r in report.results] == ["bm25"]
    assert report.interrupted == ["teacher", "mixlm"]


def _run(version: str, per_query: dict[str, float], data_set: str = "hand") -> EvalRun:
    result = SystemResult("mixlm", {"NDCG@10": sum(per_query.values()) / len(per_query)}, len(per_query), 1.0, 1.0,
                          per_query=per_query)
    report = EvalReport(data_set, "bm25:50", len(per_query), 0, version, [result], sorted(per_query))
    return EvalRun("data", [report])


def test_compare_pairs_the_same_system_of_two_runs_on_their_shared_queries(tmp_path: Path):
    a = _run("aaa", {"q1": 0.5, "q2": 0.25, "q3": 1.0})
    b = _run("bbb", {"q1": 0.25, "q2": 0.0, "q4": 0.0})  # q3 and q4: sampled by one run only
    assert compare_runs(a, b) == ["hand: mixlm (aaa) - mixlm (bbb): NDCG@10 +0.2500 ± 0.0000 (2 queries)"]
    assert compare_runs(a, _run("ccc", {"q1": 0.0}, data_set="other")) == []
    for name, run in (("a.json", a), ("b.json", b), ("other.json", _run("ccc", {"q1": 0.0}, data_set="other"))):
        (tmp_path / name).write_bytes(msgspec.json.encode(run))
    ok = CliRunner().invoke(cli, ["compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")])
    assert ok.exit_code == 0 and "+0.2500" in ok.output
    nothing = CliRunner().invoke(cli, ["compare", str(tmp_path / "a.json"), str(tmp_path / "other.json")])
    assert nothing.exit_code == 1 and "nothing to compare" in nothing.output
    (tmp_path / "bad.json").write_text("{}")
    bad = CliRunner().invoke(cli, ["compare", str(tmp_path / "bad.json"), str(tmp_path / "a.json")])
    assert bad.exit_code == 2 and "not a `mixlm eval --out` file" in bad.output
