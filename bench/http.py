"""`mixlm bench http`: a load generator against `mixlm serve` on loopback (issue 8 item 3; issue 10's soak).

--concurrency closed-loop clients (bench/http_load.py) send POST /rank with a demo query and --items item ids
drawn from the store the server reads (ids that have item tokens under the server's model_version, so the run
measures serving, not cold-start encoding), for --duration seconds or --requests requests. Reports requests/s,
items/s (items scored in 200 answers), p50/p95/p99 latency of the 200 answers and the count per status; any
status other than 200 or 429 (the batcher's overload answer), or a transport error, fails the command.

--spawn starts `mixlm serve` itself (the current settings, a free loopback port), samples its RSS every
--rss-every seconds and stops it with SIGTERM at the end, so a long run shows whether memory stays flat:
    mixlm bench http --spawn --seed --duration 300 --concurrency 96   (the soak; 96 > max_queue 64 -> 429s)
--seed first posts the shipped demo corpus (300 postings) through the demo's encoding path into the store.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from bench.engine import percentile
from bench.http_load import Tally, rss_bytes, run_load, sample_rss
from bench.results import record, record_option
from mixlm.cli import settings_of
from mixlm.settings import Settings

POOL_LIMIT = 20_000  # ids read from the store to sample requests from


def seed_demo_corpus(settings: Settings, console: Console) -> str:
    """The shipped demo postings into the configured store, encoded the way `mixlm demo` does it (embedded bus,
    or Kafka + a `mixlm worker` when MIXLM_KAFKA_BOOTSTRAP is set); already stored items are skipped."""
    from feature_store.base import open_store
    from mixlm.data import load_postings
    from mixlm.demo_run import encode_corpus
    from mixlm.weights import build_mixlm

    with console.status("seeding: loading the model"):
        model = build_mixlm(settings)
    with ExitStack() as stack:
        store = open_store(settings)
        stack.callback(store.close)
        store.init()
        return encode_corpus(settings, model, store, load_postings(), console, stack)


def rankable_ids(settings: Settings, model_version: str, limit: int = POOL_LIMIT) -> list[str]:
    """Ids of live items with item tokens under model_version in the configured store."""
    from feature_store.base import open_store

    store = open_store(settings)
    try:
        store.init()
        ids: list[str] = []
        for batch in store.scan_items(500):
            have = store.get_embeddings(model_version, [it.item_id for it in batch])
            ids += [it.item_id for it in batch if it.item_id in have]
            if len(ids) >= limit:
                break
        return ids[:limit]
    finally:
        store.close()


def wait_ready(url: str, timeout_s: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> dict:
    """Poll /readyz until 200; returns its body (status, model_version, engine)."""
    deadline, last = time.monotonic() + timeout_s, "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise click.ClickException(f"`mixlm serve` exited with {proc.returncode} before it was ready:\n"
                                       + log_tail(log))
        try:
            r = httpx.get(f"{url}/readyz", timeout=2)
            if r.status_code == 200:
                return r.json()
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.TransportError as e:
            last = type(e).__name__
        time.sleep(0.3)
    raise click.ClickException(f"{url}/readyz not ready in {timeout_s:.0f} s (last: {last})"
                               + (f"\n{log_tail(log)}" if log else ""))


def log_tail(log: Path | None, lines: int = 20) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def rss_summary(samples: list[tuple[float, int]]) -> dict:
    """first/last/max RSS in MB, and the growth from the second sample (warm-up done) to the last."""
    mb = [round(b / 2**20, 1) for _, b in samples]
    if not mb:
        return {}
    return {"first_mb": mb[0], "last_mb": mb[-1], "max_mb": max(mb),
            "growth_mb": round(mb[-1] - mb[1], 1) if len(mb) >= 3 else None, "samples_mb": mb}


def latency_summary(t: Tally) -> dict:
    if not t.latencies_ms:
        return {}
    return {f"p{q}_ms": round(percentile(t.latencies_ms, q), 1) for q in (50, 95, 99)}


def failure(t: Tally, phase: str) -> str | None:
    bad = t.unacceptable()
    if not bad:
        return None
    first = "; ".join(f"{s}: {t.first_bad.get(s, '')[:200]}" for s in bad)
    listed = ", ".join(f"{s} x {n}" for s, n in sorted(bad.items()))
    return f"{phase}: unacceptable answers (only 200 and 429 are): {listed} (first: {first})"


async def drive(url: str, headers: dict, timeout_s: float, queries: list[str], pool: list[str], n_items: int,
                concurrency: int, duration_s: float | None, n_requests: int | None, warmup: int,
                pid: int | None, rss_every_s: float) -> tuple[Tally, Tally, list[tuple[float, int]]]:
    """Warm-up requests (untimed), then the timed run with the RSS sampler beside it."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s, limits=limits) as client:
        warm = await run_load(client, queries, pool, n_items, concurrency, None, warmup, seed=1)
        if failure(warm, "warm-up"):
            return warm, Tally(), []
        samples: list[tuple[float, int]] = []
        t0 = time.perf_counter()
        sampler = asyncio.create_task(sample_rss(pid, rss_every_s, samples, t0)) if pid else None
        total = n_requests if duration_s is None else duration_s
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[line]}"),
                      TimeElapsedColumn()) as progress:
            task = progress.add_task("load", total=total, line="")

            def on_answer(t: Tally) -> None:
                done = t.requests if duration_s is None else time.perf_counter() - t0
                progress.update(task, completed=done,
                                line=", ".join(f"{s}: {n}" for s, n in sorted(t.statuses.items())))

            timed = await run_load(client, queries, pool, n_items, concurrency, duration_s, n_requests,
                                   seed=2, on_answer=on_answer)
        if sampler:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            try:
                samples.append((time.perf_counter() - t0, rss_bytes(pid)))  # the end of the run
            except ProcessLookupError:
                pass
    return warm, timed, samples


