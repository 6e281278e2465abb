"""Rebuild the shipped demo corpus ``mixlm/data/onet_demo/`` from the O*NET relevance set.

    python -m mixlm.data.build_demo /work/shared/data/onet_titles

Only O*NET (CC BY 4.0) may ship inside the project; its attribution is copied into ATTRIBUTION.md.
The output is deterministic: the demo queries' relevant occupations plus a seeded sample of the rest,
written as JobUpdate JSONL (the Kafka wire shape) so `mixlm post` and `mixlm demo` read it as is.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import click
import msgspec

from mixlm.schemas import JobUpdate

N_ITEMS = 300
SEED = 0
UPDATED_AT = 1_748_736_000_000  # 2025-06-01, the O*NET 29.3 release month: a fixed stamp keeps the build reproducible
# Demo queries: alternate job titles from O*NET's own query set (so they carry qrels), chosen to span fields.
DEMO_QUERIES = [
    "Cloud Software Engineer",
    "Class A CDL Truck Driver (Class A Commercial Driver's License Truck Driver)",
    "Sous Chef",
    "Staff Accountant",
    "Commercial Electrician",
    "Airline Pilot",
    "Care Transitions Nurse",
]
# SOC 2018 major groups (first two digits of an O*NET-SOC code): a structured field like a posting's category.
SOC_MAJOR_GROUPS = {
    "11": "Management", "13": "Business and Financial Operations", "15": "Computer and Mathematical",
    "17": "Architecture and Engineering", "19": "Life, Physical, and Social Science",
    "21": "Community and Social Service", "23": "Legal", "25": "Educational Instruction and Library",
    "27": "Arts, Design, Entertainment, Sports, and Media", "29": "Healthcare Practitioners and Technical",
    "31": "Healthcare Support", "33": "Protective Service", "35": "Food Preparation and Serving Related",
    "37": "Building and Grounds Cleaning and Maintenance", "39": "Personal Care and Service",
    "41": "Sales and Related", "43": "Office and Administrative Support", "45": "Farming, Fishing, and Forestry",
    "47": "Construction and Extraction", "49": "Installation, Maintenance, and Repair", "51": "Production",
    "53": "Transportation and Material Moving", "55": "Military Specific",
}
ATTRIBUTION = """# Attribution: O*NET 29.3 Database (CC BY 4.0)

The files in this folder (`postings.jsonl`, `queries.jsonl`) are derived from the **O*NET 29.3 Database**
by the U.S. Department of Labor, Employment and Training Administration (USDOL/ETA), used under the
Creative Commons Attribution 4.0 International License (https://creativecommons.org/licenses/by/4.0/;
https://www.onetcenter.org/license_db.html). O*NET(R) is a trademark of USDOL/ETA.

Modified: converted and subsampled. Each posting is one O*NET-SOC occupation ({n_items} of {n_docs}):
title = occupation title, text = the occupation description and its task statements (~150 words),
`fields.category` = the SOC major group of the code. The queries are alternate job titles from
O*NET's "Alternate Titles" / "Sample of Reported Titles", with the occupations O*NET lists for them.
USDOL/ETA has not approved, endorsed, or tested these modifications.

Provenance of the converted relevance set this was built from (its SOURCE.md):

{source_md}

Rebuild: `python -m mixlm.data.build_demo <path to onet_titles>` (mixlm/data/build_demo.py).
"""


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def build(source: Path, out: Path, n_items: int = N_ITEMS) -> tuple[int, int]:
    """Write postings.jsonl, queries.jsonl and ATTRIBUTION.md into ``out``; return (items, queries)."""
    docs = {d["doc_id"]: d for d in _read_jsonl(source / "docs.jsonl")}
    queries = {q["text"]: q["query_id"] for q in _read_jsonl(source / "queries.jsonl")}
    relevant: dict[str, list[str]] = defaultdict(list)
    for line in (source / "qrels.tsv").read_text().splitlines():
        qid, doc_id, grade = line.split("\t")
        if int(grade) > 0:
            relevant[qid].append(doc_id)

    demo = []
    for text in DEMO_QUERIES:
        if text not in queries:
            raise click.ClickException(f"demo query {text!r} is not in {source / 'queries.jsonl'}")
        qid = queries[text]
        demo.append({"query_id": qid, "text": text, "relevant": sorted(relevant[qid])})
    keep = {d for q in demo for d in q["relevant"]}
    rest = sorted(set(docs) - keep)
    keep |= set(random.Random(SEED).sample(rest, n_items - len(keep)))

    out.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    with open(out / "postings.jsonl", "wb") as f:
        for doc_id in sorted(keep):
            d = docs[doc_id]
            update = JobUpdate(item_id=doc_id, op="upsert", updated_at=UPDATED_AT, title=d["title"], text=d["text"],
                               fields={"category": SOC_MAJOR_GROUPS[doc_id[:2]]})
            f.write(encoder.encode(update) + b"\n")
    with open(out / "queries.jsonl", "w") as f:
        for q in demo:
            f.write(json.dumps(q) + "\n")
    # SOURCE.md as is, less its "Script:" line (a path on the machine that converted it, of no use to a reader).
    source_md = "\n".join(line for line in (source / "SOURCE.md").read_text().strip().splitlines()
                          if not line.startswith("- Script:"))
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION.format(n_items=len(keep), n_docs=len(docs), source_md=source_md))
    return len(keep), len(demo)


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path(__file__).parent / "onet_demo",
              show_default=True)
@click.option("--n-items", type=int, default=N_ITEMS, show_default=True)
def main(source: Path, out: Path, n_items: int) -> None:
    """Build the demo corpus from an onet_titles folder (queries.jsonl, docs.jsonl, qrels.tsv, SOURCE.md)."""
    n, q = build(source, out, n_items)
    click.echo(f"wrote {n} postings and {q} queries to {out}")


if __name__ == "__main__":
    main()
