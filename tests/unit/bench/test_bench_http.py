"""`mixlm bench http` against a real `mixlm serve` (uvicorn) subprocess it spawns, with the tiny model and a SQLite
store in tmp; plus the pieces it judges a run by (acceptable statuses, RSS readings and growth)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from click.testing import CliRunner

from bench.http import failure, rankable_ids, rss_summary
from bench.http_load import Tally, rss_bytes
from feature_store.sqlite import SQLiteStore
from mixlm.cli import cli
from mixlm.codec import content_hash
from mixlm.encoding import encode_rows
from mixlm.schemas import ItemText
from mixlm.settings import Settings


def tiny_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {"MIXLM_BASE_MODEL": "tiny", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_WEIGHTS": "none",
            "MIXLM_HOME": str(settings.home), "MIXLM_SQLITE_PATH": str(settings.resolved_sqlite_path()),
            "MIXLM_WEIGHTS_DIR": str(settings.weights_dir), "MIXLM_CASSANDRA_HOSTS": "[]",
            "MIXLM_KAFKA_BOOTSTRAP": "", **extra}


def items(n: int) -> list[ItemText]:
    return [ItemText(item_id=f"job{i}", title="", text=f"Posting {i}: welding, nursing, python.",
                     content_hash=content_hash("", f"Posting {i}"), updated_at=1) for i in range(n)]


def test_spawned_run_seeds_the_store_counts_only_200s_and_samples_the_server_rss(tmp_path, tiny_settings,
                                                                                  monkeypatch):
    import bench.results

    monkeypatch.setattr(bench.results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(bench.results, "RESULTS_JSONL", tmp_path / "results.jsonl")
    out = tmp_path / "report.json"
    # A key is configured on the server, and the bench sends the first one by default.
    env = tiny_env(tiny_settings, MIXLM_API_KEYS='["right-key"]')
    result = CliRunner(env=env).invoke(
        cli, ["bench", "http", "--spawn", "--seed", "--duration", "4", "--concurrency", "3", "--warmup", "3",
              "--rss-every", "1", "--serve-log", str(tmp_path / "serve.log"), "--out", str(out)],
        catch_exceptions=False)
    assert result.exit_code == 0, result.output + (tmp_path / "serve.log").read_text()
    report = json.loads(out.read_text())
    assert set(report["statuses"]) == {"200"} and report["requests"] == report["statuses"]["200"] > 0
    # 300 demo postings were seeded, so every request's 50 ids had item tokens and all were scored
    assert report["missing"] == 0 and report["items_scored"] == 50 * report["requests"]
    assert report["items_per_s"] > 0 and report["requests_per_s"] > 0
    lat = report["latency"]
    assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
    rss = report["rss"]
    assert len(rss["samples_mb"]) >= 3 and rss["growth_mb"] is not None
    assert 0 < rss["first_mb"] <= rss["max_mb"] and rss["last_mb"] <= rss["max_mb"]
    recorded = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(recorded) == 1 and recorded[0]["requests"] == report["requests"]
    assert recorded[0]["answers"] == f"200: {report['requests']}"
    assert "## HTTP load (mixlm bench http)" in (tmp_path / "RESULTS.md").read_text()


def test_a_wrong_api_key_makes_the_run_fail_naming_the_401(tmp_path, tiny_settings, tiny_model):
    store = SQLiteStore(tiny_settings.resolved_sqlite_path())
    store.init()
    rows = items(4)
    store.put_items(rows)
    store.put_embeddings(encode_rows(tiny_model, rows, "bf16"))
    store.close()
    env = tiny_env(tiny_settings, MIXLM_API_KEYS='["right-key"]')
    result = CliRunner(env=env).invoke(
        cli, ["bench", "http", "--spawn", "--items", "4", "--duration", "2", "--concurrency", "2", "--warmup", "2",
              "--api-key", "wrong-key", "--no-record", "--serve-log", str(tmp_path / "serve.log")])
    assert result.exit_code != 0
    assert "unacceptable answers" in result.output and "401 x 2" in result.output, result.output


def test_requests_draw_only_on_items_with_item_tokens_under_the_servers_model_version(tiny_settings, tiny_model):
    store = SQLiteStore(tiny_settings.resolved_sqlite_path())
    store.init()
    rows = items(5)
    store.put_items(rows)
    store.put_embeddings(encode_rows(tiny_model, rows[:3], "bf16"))  # job3, job4: text only
    store.close()
    assert sorted(rankable_ids(tiny_settings, tiny_model.model_version)) == ["job0", "job1", "job2"]
    assert rankable_ids(tiny_settings, "another-version") == []


def test_only_200_and_429_are_acceptable():
    ok = Tally(statuses=Counter({"200": 5, "429": 7}))
    assert failure(ok, "run") is None
    bad = Tally(statuses=Counter({"200": 5, "503": 2, "ReadTimeout": 1}), first_bad={"503": '{"detail":"store"}'})
    message = failure(bad, "run")
    assert message and "503 x 2" in message and "ReadTimeout x 1" in message and '{"detail":"store"}' in message


def test_rss_growth_is_measured_from_the_second_sample_to_the_last():
    mb = 2**20
    summary = rss_summary([(0, 100 * mb), (5, 150 * mb), (10, 160 * mb), (15, 155 * mb)])
    assert summary["first_mb"] == 100 and summary["last_mb"] == 155 and summary["max_mb"] == 160
    assert summary["growth_mb"] == 5  # 150 -> 155: the first sample is before the warm-up's allocations settle
    assert rss_summary([(0, mb), (1, mb)])["growth_mb"] is None  # too few samples to say


def test_rss_is_read_with_and_without_psutil_and_a_gone_process_raises(monkeypatch):
    try:
        import psutil  # noqa: F401

        with_psutil = rss_bytes(os.getpid())
    except ImportError:
        with_psutil = None
    monkeypatch.setitem(sys.modules, "psutil", None)  # `import psutil` -> ImportError: the /proc/<pid>/status path
    from_proc = rss_bytes(os.getpid())
    assert from_proc > 10 << 20  # this process holds the tiny model's imports
    if with_psutil is not None:
        assert abs(with_psutil - from_proc) < 0.2 * from_proc
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: its pid names no process now
    with pytest.raises(ProcessLookupError):
        rss_bytes(child.pid)
