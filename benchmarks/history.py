"""The speed targets' ratios of every full benchmark run, kept across runs in docs/bench/speed-history.json.

BENCHMARKS.md is rewritten by each run on whatever machine it finds; issue 16's targets are read on
CPUs without AMX and its AMX figures are to stay beside them, so each run appends its ratios here
(machine, ISA path, commit, date) and the Speed section shows them all, newest first.
"""

from __future__ import annotations

import json
from pathlib import Path

FILE = "speed-history.json"


def load(folder: Path) -> list[dict]:
    try:
        runs = json.loads((folder / FILE).read_text())
    except (OSError, ValueError):
        return []
    return [r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else []


def append(folder: Path, records: list[dict]) -> list[dict]:
    """Add this run's records (a rerun at the same commit on the same CPU and path replaces its entry)."""
    key = ("commit", "cpu", "path")
    new = {tuple(r.get(k) for k in key) for r in records}
    # this run's first: the sort is stable, so within a day the latest run stays on top
    runs = records + [r for r in load(folder) if tuple(r.get(k) for k in key) not in new]
    runs.sort(key=lambda r: str(r.get("date", "")), reverse=True)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(json.dumps(runs, indent=1, ensure_ascii=False) + "\n")
    return runs


def ratio(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def rows(runs: list[dict]) -> list[list[str]]:
    """One table row per run: date, commit, CPU path, denoise (told σ, no options) and x4 ratios, overhead."""
    out = []
    for r in runs:
        overhead = r.get("overhead_s")
        out.append(
            [
                str(r.get("date", "?")),
                f"`{r.get('commit', '?')}`",
                f"{r.get('cpu', '?')}: {r.get('path', '?')}",
                ratio(r.get("denoise_vs_nlmeans")),
                ratio(r.get("denoise_untold_vs_nlmeans")),  # recorded since 2026-12-05
                ratio(r.get("x4_vs_lapsrn")),
                "—" if overhead is None else f"{overhead:.2f} s",
                str(r.get("source", "this command")),
            ]
        )
    return out
