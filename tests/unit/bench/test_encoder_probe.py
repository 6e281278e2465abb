import json
from pathlib import Path

from click.testing import CliRunner

from mixlm.cli import cli
from mixlm.settings import Settings


def test_encoder_bench_ranks_the_corpus_with_and_without_the_tail(tmp_path: Path, tiny_settings: Settings,
                                                                  hand_set: Path):
    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_HOME": str(tiny_settings.home)}
    result = CliRunner(env=env).invoke(cli, ["bench", "encoder", "--data", str(hand_set), "--queries", "3"],
                                       catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["encoder input"] for r in rows] == ["with tail", "without tail (paper)"]
    # Every query has one relevant doc among 6, all of them ranked: Recall@50 is exactly 1.
    assert all(r["Recall@50"] == 1.0 and 0 < r["MRR@10"] <= 1 for r in rows)
    assert "## encoder template (hand)" in (tmp_path / "RESULTS.md").read_text()


def test_encoder_bench_of_a_sentence_encoder_has_one_plain_text_row(tmp_path: Path, tiny_settings: Settings,
                                                                     hand_set: Path):
    env = {"MIXLM_BASE_MODEL": "tiny", "MIXLM_ENCODER_MODEL": "tiny-bert", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu",
           "MIXLM_HOME": str(tiny_settings.home)}
    result = CliRunner(env=env).invoke(cli, ["bench", "encoder", "--data", str(hand_set), "--queries", "3"],
                                       catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["encoder input"] for r in rows] == ["plain text (mean-pooled sentence encoder)"]
    assert rows[0]["Recall@50"] == 1.0
