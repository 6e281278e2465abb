"""Offline evaluation (paper Table 3): rerank one first-stage candidate list with each system, report metrics.

Systems: ``bm25`` and ``biencoder`` (their own first-stage scores), ``teacher`` (the full-text LLM prompt,
``MixLM.score_text``; ``teacher@N`` truncates each item to its first N tokens, a stand-in for the
summarised text of §6.1), and ``mixlm`` (item tokens from the encoder, cached per content hash and
model_version, then ``MixLM.score_mixed``). Scoring time is measured per system, so items/s can be set
against quality (bench/quality.py); MixLM's item encoding is nearline and timed apart.

``evaluate_sets`` runs the same per-set evaluation over a folder of sets (``find_sets``), one model for all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

import msgspec
from tqdm.auto import tqdm

from mixlm.errors import DataFormatError
from mixlm.settings import Settings
from training import first_stage
from training.datasets import (DOCS, QRELS, QUERIES, RelevanceSet, doc_text, excluded_docs, load_relevance_set,
                               sample_queries)
from training.item_cache import encoded_items
from training.metrics import MEASURES, mean_and_se, means, paired_difference, per_query, rank
from training.pairs import trained_on

log = logging.getLogger(__name__)

SYSTEMS = ("bm25", "biencoder", "teacher", "mixlm")
SE_COLUMN = "NDCG@10 SE"  # standard error of the mean over the sampled queries
FIRST_STAGES = ("bm25", "biencoder")
Scores = dict[str, dict[str, float]]  # query_id -> doc_id -> score


class SystemResult(msgspec.Struct):
    system: str
    metrics: dict[str, float]  # NDCG@10, MRR@10, Recall@50
    n_items: int  # (query, candidate) pairs scored
    score_s: float  # wall time of scoring only (model loading and nearline encoding excluded)
    items_per_s: float
    encode_s: float = 0.0  # MixLM: nearline item encoding of the docs not cached yet
    n_item_tokens: int | None = None  # MixLM: T_S
    per_query: dict[str, float] = {}  # NDCG@10 of each query: the standard error and paired differences come from it

    @property
    def ndcg_se(self) -> float:
        return mean_and_se(list(self.per_query.values()))[1]


class EvalReport(msgspec.Struct):
    data_set: str
    first_stage: str  # e.g. "bm25:50"
    n_queries: int
    seed: int
    model_version: str | None
    results: list[SystemResult]
    query_ids: list[str]
    interrupted: list[str] = []  # systems not finished because the run was interrupted (Ctrl-C)
    trained_on: int = 0  # judged queries left out of the sample because the weight set was trained on them


class SkippedFolder(msgspec.Struct):
    folder: str
    reason: str


class EvalRun(msgspec.Struct):
    """Everything one `mixlm eval` produced: a report per set evaluated, the folders it could not evaluate."""

    data: str
    reports: list[EvalReport]
    skipped: list[SkippedFolder] = []
    not_run: list[str] = []  # sets not reached because the run was interrupted


def parse_candidates(spec: str) -> tuple[str, int]:
    """'bm25:50' -> ('bm25', 50)."""
    name, _, k = spec.partition(":")
    if name not in FIRST_STAGES or not (k or "50").isdigit() or int(k or 50) < 1:
        raise ValueError(f"--candidates must be one of {FIRST_STAGES} with an optional ':K' (K >= 1), got {spec!r}")
    return name, int(k or 50)


def parse_system(spec: str) -> tuple[str, int | None]:
    """'teacher@48' -> ('teacher', 48); other systems take no argument."""
    name, _, arg = spec.partition("@")
    if name not in SYSTEMS or (arg and (name != "teacher" or not arg.isdigit() or int(arg) < 1)):
        raise ValueError(f"systems are {SYSTEMS} (teacher@N truncates items to N tokens), got {spec!r}")
    return name, int(arg) if arg else None


class Evaluation:
    """One data set, one query sample, one candidate list; systems are scored against it one by one."""

    def __init__(self, rs: RelevanceSet, settings: Settings, candidates: str = "bm25:50",
                 n_queries: int | None = None, seed: int = 0, cache_dir: Path | None = None,
                 exclude: Collection[str] = ()):
        self.rs, self.settings, self.seed = rs, settings, seed
        self.first_stage_spec = candidates
        self.source, self.k = parse_candidates(candidates)
        self.excluded = len(set(exclude) & {q for q in rs.qrels if rs.qrels[q]})
        self.query_ids = sample_queries(rs, n_queries, seed, exclude)
        if not self.query_ids:
            raise ValueError(f"{rs.name}: no judged queries to evaluate")
        self.cache_dir = cache_dir or settings.home / "cache"
        self._model = None
        self._first_stage_scores: Scores = {}
        self.candidates = self._build_candidates()

    def _build_candidates(self) -> dict[str, list[str]]:
        """The first-stage list, built once; its scores are kept so that system reuses them."""
        exclude = excluded_docs(self.rs, self.query_ids)
        t0 = time.perf_counter()
        if self.source == "bm25":
            index = first_stage.BM25Index(self.rs)
        else:
            index = first_stage.BiEncoderIndex(self.rs, self.settings)
        scores = index.scores(self.query_ids)
        candidates = first_stage.top_k(index.doc_ids, scores, self.query_ids, self.k, exclude)
        self._first_stage_scores = first_stage.pick_scores(index.doc_ids, scores, candidates)
        self._first_stage_s = time.perf_counter() - t0
        log.info("%s: %s candidates for %d queries in %.1fs", self.rs.name, self.first_stage_spec, len(candidates), self._first_stage_s)
        return candidates

    @property
    def model(self):
        if self._model is None:
            from mixlm.weights import build_mixlm

            self._model = build_mixlm(self.settings)
        return self._model

    @property
    def loaded_model(self):
        """The MixLM if one was built or given (None when only BM25 / the bi-encoder ran)."""
        return self._model

    def use_model(self, model) -> None:
        """Score with an already built MixLM (tests, training-time validation) instead of building one."""
        self._model = model

    def run(self, systems: Sequence[str]) -> EvalReport:
        """Score every system; on Ctrl-C the systems already finished are still reported."""
        results: list[SystemResult] = []
        for i, spec in enumerate(systems):
            try:
                results.append(self.run_system(spec))
            except KeyboardInterrupt:
                log.warning("interrupted during %s: reporting the %d systems finished", spec, len(results))
                return self._report(results, list(systems[i:]))
        return self._report(results, [])

    def _report(self, results: list[SystemResult], interrupted: list[str]) -> EvalReport:
        version = self._model.model_version if self._model is not None else None
        return EvalReport(self.rs.name, self.first_stage_spec, len(self.query_ids), self.seed, version, results,
                          self.query_ids, interrupted, self.excluded)

    def run_system(self, spec: str) -> SystemResult:
        name, arg = parse_system(spec)
        n_items = sum(len(c) for c in self.candidates.values())
        encode_s, n_tokens = 0.0, None
        if name == self.source:
            scores, score_s = self._first_stage_scores, self._first_stage_s
        elif name == "bm25":
            scores, score_s = _timed(lambda: first_stage.bm25_scores(self.rs, self.candidates))
        elif name == "biencoder":
            scores, score_s = _timed(lambda: first_stage.biencoder_scores(self.rs, self.candidates, self.settings))
        elif name == "teacher":
            scores, score_s = self._teacher(spec, arg)
        else:
            scores, score_s, encode_s = self._mixlm()
            n_tokens = self.model.n_item_tokens
        rankings = {q: rank(scores[q], self.candidates[q]) for q in self.query_ids}
        values = per_query(self.rs.qrels, rankings, self.query_ids)
        return SystemResult(spec, means(values), n_items, score_s, n_items / max(score_s, 1e-9), encode_s, n_tokens,
                            {q: v["NDCG@10"] for q, v in values.items()})

    def _texts(self, truncate: int | None) -> dict[str, str]:
        """Item text of every candidate doc, optionally cut to its first ``truncate`` tokens."""
        docs = sorted({d for c in self.candidates.values() for d in c})
        texts = {d: doc_text(self.rs.docs[d]) for d in docs}
        if truncate is None:
            return texts
        tok = self.model.tokenizer
        return {d: tok.decode(tok(t, add_special_tokens=False).input_ids[:truncate]) for d, t in texts.items()}

    def _teacher(self, spec: str, truncate: int | None, chunk: int = 8) -> tuple[Scores, float]:
        """Full-text LLM scores. Items go in chunks of `chunk` per forward: multi-item scoring equals
        per-item scoring, and chunks keep the [L, L] attention mask of 50 long items out of memory."""
        texts = self._texts(truncate)
        scores: Scores = {}
        t0 = time.perf_counter()
        for q in tqdm(self.query_ids, desc=f"{spec} ({self.rs.name})", unit="query"):
            docs, query = self.candidates[q], self.rs.queries[q].text
            values: list[float] = []
            for s in range(0, len(docs), chunk):
                values += self.model.score_text(query, [texts[d] for d in docs[s : s + chunk]]).tolist()
            scores[q] = dict(zip(docs, values))
        return scores, time.perf_counter() - t0

    def _mixlm(self) -> tuple[Scores, float, float]:
        texts = self._texts(None)
        doc_ids = list(texts)
        t0 = time.perf_counter()
        tokens, n_new = encoded_items(self.model, [texts[d] for d in doc_ids], self.cache_dir,
                                      progress=f"encode items ({self.rs.name})")
        encode_s = time.perf_counter() - t0 if n_new else 0.0
        by_doc = dict(zip(doc_ids, tokens))
        scores: Scores = {}
        t0 = time.perf_counter()
        for q in tqdm(self.query_ids, desc=f"mixlm T_S={self.model.n_item_tokens} ({self.rs.name})", unit="query"):
            docs = self.candidates[q]
            values = self.model.score_mixed(self.rs.queries[q].text, [by_doc[d] for d in docs]).tolist()
            scores[q] = dict(zip(docs, values))
        return scores, time.perf_counter() - t0, encode_s


def find_sets(root: Path) -> tuple[list[Path], list[SkippedFolder]]:
    """``root`` itself when it is a set (holds qrels.tsv), else each sub-folder that is a whole set; the other
    sub-folders come back as skipped, with what they lack (e.g. the jobs_* corpora hold docs only)."""
    root = Path(root)
    if (root / QRELS).is_file():
        return [root], []
    sets, skipped = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        missing = [f for f in (QUERIES, DOCS, QRELS) if not (folder / f).is_file()]
        if not missing:
            sets.append(folder)
        else:
            has = [f for f in (QUERIES, DOCS, QRELS) if f not in missing]
            only = f" (only {', '.join(has)})" if has else ""
            skipped.append(SkippedFolder(folder.name, f"no {', '.join(missing)}{only}"))
    if not sets:
        raise DataFormatError(f"{root} is not a relevance set ({QUERIES}, {DOCS}, {QRELS}) and holds no set folders"
                              + (f" (skipped: {', '.join(s.folder for s in skipped)})" if skipped else ""))
    return sets, skipped


def evaluate_sets(folders: Sequence[Path], settings: Settings, systems: Sequence[str], candidates: str = "bm25:50",
                  n_queries: int | None = None, seed: int = 0, cache_dir: Path | None = None,
                  held_out_of: dict | None = None) -> Iterator[EvalReport]:
    """One report per set, in order, the MixLM built once and shared. Stops after a set that was interrupted.
    ``held_out_of``: a weight set's manifest; the queries it was trained on are left out of every sample."""
    model = None
    for folder in folders:
        rs = load_relevance_set(folder)
        exclude = trained_on(held_out_of, rs) if held_out_of else []
        evaluation = Evaluation(rs, settings, candidates=candidates, n_queries=n_queries, seed=seed,
                                cache_dir=cache_dir, exclude=exclude)
        if model is not None:
            evaluation.use_model(model)
        report = evaluation.run(systems)
        model = evaluation.loaded_model or model
        yield report
        if report.interrupted:
            return


