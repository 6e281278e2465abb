"""The search page in headless Chromium (Debian's `chromium`, driven by Playwright) against a real
`mixlm serve` process with the tiny model, over a store filled by `mixlm post` from the demo corpus."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from encoder_worker.launch import free_port
from mixlm.data import POSTINGS, demo_dir, load_postings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MIXLM = [sys.executable, "-c", "from mixlm.cli import main; main()"]
TITLES = {p.item_id: p.title for p in load_postings()}


@pytest.fixture(scope="module")
def ranker_url(tmp_path_factory):
    """`mixlm post` the demo corpus (embedded bus -> SQLite), then a real `mixlm serve` on a free port."""
    tmp = tmp_path_factory.mktemp("page")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIXLM_")} | {
        "MIXLM_BASE_MODEL": "tiny", "MIXLM_WEIGHTS": "none", "MIXLM_DTYPE": "fp32", "MIXLM_DEVICE": "cpu",
        "MIXLM_SQLITE_PATH": str(tmp / "store.sqlite")}
    post = subprocess.run([*MIXLM, "post", str(demo_dir() / POSTINGS)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert post.returncode == 0 and f"sent {len(TITLES)}," in post.stdout, post.stdout + post.stderr
    port = free_port()
    log = open(tmp / "serve.log", "w+")
    server = subprocess.Popen([*MIXLM, "serve", "--port", str(port), "--log-level", "warning"], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, Path(log.name).read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ranker not ready in 300 s: " + Path(log.name).read_text()
            time.sleep(0.3)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, ranker_url):
    context = browser.new_context(base_url=ranker_url, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def result_rows(page) -> list[tuple[str, float, str]]:
    """(title, score, item id) of each shown result row."""
    rows = []
    for row in page.locator("#results tbody tr.result").all():
        cells = row.locator("td").all_inner_texts()
        rows.append((cells[1].split("\n")[0].strip(), float(cells[2].strip()), cells[3].strip()))
    return rows


def test_typing_a_query_shows_the_ranked_jobs_with_titles_scores_and_timings(page, tmp_path):
    page.fill("#query", "Sous Chef")
    page.fill("#top_k", "8")
    page.press("#query", "Enter")
    page.wait_for_selector("#results tbody tr.result")
    rows = result_rows(page)
    assert len(rows) == 8
    assert all(TITLES[item_id] == title for title, _, item_id in rows)
    scores = [s for _, s, _ in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    timings = page.inner_text("#timings")
    assert "score" in timings and "total" in timings and "round trip" in timings
    assert page.locator("#missing").is_hidden()
    assert f"8 of {len(TITLES)} items ranked" in page.inner_text("#status")
    page.screenshot(path=str(tmp_path / "search_page.png"), full_page=True)


def test_typed_ids_rank_only_those_and_unknown_ids_are_noted_as_missing(page):
    known = sorted(TITLES)[:3]
    page.uncheck("#all_items")
    page.fill("#item_ids", ", ".join(known) + "\nno-such-job")
    page.fill("#query", "Airline Pilot")
    page.click("#go")
    page.wait_for_selector("#results tbody tr.result")
    assert sorted(item_id for _, _, item_id in result_rows(page)) == known
    missing = page.locator("#missing")
    assert missing.is_visible()
    assert "1 item(s) were missing" in missing.inner_text() and "no-such-job" in missing.inner_text()


def test_an_error_from_the_api_is_shown_not_swallowed(page):
    page.uncheck("#all_items")
    page.fill("#query", "Airline Pilot")
    page.fill("#item_ids", "x" * 300)  # longer than an item id may be: /rank answers 422 naming the field
    page.click("#go")
    page.wait_for_selector("#status.error")
    assert "422" in page.inner_text("#status") and "item_ids" in page.inner_text("#status")
    assert page.locator("#results").is_hidden()
