"""`mixlm demo`: the whole platform in one process, on embedded defaults, in a few minutes.

Posts the shipped O*NET corpus through the bus to the encoder worker core into the feature store,
starts the ranker (uvicorn, `create_app`) on a free local port, sends real `/rank` calls over HTTP and
prints a ranked table per query, then serves until Ctrl-C (or stops, with --exit). With --kafka and
--cassandra (or MIXLM_KAFKA_BOOTSTRAP / MIXLM_CASSANDRA_HOSTS) it uses the real services from
`mixlm services up`: the corpus goes to the Kafka topic and a `mixlm worker` process encodes it.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from contextlib import ExitStack
from pathlib import Path

import click
from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from mixlm.cli import settings_of
from mixlm.data import DemoQuery, demo_dir, load_postings, load_queries
from mixlm.schemas import JobUpdate
from mixlm.settings import Settings

log = logging.getLogger(__name__)
FIRST_STAGE_K = 50  # candidates per query from BM25, as a search backend's first stage would send (DESIGN.md, "Data")


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("items"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


def bm25_candidates(postings: list[JobUpdate], queries: list[DemoQuery], k: int) -> dict[str, list[str]]:
    """The first stage: BM25 top k per query over the corpus (training.first_stage, the eval's own)."""
    from training.datasets import Doc, Query, RelevanceSet
    from training.first_stage import bm25_candidates as top_bm25

    rs = RelevanceSet(name="onet_demo", queries={q.query_id: Query(q.query_id, q.text) for q in queries},
                      docs={p.item_id: Doc(p.item_id, p.title, p.text) for p in postings}, qrels={})
    return top_bm25(rs, [q.query_id for q in queries], k=k)


def rank_table(query: DemoQuery, response: dict, titles: dict[str, JobUpdate], n_candidates: int, round_trip_ms: float) -> Group:
    timings = " · ".join(f"{k} {v:.1f} ms" for k, v in response["timings_ms"].items())
    # The query is a heading line, not the table's title: a title wraps at the table's (narrow) width.
    heading = Text.assemble("\n", (query.text, "bold"), f"  ({n_candidates} candidates)")
    table = Table(caption=f"server: {timings} · round trip {round_trip_ms:.1f} ms", caption_justify="left")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("job")
    table.add_column("item id", style="dim")
    table.add_column("O*NET", justify="center")
    for i, r in enumerate(response["results"], 1):
        posting = titles.get(r["item_id"])
        table.add_row(str(i), f"{r['score']:.4f}", Text(posting.title if posting else "?"), Text(r["item_id"]),
                      "✓" if r["item_id"] in query.relevant else "")
    if response["missing"]:
        table.caption += f"\nmissing (no item tokens yet): {', '.join(response['missing'][:10])}"
    return Group(heading, table)


@click.command()
@click.option("--kafka", is_flag=True, help="Post through the real Kafka (MIXLM_KAFKA_BOOTSTRAP, else the "
              "`mixlm services up` broker) and encode in a `mixlm worker` process.")
@click.option("--cassandra", is_flag=True, help="Store in the real Cassandra (MIXLM_CASSANDRA_HOSTS, else 127.0.0.1).")
@click.option("--base-model", type=click.Choice(["smollm2-135m", "tiny"]), default=None, help="MIXLM_BASE_MODEL.")
@click.option("--weights", default=None, help="Weight set folder, 'auto' or 'none' (MIXLM_WEIGHTS).")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="A folder with postings.jsonl (JobUpdates) and queries.jsonl; default: the shipped O*NET corpus.")
@click.option("--candidates", type=click.Choice(["bm25", "all"]), default="bm25", show_default=True,
              help=f"Item ids per /rank call: BM25's top {FIRST_STAGE_K} (a search backend's first stage) or every item.")
@click.option("--top-k", type=int, default=5, show_default=True, help="Rows per printed table.")
@click.option("--host", default=None, help="Bind address (MIXLM_HOST).")
@click.option("--port", type=int, default=0, show_default=True, help="Ranker port; 0 = a free one.")
@click.option("--exit", "--no-serve", "exit_after", is_flag=True, help="Stop after the tables instead of serving (tests, CI).")
@click.option("--record", is_flag=True, help="Append the set-up timings to bench/RESULTS.md.")
@click.pass_context
def demo(ctx: click.Context, kafka: bool, cassandra: bool, base_model: str | None, weights: str | None,
         data_dir: Path | None, candidates: str, top_k: int, host: str | None, port: int, exit_after: bool,
         record: bool) -> None:
    """Run the whole platform on the shipped job corpus, print ranked results, then serve the search page."""
    settings = settings_of(ctx, base_model=base_model, weights=weights, host=host)
    if kafka and not settings.kafka_bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{settings.kafka_port}"})
    if cassandra and not settings.cassandra_hosts:
        settings = settings.model_copy(update={"cassandra_hosts": ["127.0.0.1"]})
    console = Console(highlight=False)
    with ExitStack() as stack:
        run_demo(settings, console, stack, data_dir or demo_dir(), candidates, top_k, port, exit_after, record)
    if not exit_after:
        console.print("stopped.")