def _timed(fn: Callable[[], Scores]) -> tuple[Scores, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def report_table(report: EvalReport) -> tuple[list[str], list[list]]:
    """Header and rows in the shape of the paper's Table 3 (plus throughput of this machine)."""
    header = ["data set", "first stage", "queries", "system", *MEASURES, SE_COLUMN, "items/s"]
    rows = [[report.data_set, report.first_stage, report.n_queries, r.system,
             *(round(r.metrics[m], 4) for m in MEASURES), round(r.ndcg_se, 4), round(r.items_per_s, 1)]
            for r in report.results]
    return header, rows


def paired_lines(report: EvalReport, with_set: bool = True) -> list[str]:
    """Each later system against each earlier one: the NDCG@10 difference on the same queries and its error
    (``with_set``: each line starts with the data set's name)."""
    lines = [_paired_line(later.system, later, earlier.system, earlier)
             for i, later in enumerate(report.results) for earlier in report.results[:i]]
    return [f"{report.data_set}: {line}" for line in lines] if with_set else lines


def compare_runs(first: EvalRun, second: EvalRun) -> list[str]:
    """Each system of ``first`` against the same system in ``second`` (two `mixlm eval --out` files, e.g. two weight
    sets), per data set both evaluated, on the queries both sampled."""
    other = {r.data_set: r for r in second.reports}
    lines = []
    for report in first.reports:
        if report.data_set not in other:
            continue
        theirs = {r.system: r for r in other[report.data_set].results}
        for mine in report.results:
            if mine.system in theirs and mine.per_query and theirs[mine.system].per_query:
                line = _paired_line(f"{mine.system} ({report.model_version})", mine,
                                    f"{mine.system} ({other[report.data_set].model_version})", theirs[mine.system])
                lines.append(f"{report.data_set}: {line}")
    return lines


def _paired_line(label: str, result: SystemResult, other_label: str, other: SystemResult) -> str:
    diff, se = paired_difference(result.per_query, other.per_query)
    shared = len(result.per_query.keys() & other.per_query.keys())
    return f"{label} - {other_label}: NDCG@10 {diff:+.4f} ± {se:.4f} ({shared} queries)"
