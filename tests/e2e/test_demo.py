"""`mixlm demo` end to end in a real process, with the tiny model: corpus -> embedded bus -> encoder core ->
SQLite -> ranker over HTTP -> printed tables; and serving until Ctrl-C, which stops it cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from mixlm.data import load_postings, load_queries

DEMO = [sys.executable, "-c", "from mixlm.cli import main; main()", "demo", "--base-model", "tiny", "--weights", "none"]


def demo_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")}
    return env | {"MIXLM_SQLITE_PATH": str(tmp_path / "store.sqlite"), "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu",
                  "COLUMNS": "200"}


def run_demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    run = subprocess.run([*DEMO, "--exit", *args], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_demo_encodes_the_corpus_prints_a_ranked_table_per_query_and_skips_unchanged_postings_when_rerun(tmp_path):
    env = demo_env(tmp_path)
    out = run_demo(env, "--top-k", "3").stdout
    postings, queries = load_postings(), load_queries()
    assert f"{len(postings)} encoded, 0 already stored, 0 rejected" in out
    titles = {p.title for p in postings}
    for q in queries:
        assert q.text in out, f"no table for {q.text!r}"
    rows = re.findall(r"│\s+(\d)\s+│\s+(0\.\d{4})\s+│\s+(.+?)\s+│", out)
    assert len(rows) == 3 * len(queries), out
    assert {title for _, _, title in rows} <= titles
    for i in range(0, len(rows), 3):  # each table is sorted by score, best first
        scores = [float(s) for _, s, _ in rows[i : i + 3]]
        assert scores == sorted(scores, reverse=True)
    assert out.count("round trip") == len(queries)
    assert "--exit: not serving" in out

    again = run_demo(env, "--top-k", "1", "--candidates", "all").stdout
    assert f"0 encoded, {len(postings)} already stored" in again
    assert f"({len(postings)} candidates)" in again


def test_demo_serves_until_ctrl_c_then_stops_cleanly(tmp_path):
    # A shell starts background jobs with SIGINT ignored and children inherit that (CI may run us so): give the
    # demo the default disposition a terminal's foreground process has, so Ctrl-C means KeyboardInterrupt.
    proc = subprocess.Popen([*DEMO, "--top-k", "1"], env=demo_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        url, seen = None, []
        deadline = time.monotonic() + 600
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if m := re.search(r"Serving\S* the search page on (http://[\d.]+:\d+)/", line):
                url = m.group(1)
        assert url, "".join(seen)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        assert "MixLM job search" in httpx.get(f"{url}/", timeout=10).text
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "stopped." in rest
    assert "Traceback" not in rest
