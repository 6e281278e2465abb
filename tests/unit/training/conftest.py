"""A small synthetic job-title relevance set (graded 2/1) written in the common format, for training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.datasets import Doc, Query, RelevanceSet, save_relevance_set

OCCUPATIONS = {
    "nurse": ("Registered Nurse", "Cares for patients in hospitals and clinics, gives medication, records vital signs."),
    "welder": ("Welder", "Joins metal parts with torches and welding machines in workshops and construction sites."),
    "chef": ("Head Chef", "Plans menus, cooks food and runs the restaurant kitchen staff."),
    "driver": ("Truck Driver", "Drives heavy trucks to deliver goods over long distances."),
    "teacher": ("Primary School Teacher", "Teaches children reading, writing and arithmetic in a school classroom."),
    "accountant": ("Accountant", "Prepares financial statements, tax returns and audits company books."),
    "developer": ("Software Developer", "Writes, tests and maintains computer programs and web applications."),
    "electrician": ("Electrician", "Installs and repairs electrical wiring, fixtures and power systems in buildings."),
    "plumber": ("Plumber", "Installs and repairs water pipes, drains and heating systems."),
    "pilot": ("Airline Pilot", "Flies passenger aircraft, checks flight plans and weather conditions."),
    "cashier": ("Cashier", "Handles payments at a store checkout and gives change to customers."),
    "mechanic": ("Car Mechanic", "Diagnoses and repairs engines, brakes and transmissions of cars."),
}
TITLES = {
    "nurse": ["ward nurse", "ICU nurse", "staff nurse hospital"],
    "welder": ["MIG welder", "pipe welder", "welding technician"],
    "chef": ["sous chef", "kitchen chef", "executive chef restaurant"],
    "driver": ["HGV driver", "long haul truck driver", "delivery truck driver"],
    "teacher": ["grade 2 teacher", "elementary school teacher", "classroom teacher"],
    "accountant": ["tax accountant", "chartered accountant", "audit accountant"],
    "developer": ["python developer", "web developer", "software engineer"],
    "electrician": ["industrial electrician", "wiring electrician", "apprentice electrician"],
    "plumber": ["pipe fitter plumber", "heating plumber", "drain plumber"],
    "pilot": ["first officer pilot", "commercial airline pilot", "jet pilot"],
    "cashier": ["store cashier", "checkout operator", "supermarket cashier"],
    "mechanic": ["auto mechanic", "car repair mechanic", "brake mechanic"],
}
# Second-grade (partially relevant) neighbours, so label normalisation has two levels to map.
RELATED = {"nurse": "pilot", "welder": "mechanic", "electrician": "plumber", "developer": "accountant"}


def synthetic_set() -> RelevanceSet:
    docs = {d: Doc(d, title, text) for d, (title, text) in OCCUPATIONS.items()}
    queries, qrels = {}, {}
    for doc_id, titles in TITLES.items():
        for i, title in enumerate(titles):
            qid = f"{doc_id}-{i}"
            queries[qid] = Query(qid, title)
            qrels[qid] = {doc_id: 2}
            if doc_id in RELATED and i == 0:
                qrels[qid][RELATED[doc_id]] = 1
    return RelevanceSet("synthetic_titles", queries, docs, qrels)


@pytest.fixture(scope="session")
def titles_dir(tmp_path_factory) -> Path:
    """The synthetic set on disk (queries.jsonl, docs.jsonl, qrels.tsv)."""
    return save_relevance_set(synthetic_set(), tmp_path_factory.mktemp("data") / "synthetic_titles")


@pytest.fixture
def titles_set() -> RelevanceSet:
    return synthetic_set()
