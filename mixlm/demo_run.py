"""The demo's moving parts: encoding the corpus (embedded bus, or Kafka + a `mixlm worker` process), the
ranker on a background uvicorn thread, and `/rank` over real HTTP. `mixlm/demo.py` strings them together."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console

from feature_store.base import MAX_READ, FeatureStore
from mixlm.model import MixLM
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings

log = logging.getLogger(__name__)
RANKER_START_TIMEOUT_S = 120


def encode_corpus(settings: Settings, model: MixLM, store: FeatureStore, postings: list[JobUpdate], console: Console,
                  stack: ExitStack) -> str:
    """Post every posting and wait until the store holds its item tokens; returns a one-line summary."""
    if settings.kafka_bootstrap:
        return _encode_via_kafka(settings, model, store, postings, console, stack)
    return _encode_in_process(settings, model, store, postings, console)


def _encode_in_process(settings: Settings, model: MixLM, store: FeatureStore, postings: list[JobUpdate],
                       console: Console) -> str:
    """Through the embedded bus into the same EncoderCore the Faust worker runs."""
    from encoder_worker.bus import EmbeddedBus
    from encoder_worker.core import EncoderCore
    from mixlm.demo import progress_bar

    bus = EmbeddedBus(EncoderCore(model, store, settings), settings.worker_batch_size, settings.worker_batch_timeout_s)
    with progress_bar(console) as bar:
        task = bar.add_task("encoding", total=len(postings))
        for p in postings:
            bus.publish(p)
        while True:
            try:
                bus.flush(timeout_s=0.25)
                break
            except TimeoutError:
                bar.update(task, completed=bus.delivered + sum(bus.failures.values()))
        bar.update(task, completed=len(postings))
    # Only after a clean finish: on Ctrl-C, close() would wait for every queued item to be encoded.
    bus.close()
    if bus.failures:
        reason, n = bus.failures.most_common(1)[0]
        raise click.ClickException(f"{n} postings could not be written to the store: {reason}")
    t = bus.totals
    return f"{t['encoded']} encoded, {t['unchanged']} already stored, {t['dead_letters']} rejected"


def _encode_via_kafka(settings: Settings, model: MixLM, store: FeatureStore, postings: list[JobUpdate],
                      console: Console, stack: ExitStack) -> str:
    """To the real topic, encoded by a real `mixlm worker` process; progress = item tokens in the store."""
    from encoder_worker.launch import spawn_worker, stop_worker
    from ingest.admin import create_topics
    from ingest.producer import JobProducer
    from mixlm.demo import progress_bar

    create_topics(settings)
    producer = JobProducer(settings)
    try:
        for p in postings:
            producer.publish(p)
        producer.flush(timeout_s=60)
    finally:
        producer.close()
    if producer.failures:
        raise click.ClickException(f"Kafka refused postings: {dict(producer.failures)}")

    log_path = Path(settings.home) / "demo" / "worker.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    worker = spawn_worker(settings, log_path, "--loglevel", "warning")
    stack.callback(stop_worker, worker)
    console.print(f"worker  `mixlm worker` pid {worker.pid}, log {log_path}", markup=False)
    want = {p.item_id: p.updated_at for p in postings}
    with progress_bar(console) as bar:
        task = bar.add_task("encoding (worker)", total=len(want))
        while True:
            done = _stored(store, model.model_version, want)
            bar.update(task, completed=done)
            if done == len(want):
                break
            if worker.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                raise click.ClickException(f"`mixlm worker` exited with {worker.returncode}:\n{tail}")
            time.sleep(0.5)
    return f"{len(want)} postings sent to {settings.items_topic} and stored by the worker"




def _stored(store: FeatureStore, model_version: str, want: dict[str, int]) -> int:
    """How many items have item tokens at least as new as the posted update."""
    ids, done = list(want), 0
    for s in range(0, len(ids), MAX_READ):
        have = store.get_embeddings(model_version, ids[s : s + MAX_READ])
        done += sum(1 for i, row in have.items() if row.source_updated_at >= want[i])
    return done


@dataclass
class RankerThread:
    url: str
    thread: threading.Thread


def serve_in_thread(settings: Settings, model: MixLM, store: FeatureStore, port: int, stack: ExitStack) -> RankerThread:
    """`create_app` under uvicorn on a background thread, sharing the demo's model and store; stopped by the stack."""
    import uvicorn

    from ranker_service.app import create_app

    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response waits ~40 ms for Nagle + delayed ACK.
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, port))  # port 0: the OS picks a free one, with no race against other binds
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {settings.host}:{port}: {e}") from e
    server = uvicorn.Server(uvicorn.Config(create_app(settings, model=model, store=store), log_level="warning",
                                           timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="mixlm-demo-ranker", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)
        if thread.is_alive():  # a request still running past the graceful timeout: stop waiting for it
            server.force_exit = True
            thread.join(timeout=5)
        if not thread.is_alive():  # uvicorn closes the socket in its shutdown; this covers a failed start
            sock.close()

    stack.callback(stop)
    deadline = time.monotonic() + RANKER_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise click.ClickException("the ranker did not start (its log is above)")
        time.sleep(0.05)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    bound_port = sock.getsockname()[1]
    return RankerThread(f"http://{host if ':' not in host else f'[{host}]'}:{bound_port}", thread)


def http_client(url: str, api_keys: list[str]):
    """A keep-alive client for the demo's calls (with the first API key when keys are configured)."""
    import httpx

    return httpx.Client(base_url=url, headers={"X-API-Key": api_keys[0]} if api_keys else {}, timeout=300)


def rank_over_http(client, query: str, item_ids: list[str], top_k: int) -> tuple[dict, float]:
    """One real POST /rank -> (the JSON response, round trip ms)."""
    t = time.perf_counter()
    response = client.post("/rank", json={"query": query, "item_ids": item_ids, "top_k": top_k})
    round_trip_ms = 1000 * (time.perf_counter() - t)
    if response.status_code != 200:
        raise click.ClickException(f"/rank answered {response.status_code}: {response.text[:500]}")
    return response.json(), round_trip_ms


def wait_until_interrupted(ranker: RankerThread) -> None:
    """Serve until Ctrl-C (or SIGTERM); then the caller's ExitStack shuts the ranker down gracefully."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops as cleanly as Ctrl-C
    try:
        # Sleep, not thread.join(0.5): a Ctrl-C that lands inside join() makes CPython 3.11 release the live
        # thread's state lock and mark it stopped, so the shutdown join returned at once and closed the socket
        # under the running server (a traceback at exit).
        while ranker.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
