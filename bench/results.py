"""Benchmark results: every row says what ran, where, when and with which command (bench/RESULTS.md)."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import click

RESULTS_DIR = Path(__file__).resolve().parent
RESULTS_MD = RESULTS_DIR / "RESULTS.md"
RESULTS_JSONL = RESULTS_DIR / "results.jsonl"


def machine() -> str:
    """One line naming the hardware: CPU model and core count, and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    desc = f"{cpu}, {os.cpu_count()} threads"
    try:
        import torch

        if torch.cuda.is_available():
            desc += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return desc


def versions() -> str:
    parts = [f"python {platform.python_version()}"]
    for mod in ("torch", "transformers"):
        try:
            parts.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    return ", ".join(parts)


def record(section: str, header: list[str], rows: list[list], note: str = "") -> None:
    """Append a table to RESULTS.md under a heading with machine, date, versions and command line,
    and each row as JSON to results.jsonl (machine-readable)."""
    command = "mixlm " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"\n## {section}: {stamp}\n",
        f"- machine: {machine()}",
        f"- versions: {versions()}",
        f"- command: `{command}`",
    ]
    if note:
        lines.append(f"- note: {note}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    if not RESULTS_MD.exists():
        RESULTS_MD.write_text("# Benchmark results\n\nAppended by `mixlm bench ...` and `mixlm eval ...`; newest last.\n")
    with open(RESULTS_MD, "a") as f:
        f.write("\n".join(lines) + "\n")
    with open(RESULTS_JSONL, "a") as f:
        for row in rows:
            f.write(json.dumps({"section": section, "date": stamp, "machine": machine(), "command": command,
                                **dict(zip(header, row))}, default=str) + "\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


# Options several benchmarks share, so they read and document the same way everywhere.
record_option = click.option("--record/--no-record", "do_record", default=True, show_default=True,
                             help="Append to bench/RESULTS.md.")
data_option = click.option("--data", "data_dir", required=True,
                           type=click.Path(exists=True, file_okay=False, path_type=Path),
                           help="A relevance set folder, e.g. ../shared/data/onet_titles.")
