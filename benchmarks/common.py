"""Shared benchmark plumbing: timing, peak memory, and writing results as JSON plus a Markdown table."""

from __future__ import annotations

import datetime
import importlib
import json
import platform
import resource
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def best_time(fn: Callable[[], object], repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up call, in seconds."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def non_commercial(package: str):
    """Import a baseline package that is free for non-commercial use only (bm3d, bm4d): a
    benchmark extra, never a dependency of medip; a clear exit where it is missing."""
    try:
        return importlib.import_module(package)
    except ImportError as err:
        raise SystemExit(f"this baseline needs the {package} package (free for non-commercial "
                         f"use only, so never a dependency of medip): pip install {package}, or "
                         f"the bench extra") from err


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    info = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def write_results(name: str | None, rows: list[dict], columns: list[str], summary: dict | None = None,
                  out: Path = RESULTS, text: str | None = None) -> Path:
    """``<out>/<date>-<machine>[-<name>].json`` and a ``.md`` beside it (``text``, or a table of
    ``rows``); ``summary`` is stored in the JSON next to the rows."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{datetime.date.today()}-{platform.node() or 'machine'}" + (f"-{name}" if name else "")
    path = out / f"{stem}.json"
    path.write_text(json.dumps({"machine": machine(), "rows": rows, **(summary or {})}, indent=1))
    if text is None:
        text = "\n".join(markdown_table(rows, columns)) + "\n"
    (out / f"{stem}.md").write_text(text)
    print(text)
    return path


def newest_rows(name: str) -> dict[str, dict]:
    """The rows, by image, of the newest stored ``results/*-{name}.json`` (named by date)."""
    files = sorted(RESULTS.glob(f"*-{name}.json"))
    if not files:
        raise SystemExit(f"no {name} results in {RESULTS}: run its benchmark first")
    return {row["image"]: row for row in json.loads(files[-1].read_text())["rows"]}


def markdown_table(rows: list[dict], columns: list[str]) -> list[str]:
    """Rows as Markdown table lines; floats to 4 significant digits, missing cells empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        value = [row.get(c, "") for c in columns]
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v)
                                       for v in value) + " |")
    return lines
