import json
from pathlib import Path

from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.settings import Settings
from training.datasets import Doc, Query, RelevanceSet, save_relevance_set


def test_quality_bench_writes_a_plot_and_one_row_per_system(tmp_path: Path, tiny_settings: Settings, monkeypatch):
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(bench.results, "RESULTS_JSONL", tmp_path / "results.jsonl")
    docs = {f"d{i}": Doc(f"d{i}", f"Job {i}", f"Work with tools number {i} every day.") for i in range(6)}
    queries = {f"q{i}": Query(f"q{i}", f"tools number {i}") for i in range(3)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(3)}
    data = save_relevance_set(RelevanceSet("hand", queries, docs, qrels), tmp_path / "hand")
    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_WEIGHTS": "none",
           "MIXLM_HOME": str(tiny_settings.home)}
    plot = tmp_path / "q.png"
    result = CliRunner(env=env).invoke(
        cli, ["bench", "quality", "--data", str(data), "--queries", "2", "--candidates", "bm25:4", "--ts", "1,2",
              "--summary-tokens", "3", "--plot", str(plot)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["system"] for r in rows] == ["MixLM T_S=1", "text", "text, first 3 tokens", "MixLM T_S=2"]
    assert all(0 <= r["NDCG@10"] <= 1 and r["items/s"] > 0 and r["items scored"] == 8 for r in rows)
    assert rows[0]["model_version"] != rows[3]["model_version"]  # T_S is part of model_version
    assert "## quality vs throughput (hand)" in (tmp_path / "RESULTS.md").read_text()