@click.command()
@click.option("--url", default=None, help="A running ranker (default http://127.0.0.1:MIXLM_PORT); not with --spawn.")
@click.option("--spawn", is_flag=True, help="Start `mixlm serve` (current settings, a free port), sample its RSS, "
              "stop it at the end.")
@click.option("--seed", is_flag=True, help="Post the shipped demo corpus (300 postings) into the store first.")
@click.option("--concurrency", type=click.IntRange(1), default=8, show_default=True, help="Concurrent clients.")
@click.option("--items", "n_items", type=click.IntRange(1), default=50, show_default=True, help="Item ids per request.")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True), default=10.0,
              show_default=True, help="Seconds of timed load (with --requests: whichever comes first).")
@click.option("--requests", "n_requests", type=click.IntRange(1), default=None,
              help="Stop after this many timed requests (alone: no time limit).")
@click.option("--warmup", type=click.IntRange(0), default=16, show_default=True, help="Untimed requests first.")
@click.option("--rss-every", "rss_every_s", type=click.FloatRange(min=0.1), default=5.0, show_default=True,
              help="Seconds between samples of the server's RSS (with --spawn or --pid).")
@click.option("--pid", type=int, default=None, help="The running server's pid, to sample its RSS without --spawn.")
@click.option("--api-key", default=None, help="Sent as X-API-Key (default: the first of MIXLM_API_KEYS).")
@click.option("--timeout", "timeout_s", type=float, default=120.0, show_default=True, help="Per-request timeout, s.")
@click.option("--ready-timeout", "ready_timeout_s", type=float, default=300.0, show_default=True,
              help="How long to wait for /readyz.")