def record_setup(settings: Settings, n_items: int, summary: str, load_s: float, encode_s: float, setup_s: float,
                 load_avg_start: float) -> None:
    """The set-up timings as a bench/RESULTS.md table; the load average says how busy the machine was."""
    from bench.results import record

    bus = "kafka + worker" if settings.kafka_bootstrap else "embedded bus"
    store = "cassandra" if settings.cassandra_hosts else "sqlite"
    record("demo set-up", ["bus", "store", "model", "dtype", "items", "outcome", "model load s", "encode s",
                           "items/s", "set-up s"],
           [[bus, store, f"{settings.base_model} ({settings.weights})", settings.dtype, n_items, summary,
             f"{load_s:.1f}", f"{encode_s:.1f}", f"{n_items / encode_s:.2f}", f"{setup_s:.1f}"]],
           note=f"set-up = start to ranker ready; 1-min load average {load_avg_start:.1f} at start, "
                f"{os.getloadavg()[0]:.1f} at ranker ready, on {os.cpu_count()} CPUs")


def run_demo(settings: Settings, console: Console, stack: ExitStack, data_dir: Path, candidates: str, top_k: int,
             port: int, exit_after: bool, record: bool = False) -> None:
    from feature_store.base import open_store
    from mixlm.demo_run import encode_corpus, http_client, rank_over_http, serve_in_thread, wait_until_interrupted
    from mixlm.weights import build_mixlm

    started, load_avg_start = time.perf_counter(), os.getloadavg()[0]
    postings, queries = load_postings(data_dir), load_queries(data_dir)
    bus = f"Kafka {settings.kafka_bootstrap}" if settings.kafka_bootstrap else "embedded in-process bus"
    store_name = f"Cassandra {settings.cassandra_hosts}" if settings.cassandra_hosts else f"SQLite {settings.resolved_sqlite_path()}"
    console.rule("[bold]MixLM demo")
    console.print(f"corpus  {len(postings)} postings, {len(queries)} queries from {data_dir}\n"
                  f"bus     {bus}\nstore   {store_name}\nmodel   {settings.base_model} (weights: {settings.weights}, "
                  f"dtype: {settings.dtype}, device: {settings.resolved_device()})", markup=False)

    with console.status("loading the model"):
        t = time.perf_counter()
        model = build_mixlm(settings)
        load_s = time.perf_counter() - t
    console.print(f"model   model_version {model.model_version}, loaded in {load_s:.1f} s")
    store = open_store(settings)
    stack.callback(store.close)
    store.init()

    t = time.perf_counter()
    summary = encode_corpus(settings, model, store, postings, console, stack)
    encode_s = time.perf_counter() - t
    console.print(f"encode  {summary} in {encode_s:.1f} s", markup=False)

    with console.status("starting the ranker"):
        ranker = serve_in_thread(settings, model, store, port, stack)
    base_url = ranker.url
    setup_s = time.perf_counter() - started
    console.print(f"ranker  {base_url} (set-up {setup_s:.1f} s: model {load_s:.1f} s, encoding {encode_s:.1f} s)")
    if record:
        record_setup(settings, len(postings), summary, load_s, encode_s, setup_s, load_avg_start)

    by_id = {p.item_id: p for p in postings}
    if candidates == "bm25":
        per_query = bm25_candidates(postings, queries, FIRST_STAGE_K)
    else:
        per_query = {q.query_id: list(by_id) for q in queries}
    client = stack.enter_context(http_client(base_url, settings.api_keys))
    for query in queries:
        ids = per_query[query.query_id]
        response, round_trip_ms = rank_over_http(client, query.text, ids, top_k)
        console.print(rank_table(query, response, by_id, len(ids), round_trip_ms))

    console.rule()
    if exit_after:
        console.print(f"done in {time.perf_counter() - started:.1f} s (--exit: not serving)")
        return
    example = json.dumps({"query": queries[0].text, "item_ids": per_query[queries[0].query_id][:3]})
    console.print(f"[bold green]Serving[/] the search page on {base_url}/ and the API on {base_url}/rank\n"
                  f"try:  curl -s {base_url}/rank -H 'content-type: application/json' -d {escape(shlex.quote(example))}\n"
                  "Ctrl-C stops.", soft_wrap=True)
    wait_until_interrupted(ranker)
    console.print("stopping…")
