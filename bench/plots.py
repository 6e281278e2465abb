"""Plots of recorded benchmark rows (bench/results.jsonl): Table 11 and quality against throughput.

The figure functions take result rows (the dicts bench.results.record appends) and return a matplotlib
Figure; nothing here measures anything. `mixlm bench plot` regenerates every PNG from results.jsonl, and
`mixlm bench engine` / `mixlm bench quality` call the same functions after a run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import click

from bench import results

ENGINE_SECTION = "Engine (Table 11 workload)"
QUALITY_SECTION = re.compile(r"^quality vs throughput \((?P<set>.+)\)$")
REQUEST_ITEMS = 50  # Table 11's items per request; points measured with fewer say so in their label
ITEMS_AS = {"raw": ("raw text", "tab:red"), "summarized": ("summarized", "tab:orange"), "mixlm": ("MixLM", "tab:blue")}
STRATEGIES = {"naive": ("naive", "o"), "prefix_cached": ("prefix cache", "s"), "multi_item": ("multi-item", "^")}


def load_rows(path: Path | None = None) -> list[dict]:
    """Every recorded row (default bench/results.jsonl), oldest first: record() only appends."""
    path = Path(path or results.RESULTS_JSONL)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def device_of(row: dict) -> str:
    """'cpu' or the GPU's name as a file-name slug, from the row's machine line (bench.results.machine names the
    GPU after the thread count when torch sees one); a run with `--device cpu` counts as cpu."""
    if row.get("device"):
        return row["device"]
    if re.search(r"--device[ =]cpu\b", row.get("command", "")):
        return "cpu"
    parts = row.get("machine", "").split(", ")
    gpus = [p for prev, p in zip(parts, parts[1:]) if prev.endswith(" threads")]
    return _slug(gpus[0]) if gpus else "cpu"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def newest_per_config(rows: Iterable[dict]) -> list[dict]:
    """The newest engine row of each (model, items as, strategy), in first-seen order."""
    newest: dict[tuple, dict] = {}
    for row in rows:
        newest[(row["model"], row["items as"], row["strategy"])] = row
    return list(newest.values())


def point_label(row: dict) -> str:
    """'MixLM, multi-item'; '[n=4]' marks a point measured with n items per request instead of Table 11's 50."""
    items_as = ITEMS_AS.get(row["items as"], (row["items as"],))[0]
    label = f"{items_as}, {STRATEGIES.get(row['strategy'], (row['strategy'],))[0]}"
    n = row.get("items/request")
    return label if n in (None, REQUEST_ITEMS) else f"{label} [n={n}]"


