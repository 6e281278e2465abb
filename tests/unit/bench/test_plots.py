"""bench/plots.py and `mixlm bench plot`: PNGs drawn from recorded rows, nothing measured."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench import plots
from mixlm.cli import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CPU = "AMD EPYC, 2 threads"
GPU = "Intel Xeon, 16 threads, NVIDIA H100 80GB HBM3"


def engine_row(items_as: str, strategy: str, items_s: float, p99: float, model: str = "smollm2-135m",
               machine: str = CPU, date: str = "2026-11-23 12:50 UTC", n: int = 50) -> dict:
    return {"section": plots.ENGINE_SECTION, "date": date, "machine": machine, "command": "mixlm bench engine",
            "model": model, "items as": items_as, "tokens/item": 2, "strategy": strategy, "items/request": n,
            "requests": 3, "items/s": items_s, "p50 ms": p99 / 2, "p99 ms": p99}


def quality_row(system: str, ndcg: float, items_s: float, date: str) -> dict:
    return {"section": "quality vs throughput (hand)", "date": date, "machine": CPU, "command": "mixlm bench quality",
            "system": system, "NDCG@10": ndcg, "MRR@10": ndcg, "items/s": items_s, "items scored": 8}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_table11_figure_labels_every_point_from_its_row_on_log_axes(tmp_path: Path):
    rows = [engine_row("raw", "naive", 1.1, 970.0, n=1), engine_row("mixlm", "naive", 28.1, 2050.0),
            engine_row("mixlm", "multi_item", 551.0, 96.0), engine_row("raw", "naive", 0.4, 2400.0, model="qwen")]
    fig = plots.table11_figure(rows, "Table 11")
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["smollm2-135m", "qwen"]
    labels = sorted(t.get_text() for t in panels[0].texts)
    assert labels == ["MixLM, multi-item", "MixLM, naive", "raw text, naive [n=1]"]
    assert [t.get_text() for t in panels[1].texts] == ["raw text, naive"]
    assert all(ax.get_xscale() == "log" and ax.get_yscale() == "log" for ax in panels)
    assert panels[0].texts[0].xy == (970.0, 1.1)  # x = p99 latency, y = items/s
    path = plots.save(fig, tmp_path / "t.png")
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000


def test_quality_figure_labels_every_system():
    fig = plots.quality_figure([quality_row("MixLM T_S=1", 0.26, 2.6, "d"), quality_row("text", 0.19, 0.6, "d")], "q")
    assert [t.get_text() for t in fig.axes[0].texts] == ["MixLM T_S=1", "text"]
    assert fig.axes[0].get_xscale() == "log"


def test_the_newest_row_of_each_configuration_wins():
    old = engine_row("mixlm", "multi_item", 20.0, 2500.0, date="2026-11-23 11:58 UTC")
    other = engine_row("raw", "naive", 1.1, 970.0, date="2026-11-23 11:58 UTC")
    new = engine_row("mixlm", "multi_item", 551.0, 96.0)
    assert plots.newest_per_config([old, other, new]) == [new, other]


@pytest.mark.parametrize("row, device", [
    ({"machine": CPU}, "cpu"),
    ({"machine": GPU}, "nvidia-h100-80gb-hbm3"),
    ({"machine": GPU, "command": "mixlm bench engine --device cpu"}, "cpu"),
    ({"machine": GPU, "device": "cpu"}, "cpu"),
])
def test_device_comes_from_the_machine_line_unless_the_run_said_cpu(row: dict, device: str):
    assert plots.device_of(row) == device


def test_bench_plot_redraws_table11_per_device_and_quality_per_set_from_a_results_file(tmp_path: Path):
    results = write_jsonl(tmp_path / "results.jsonl", [
        {"section": "Feature store", "date": "d", "machine": CPU, "backend": "sqlite", "rows/s": 1},
        engine_row("raw", "naive", 1.1, 970.0), engine_row("mixlm", "multi_item", 551.0, 96.0),
        engine_row("mixlm", "multi_item", 20000.0, 12.0, machine=GPU),
        quality_row("text", 0.1, 0.5, "2026-11-23 11:00 UTC"),
        quality_row("text", 0.19, 0.6, "2026-11-23 12:00 UTC"),
        quality_row("MixLM T_S=1", 0.26, 2.6, "2026-11-23 12:00 UTC"),
    ])
    out = tmp_path / "png"
    result = CliRunner().invoke(cli, ["bench", "plot", "--results", str(results), "--out-dir", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["quality_hand.png", "table11_cpu.png", "table11_nvidia-h100-80gb-hbm3.png"]
    assert all((out / n).read_bytes()[:8] == PNG_MAGIC for n in names)
    assert all(f"wrote {out / n}" in result.output for n in names)


def test_bench_plot_says_when_there_is_nothing_to_plot(tmp_path: Path):
    results = write_jsonl(tmp_path / "results.jsonl", [{"section": "Feature store", "date": "d", "machine": CPU}])
    result = CliRunner().invoke(cli, ["bench", "plot", "--results", str(results), "--out-dir", str(tmp_path)])
    assert result.exit_code == 1 and "no engine or quality rows" in result.output
    assert not list(tmp_path.glob("*.png"))


def test_engine_bench_redraws_its_device_plot_with_an_unrecorded_run_as_newest(tmp_path: Path, monkeypatch):
    import bench.results
    from bench.engine import _plot

    monkeypatch.setattr(bench.results, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(bench.results, "RESULTS_JSONL", write_jsonl(tmp_path / "results.jsonl", [
        engine_row("raw", "naive", 1.1, 970.0), engine_row("mixlm", "multi_item", 20.0, 2500.0)]))
    drawn = []
    real_figure = plots.table11_figure
    monkeypatch.setattr(plots, "table11_figure", lambda rows, title: drawn.append(rows) or real_figure(rows, title))
    header = ["model", "items as", "tokens/item", "strategy", "items/request", "requests", "items/s", "p50 ms", "p99 ms"]
    _plot(header, [["smollm2-135m", "mixlm", 2, "multi_item", 50, 5, 551.0, 90.0, 96.0]], gpu=False, recorded=False)
    assert (tmp_path / "table11_cpu.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted((r["items as"], r["items/s"]) for r in drawn[0]) == [("mixlm", 551.0), ("raw", 1.1)]
    assert not (tmp_path / "quality_hand.png").exists()
