"""Training data from relevance sets: query groups of (item, label), split by query, with mined negatives.

A *group* is one query with its positives and negatives; training packs a group into one multi-item
sequence, so the query prefix is paid once. Labels are grade / max grade of the set (paper §4.2.1);
negatives are first-stage candidates (BM25, the MiniLM bi-encoder) minus the relevant docs, plus random docs.
Unjudged candidates count as non-relevant, the usual assumption of qrels-based training.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from dataclasses import dataclass, field

from mixlm.settings import Settings
from training.config import DataConfig
from training.datasets import RelevanceSet, doc_text

log = logging.getLogger(__name__)

LABEL_BINS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Item:
    doc_id: str
    text: str
    label: float  # in [0, 1]
    source: str  # "positive", "bm25", "biencoder", "random"


@dataclass(frozen=True)
class QueryGroup:
    set_name: str
    query_id: str
    query: str
    items: tuple[Item, ...]

    def key(self, item: Item) -> str:
        """Stable id of one (query, item) pair, e.g. for the teacher cache."""
        return f"{self.set_name}/{self.query_id}/{item.doc_id}"


@dataclass
class DataCard:
    sets: list[str]
    train_queries: int = 0
    dev_queries: int = 0
    groups: int = 0
    pairs: int = 0
    by_source: Counter = field(default_factory=Counter)
    label_histogram: Counter = field(default_factory=Counter)
    overlap: int = 0  # queries in both train and dev: must be 0

    def render(self) -> str:
        lines = [
            f"data card: sets={','.join(self.sets)}",
            f"  queries: train={self.train_queries} dev={self.dev_queries} (in both: {self.overlap})",
            f"  groups={self.groups} pairs={self.pairs} items/group={self.pairs / max(self.groups, 1):.1f}",
            "  items by source: " + ", ".join(f"{k}={v}" for k, v in sorted(self.by_source.items())),
            "  label histogram: " + ", ".join(f"{k}={self.label_histogram[k]}" for k in _bin_names()),
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {
            "sets": self.sets,
            "train_queries": self.train_queries,
            "dev_queries": self.dev_queries,
            "groups": self.groups,
            "pairs": self.pairs,
            "by_source": dict(self.by_source),
            "label_histogram": {k: self.label_histogram[k] for k in _bin_names()},
        }


@dataclass
class TrainingData:
    groups: list[QueryGroup]
    dev: dict[str, list[str]]  # set name -> held-out query ids
    card: DataCard


def _bin_names() -> list[str]:
    return ["0"] + [f"({a:g},{b:g}]" for a, b in zip(LABEL_BINS, LABEL_BINS[1:])]


def label_bin(label: float) -> str:
    if label <= 0.0:
        return "0"
    for a, b in zip(LABEL_BINS, LABEL_BINS[1:]):
        if a < label <= b:
            return f"({a:g},{b:g}]"
    return _bin_names()[-1]


def normalised_labels(rs: RelevanceSet) -> dict[str, dict[str, float]]:
    """grade / max grade of the set (§4.2.1); grades <= 0 become 0."""
    top = max((g for judged in rs.qrels.values() for g in judged.values()), default=1)
    if top <= 0:
        raise ValueError(f"{rs.name}: no positive grade in qrels")
    return {q: {d: max(g, 0) / top for d, g in judged.items()} for q, judged in rs.qrels.items()}


def split_by_query(rs: RelevanceSet, n_dev: int, n_train: int | None, seed: int) -> tuple[list[str], list[str]]:
    """Disjoint (train, dev) query ids among queries with a positive judgement; same seed, same split."""
    judged = sorted(q for q, d in rs.qrels.items() if any(g > 0 for g in d.values()))
    rng = random.Random(f"{rs.name}/{seed}")
    rng.shuffle(judged)
    dev = sorted(judged[:n_dev])
    rest = judged[n_dev:]
    train = sorted(rest if n_train is None else rest[:n_train])
    return train, dev


def trained_on(manifest: dict, rs: RelevanceSet) -> list[str]:
    """The queries of ``rs`` a weight set was trained on, from its manifest's data config (the split is a pure
    function of it), so an evaluation can leave them out."""
    data = manifest.get("config", {}).get("data", {})
    if rs.name not in data.get("sets", []):
        return []
    return split_by_query(rs, data["dev_queries"], data["train_queries"], data["seed"])[0]


def mine_candidates(rs: RelevanceSet, query_ids: list[str], cfg: DataConfig, settings: Settings | None) -> dict[str, dict[str, list[str]]]:
    """First-stage top-k per query, per source (bm25, biencoder)."""
    from training import first_stage
    from training.datasets import excluded_docs

    exclude = excluded_docs(rs, query_ids)
    out: dict[str, dict[str, list[str]]] = {}
    for source in cfg.first_stage:
        if source == "bm25":
            out[source] = first_stage.bm25_candidates(rs, query_ids, cfg.candidates_k, exclude=exclude)
        else:
            out[source] = first_stage.biencoder_candidates(rs, query_ids, cfg.candidates_k, settings=settings, exclude=exclude)
    return out


def build_groups(
    rs: RelevanceSet, query_ids: list[str], candidates: dict[str, dict[str, list[str]]], cfg: DataConfig
) -> list[QueryGroup]:
    """One group per query: up to max_positives positives, hard negatives from the candidates, random negatives."""
    labels = normalised_labels(rs)
    all_docs = sorted(rs.docs)
    groups = []
    for qid in query_ids:
        rng = random.Random(f"{rs.name}/{qid}/{cfg.seed}")
        judged = labels.get(qid, {})
        positives = sorted((d for d, y in judged.items() if y > 0), key=lambda d: (-judged[d], d))[: cfg.max_positives]
        taken = set(judged) | {qid}  # judged docs are never negatives; a query's own doc (related occupations) neither
        items = [Item(d, doc_text(rs.docs[d]), judged[d], "positive") for d in positives]
        # Hard negatives: a shuffled pool of every source's top-k, each doc once, attributed to its first source.
        pool: dict[str, str] = {}
        for source, per_query in candidates.items():
            for d in per_query.get(qid, []):
                if d not in taken:
                    pool.setdefault(d, source)
        for d, s in rng.sample(list(pool.items()), min(cfg.hard_negatives, len(pool))):
            items.append(Item(d, doc_text(rs.docs[d]), 0.0, s))
            taken.add(d)
        for d in _random_docs(rng, all_docs, taken, cfg.random_negatives):
            items.append(Item(d, doc_text(rs.docs[d]), 0.0, "random"))
        rng.shuffle(items)
        groups.append(QueryGroup(rs.name, qid, rs.queries[qid].text, tuple(items)))
    return groups


def _random_docs(rng: random.Random, docs: list[str], taken: set[str], n: int) -> list[str]:
    out: list[str] = []
    for _ in range(20 * n):
        if len(out) >= n:
            break
        d = docs[rng.randrange(len(docs))]
        if d not in taken and d not in out:
            out.append(d)
    return out


def build_training_data(sets: list[RelevanceSet], cfg: DataConfig, settings: Settings | None = None) -> TrainingData:
    card = DataCard(sets=[rs.name for rs in sets])
    groups: list[QueryGroup] = []
    dev: dict[str, list[str]] = {}
    for rs in sets:
        train_ids, dev_ids = split_by_query(rs, cfg.dev_queries, cfg.train_queries, cfg.seed)
        card.overlap += len(set(train_ids) & set(dev_ids))
        candidates = mine_candidates(rs, train_ids, cfg, settings)
        groups += build_groups(rs, train_ids, candidates, cfg)
        dev[rs.name] = dev_ids
        card.train_queries += len(train_ids)
        card.dev_queries += len(dev_ids)
    card.groups = len(groups)
    for g in groups:
        for item in g.items:
            card.pairs += 1
            card.by_source[item.source] += 1
            card.label_histogram[label_bin(item.label)] += 1
    log.info("training data: %d groups, %d pairs", card.groups, card.pairs)
    return TrainingData(groups=groups, dev=dev, card=card)