def table11_figure(rows: list[dict], title: str):
    """items/s against p99 latency, one panel per model, a labelled point per (items as, strategy); log axes."""
    plt = _pyplot()
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6.4 * len(models), 5.2), squeeze=False, sharex=True, sharey=True)
    for ax, model in zip(axes[0], models):
        labels = []
        for row in (r for r in rows if r["model"] == model):
            colour = ITEMS_AS.get(row["items as"], ("", "tab:gray"))[1]
            marker = STRATEGIES.get(row["strategy"], ("", "o"))[1]
            x, y = float(row["p99 ms"]), float(row["items/s"])
            ax.scatter(x, y, color=colour, marker=marker, s=40, zorder=3)
            labels.append(ax.annotate(point_label(row), (x, y), textcoords="offset points", xytext=(6, 4),
                                      fontsize=7, color=colour))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.margins(x=0.25, y=0.15)  # room for the labels right of the rightmost points
        ax.set_title(model, fontsize=10)
        ax.set_xlabel("p99 latency per request (ms)")
        ax.grid(True, which="both", alpha=0.3)
        fig.canvas.draw()
        _unstack(labels, fig)
    axes[0][0].set_ylabel("items/s")
    fig.legend(handles=_legend_handles(), loc="lower center", ncol=6, fontsize=8, frameon=False)
    note = "" if all(r.get("items/request") in (None, REQUEST_ITEMS) for r in rows) else \
        f"  [n=k]: k items per request instead of {REQUEST_ITEMS} (cut down to fit a CPU run)"
    fig.suptitle(title + "\n" + note if note else title, fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def _unstack(labels: list, fig) -> None:
    """Move labels that would print over an earlier label or a marker down, one line at a time."""
    from matplotlib.transforms import Bbox

    renderer = fig.canvas.get_renderer()
    placed = []
    for label in labels:  # the markers, ~5 px each way
        x, y = label.axes.transData.transform(label.xy)
        placed.append(Bbox.from_extents(x - 5, y - 5, x + 5, y + 5))
    for label in sorted(labels, key=lambda t: -t.xy[1]):
        for _ in range(12):
            box = label.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            dx, dy = label.xyann
            label.xyann = (dx, dy - 9)
        placed.append(label.get_window_extent(renderer))


def _legend_handles() -> list:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", linestyle="", label=name) for name, c in ITEMS_AS.values()]
    handles += [Line2D([], [], color="black", marker=m, linestyle="", label=name) for name, m in STRATEGIES.values()]
    return handles


def quality_figure(rows: list[dict], title: str):
    """NDCG@10 against items/s, a labelled point per system (MixLM points blue, text points orange); log x."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for row in rows:
        label, ndcg, items_per_s = row["system"], float(row["NDCG@10"]), float(row["items/s"])
        colour = "tab:blue" if label.startswith("MixLM") else "tab:orange"
        ax.scatter(items_per_s, ndcg, color=colour)
        ax.annotate(label, (items_per_s, ndcg), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)
    ax.set_xlabel("items/s (scoring, this machine)")
    ax.set_ylabel("NDCG@10")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def _plain_log_ticks(axis) -> None:
    """Ticks as 0.5, 1, 2, 5, 10 rather than 5x10^-1 on every minor tick (they overlap on a short log range)."""
    import math

    from matplotlib.ticker import FuncFormatter

    def fmt(value, _pos):
        lead = round(value / 10 ** math.floor(math.log10(value))) if value > 0 else 0
        return f"{value:g}" if lead in (1, 2, 5) else ""

    axis.set_major_formatter(FuncFormatter(fmt))
    axis.set_minor_formatter(FuncFormatter(fmt))


def save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def write_table11(rows: Iterable[dict], out_dir: Path | None = None, device: str | None = None) -> list[Path]:
    """table11_<device>.png for each device with engine rows (only `device`'s when given)."""
    by_device: dict[str, list[dict]] = {}
    for row in rows:
        if row.get("section") == ENGINE_SECTION:
            by_device.setdefault(device_of(row), []).append(row)
    written = []
    for dev, dev_rows in by_device.items():
        if device is not None and dev != device:
            continue
        newest = newest_per_config(dev_rows)
        dates = sorted({r["date"] for r in newest if r.get("date")})
        span = (f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else dates[0]) if dates else "this run"
        where = f"{dev} ({newest[-1]['machine']})" if newest[-1].get("machine") else dev
        title = f"Table 11 workload on {where}: 60-token prefix, newest run of each configuration ({span})"
        written.append(save(table11_figure(newest, title), Path(out_dir or results.RESULTS_DIR) / f"table11_{dev}.png"))
    return written


def write_quality(rows: Iterable[dict], out_dir: Path | None = None) -> list[Path]:
    """quality_<set>.png for each set with quality rows: the newest run (same date and command) of each."""
    by_set: dict[str, list[dict]] = {}
    for row in rows:
        m = QUALITY_SECTION.match(row.get("section", ""))
        if m:
            by_set.setdefault(m["set"], []).append(row)
    written = []
    for name, set_rows in by_set.items():
        last = set_rows[-1]
        run = [r for r in set_rows if (r.get("date"), r.get("command")) == (last.get("date"), last.get("command"))]
        title = f"{name}: quality vs throughput ({last.get('machine', '')}, {last.get('date', '')})"
        written.append(save(quality_figure(run, title), Path(out_dir or results.RESULTS_DIR) / f"quality_{name}.png"))
    return written


@click.command("plot")
@click.option("--results", "results_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Recorded rows to plot (default bench/results.jsonl).")
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the PNGs go (default bench/).")
def plot(results_path: Path | None, out_dir: Path | None) -> None:
    """Regenerate every PNG (Table 11 per device, quality vs throughput per set) from recorded rows; runs nothing."""
    rows = load_rows(results_path)
    written = write_table11(rows, out_dir) + write_quality(rows, out_dir)
    if not written:
        raise click.ClickException(f"{results_path or results.RESULTS_JSONL}: no engine or quality rows to plot "
                                   "(`mixlm bench engine` and `mixlm bench quality` record them)")
    for path in written:
        click.echo(f"wrote {path}")