@click.option("--serve-log", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output of the spawned server (default <home>/bench/http-serve.log).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the report (with every RSS sample) as JSON.")
@record_option
@click.pass_context
def http(ctx, url, spawn, seed, concurrency, n_items, duration_s, n_requests, warmup, rss_every_s, pid, api_key,
         timeout_s, ready_timeout_s, serve_log, out, do_record) -> None:
    """Requests/s, items/s, p50/p95/p99 and answers per status of POST /rank under concurrent load; with --spawn,
    the server's RSS over the run. Fails on any answer other than 200 or 429."""
    from mixlm.data import load_queries

    settings = settings_of(ctx)
    if spawn and (url or pid):
        raise click.UsageError("--spawn starts its own server: leave out --url and --pid")
    if n_requests is not None and ctx.get_parameter_source("duration_s").name == "DEFAULT":
        duration_s = None  # --requests alone: no time limit
    console = Console(highlight=False, soft_wrap=True)
    if seed:
        console.print(f"seed    {seed_demo_corpus(settings, console)}", markup=False)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        proc = log = None
        if spawn:
            from encoder_worker.launch import free_port, spawn_mixlm, stop_worker

            serving = settings.model_copy(update={"host": "127.0.0.1", "port": free_port()})
            log = serve_log or settings.home / "bench" / "http-serve.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            log.write_bytes(b"")
            proc = spawn_mixlm(serving, log, "serve", "--log-level", "warning")
            stack.callback(stop_worker, proc)  # SIGTERM: uvicorn finishes in-flight requests, then exits
            url, pid = f"http://127.0.0.1:{serving.port}", proc.pid
            console.print(f"server  `mixlm serve` pid {proc.pid} on {url}, log {log}", markup=False)
        url = (url or f"http://127.0.0.1:{settings.port}").rstrip("/")
        with console.status(f"waiting for {url}/readyz"):
            ready = wait_ready(url, ready_timeout_s, proc, log)
        pool = rankable_ids(settings, ready["model_version"])
        if len(pool) < n_items:
            raise click.ClickException(
                f"the store ({_store_name(settings)}) has item tokens under {ready['model_version']} for {len(pool)} "
                f"items, fewer than --items {n_items}: add --seed (posts the 300 demo postings) or lower --items")
        key = api_key if api_key is not None else (settings.api_keys[0] if settings.api_keys else None)
        queries = [q.text for q in load_queries()]
        console.print(f"load    {concurrency} clients x {n_items} items from {len(pool)} rankable ids, "
                      f"model {ready['model_version']} ({ready.get('engine')}), warm-up {warmup} requests", markup=False)
        warm, timed, samples = asyncio.run(drive(url, {"X-API-Key": key} if key else {}, timeout_s, queries, pool,
                                                 n_items, concurrency, duration_s, n_requests, warmup, pid,
                                                 rss_every_s))
        died = proc is not None and proc.poll() is not None
        stack.close()
        if died:
            raise click.ClickException(f"`mixlm serve` exited with {proc.returncode} during the run:\n{log_tail(log)}")
        if proc is not None and proc.returncode not in (0, -signal.SIGTERM):  # uvicorn re-raises SIGTERM after a clean stop
            raise click.ClickException(f"`mixlm serve` did not stop cleanly (exit {proc.returncode}):\n{log_tail(log)}")
    problem = failure(warm, "warm-up") or failure(timed, "run")
    report = summarize(settings, ready, timed, samples, concurrency, n_items, rss_every_s)
    if timed.requests:  # none when the warm-up already failed
        show(report)
    if out:
        out.write_text(json.dumps(report, indent=1))
    if problem:
        raise click.ClickException(problem)
    if not timed.latencies_ms:
        raise click.ClickException("no request was answered with 200: nothing to report")
    if do_record:
        load_after = os.getloadavg()
        rss = report["rss"]
        record("HTTP load (mixlm bench http)", HEADER, [row(report)],
               note=(f"spawned `mixlm serve` ({settings.base_model}, weights {settings.weights}, {settings.dtype}, "
                     f"{settings.resolved_device()})" if spawn else url)
                    + f"; closed-loop clients, warm-up {warmup} requests; "
                    f"latency of 200 answers; client and server on the same {os.cpu_count()} CPUs; "
                    f"max_queue {settings.max_queue} (the server's, if spawned); "
                    f"{timed.missing} requested ids missing in answers; load average before {load_before[0]:.1f}, "
                    f"after {load_after[0]:.1f}"
                    + (f"; RSS MB every {rss_every_s:g} s: {_series(rss['samples_mb'])}" if rss else ""))


HEADER = ["model_version", "engine", "store", "clients", "items/request", "seconds", "requests", "answers",
          "requests/s", "items/s", "p50 ms", "p95 ms", "p99 ms", "RSS MB first/last/max", "RSS growth MB"]


def _store_name(settings: Settings) -> str:
    return f"cassandra {settings.cassandra_hosts}" if settings.cassandra_hosts else f"sqlite {settings.resolved_sqlite_path()}"


def summarize(settings: Settings, ready: dict, t: Tally, samples, concurrency: int, n_items: int,
              rss_every_s: float) -> dict:
    elapsed = t.elapsed_s or float("nan")
    return {"model_version": ready.get("model_version"), "engine": ready.get("engine"),
            "store": "cassandra" if settings.cassandra_hosts else "sqlite", "concurrency": concurrency,
            "items_per_request": n_items, "seconds": round(t.elapsed_s, 1), "requests": t.requests,
            "statuses": dict(sorted(t.statuses.items())), "requests_per_s": round(t.requests / elapsed, 2),
            "items_per_s": round(t.items_scored / elapsed, 1), "items_scored": t.items_scored, "missing": t.missing,
            "latency": latency_summary(t), "rss_every_s": rss_every_s, "rss": rss_summary(samples)}


def row(r: dict) -> list:
    lat, rss = r["latency"], r["rss"]
    growth = rss.get("growth_mb")
    return [r["model_version"], r["engine"], r["store"], r["concurrency"], r["items_per_request"], r["seconds"],
            r["requests"], ", ".join(f"{s}: {n}" for s, n in r["statuses"].items()), r["requests_per_s"],
            r["items_per_s"], lat.get("p50_ms", ""), lat.get("p95_ms", ""), lat.get("p99_ms", ""),
            f"{rss['first_mb']:.0f} / {rss['last_mb']:.0f} / {rss['max_mb']:.0f}" if rss else "",
            "" if growth is None else f"{growth:+.1f}"]


def _series(mb: list[float]) -> str:
    return " ".join(f"{v:.0f}" for v in mb)


def show(report: dict) -> None:
    click.echo(" | ".join(HEADER))
    click.echo(" | ".join(str(v) for v in row(report)))
    if report["rss"]:
        click.echo(f"server RSS MB every {report['rss_every_s']:g} s: {_series(report['rss']['samples_mb'])}")
