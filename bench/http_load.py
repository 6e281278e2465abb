"""The load loop of `mixlm bench http`: closed-loop HTTP clients against POST /rank, and the server's RSS sampler.

Each of `concurrency` clients sends one request, waits for the answer and sends the next (closed loop, like wrk),
so at most `concurrency` requests are in the server at once; the batcher refuses more than max_queue with 429.
Transport-free of the CLI: the command in bench/http.py builds the inputs and prints what comes back.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import httpx
import msgspec

from mixlm.schemas import RankResponse

ACCEPTABLE = frozenset({"200", "429"})  # under overload the service answers 429; anything else is a failure


@dataclass
class Tally:
    """What the clients saw. statuses: HTTP status, or the transport error's name ("ReadTimeout", ...)."""

    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # of 200 answers: a 429 is a fast refusal, not a result
    items_scored: int = 0
    missing: int = 0  # ids the server had no item tokens for (it cold-starts or skips them)
    first_bad: dict[str, str] = field(default_factory=dict)  # status -> the first such answer's body
    elapsed_s: float = 0.0

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    def unacceptable(self) -> dict[str, int]:
        return {s: n for s, n in self.statuses.items() if s not in ACCEPTABLE}


def rss_bytes(pid: int) -> int:
    """Resident set size of a process: psutil when installed, else VmRSS from /proc/<pid>/status (Linux).
    Raises ProcessLookupError when the process is gone."""
    try:
        import psutil
    except ImportError:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            raise ProcessLookupError(f"no process {pid}") from None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # reported in kB
        raise ProcessLookupError(f"process {pid} has no VmRSS (a zombie)")
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.NoSuchProcess as e:
        raise ProcessLookupError(str(e)) from None


async def sample_rss(pid: int, every_s: float, samples: list[tuple[float, int]], t0: float) -> None:
    """Append (seconds since t0, RSS bytes) every every_s until cancelled or the process is gone (the caller
    checks the process itself: a dead server is a failure it reports)."""
    while True:
        try:
            samples.append((time.perf_counter() - t0, rss_bytes(pid)))
        except ProcessLookupError:
            return
        await asyncio.sleep(every_s)


async def run_load(client: httpx.AsyncClient, queries: list[str], pool: list[str], n_items: int, concurrency: int,
                   duration_s: float | None, n_requests: int | None, seed: int = 0,
                   on_answer: Callable[[Tally], None] = lambda t: None) -> Tally:
    """Send /rank requests from `concurrency` clients until duration_s has passed or n_requests were sent
    (whichever is given; both: the first reached). In-flight requests at the deadline still count."""
    tally = Tally()
    rng = random.Random(seed)
    decoder = msgspec.json.Decoder(RankResponse)
    sent = 0
    t0 = time.perf_counter()
    deadline = t0 + duration_s if duration_s is not None else float("inf")

    def more() -> bool:
        return time.perf_counter() < deadline and (n_requests is None or sent < n_requests)

    async def one_client() -> None:
        nonlocal sent
        while more():
            sent += 1  # one event loop: no lock needed between the check and the increment
            body = {"query": queries[sent % len(queries)], "item_ids": rng.sample(pool, n_items)}
            t = time.perf_counter()
            try:
                r = await client.post("/rank", json=body)
            except httpx.TransportError as e:  # timeouts, refused or reset connections
                status, text = type(e).__name__, str(e)
            else:
                status, text = str(r.status_code), ""
                if r.status_code == 200:
                    tally.latencies_ms.append(1000 * (time.perf_counter() - t))
                    try:
                        answer = decoder.decode(r.content)  # strictly the documented schema
                    except msgspec.ValidationError as e:
                        status, text = "200 off-schema", str(e)
                    else:
                        tally.items_scored += len(answer.results)
                        tally.missing += len(answer.missing)
                elif r.status_code != 429:
                    text = r.text[:300]
            tally.statuses[status] += 1
            if text:
                tally.first_bad.setdefault(status, text)
            on_answer(tally)

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    tally.elapsed_s = time.perf_counter() - t0
    return tally
