import json
from pathlib import Path

from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.settings import Settings


def test_quality_bench_writes_a_plot_and_one_row_per_system(tmp_path: Path, tiny_settings: Settings, hand_set: Path):
    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_WEIGHTS": "none",
           "MIXLM_HOME": str(tiny_settings.home)}
    plot = tmp_path / "q.png"
    result = CliRunner(env=env).invoke(
        cli, ["bench", "quality", "--data", str(hand_set), "--queries", "2", "--candidates", "bm25:4", "--ts", "1,2",
              "--summary-tokens", "3", "--plot", str(plot)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["system"] for r in rows] == ["MixLM T_S=1", "text", "text, first 3 tokens", "MixLM T_S=2"]
    assert all(0 <= r["NDCG@10"] <= 1 and r["items/s"] > 0 and r["items scored"] == 8 for r in rows)
    assert rows[0]["model_version"] != rows[3]["model_version"]  # T_S is part of model_version
    assert "## quality vs throughput (hand)" in (tmp_path / "RESULTS.md").read_text()
