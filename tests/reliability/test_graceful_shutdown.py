"""Ranker SIGTERM (issue 10, "Faults"): a real `mixlm serve` process (uvicorn, tiny model, SQLite store).
Requests already in flight finish with 200, new connections are refused, the process exits after a complete shutdown; its log
(uvicorn access lines included) holds neither the configured API key nor a wrong one that was tried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from encoder_worker.launch import free_port
from feature_store.sqlite import SQLiteStore
from mixlm.codec import content_hash
from mixlm.schemas import ItemText
from mixlm.settings import Settings

KEY, WRONG = "k-9d2e-serve-secret", "k-9d2e-serve-secreX"
TEXTS = {"py": "Python engineer, Berlin.", "nurse": "Night nurse, city hospital.", "chef": "Pastry chef, hotel."}


@pytest.mark.timeout(240)
def test_sigterm_lets_in_flight_requests_finish_refuses_new_ones_and_exits_cleanly(tmp_path):
    db = tmp_path / "store.sqlite"
    store = SQLiteStore(db)
    store.init()
    store.put_items([ItemText(item_id=k, title="", text=v, content_hash=content_hash("", v), updated_at=1)
                     for k, v in TEXTS.items()])  # text only: each request encodes (cold start), so it takes a while
    store.close()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | {
        "MIXLM_HOME": str(Settings().home), "MIXLM_BASE_MODEL": "tiny", "MIXLM_WEIGHTS": "none",
        "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu", "MIXLM_SQLITE_PATH": str(db), "MIXLM_PORT": str(port),
        "MIXLM_API_KEYS": f'["{KEY}"]',
        # A long batching window holds requests in the batcher, so they are surely in flight at SIGTERM.
        "MIXLM_BATCH_WINDOW_MS": "1500"}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "mixlm"), "serve", "--log-level", "info"],
                                env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mixlm serve did not become ready"
            time.sleep(0.3)
        assert httpx.post(f"{base}/rank", json={"query": "q", "item_ids": ["py"]},
                          headers={"X-API-Key": WRONG}).status_code == 401

        answers: list[int | str] = []
        body = {"query": "python developer", "item_ids": list(TEXTS)}

        def call():
            try:
                r = httpx.post(f"{base}/rank", json=body, headers={"X-API-Key": KEY}, timeout=60)
                answers.append(r.status_code if r.status_code != 200 else len(r.json()["results"]))
            except httpx.HTTPError as e:
                answers.append(type(e).__name__)

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        time.sleep(0.5)  # all six are sent and waiting in the batcher's window
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):  # the listening socket is closed at once
            httpx.post(f"{base}/rank", json=body, headers={"X-API-Key": KEY}, timeout=5)
        for t in threads:
            t.join(60)
        assert answers == [3] * 6, answers  # every in-flight request answered in full
        # uvicorn re-raises the signal once its shutdown is complete (so -SIGTERM, which systemd and
        # Kubernetes count as a clean stop); the log lines below show the shutdown ran to its end.
        assert proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log_text = log_path.read_text()
    for line in ("Shutting down", "Waiting for application shutdown", "Application shutdown complete",
                 "Finished server process"):
        assert line in log_text, log_text[-2000:]
    assert "Traceback" not in log_text
    assert KEY not in log_text and WRONG not in log_text
