"""Data that ships with the package: the O*NET demo corpus (CC BY 4.0, see onet_demo/ATTRIBUTION.md)."""

from importlib.resources import files
from pathlib import Path


def demo_dir() -> Path:
    """Folder of the shipped demo corpus (postings.jsonl, queries.jsonl, ATTRIBUTION.md)."""
    return Path(str(files("mixlm.data") / "onet_demo"))
