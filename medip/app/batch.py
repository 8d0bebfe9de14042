"""Batch runs over a folder of scans: one job per image series, a resumable manifest, local
worker processes or a Dask cluster, and shards for plain job arrays.

The manifest ``OUT/manifest.jsonl`` gets one line per finished job (done, failed or skipped)
written by the coordinating process only, flushed at once; the latest line of a job wins. Outputs
are written atomically, so an interrupted run leaves finished outputs and a manifest that says
which they are, and nothing half-written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

from ..engine.device import available_cpus, threads_per_worker
from ..io.dicom_read import scan_series
from ..io.registry import format_of, output_suffix, suffix_of
from ..errors import InputError
from ..interrupt import raise_if_stop_requested, stop_on_signal
from .job import run_job
from .options import JobOptions

MANIFEST = "manifest.jsonl"
LOCK = "manifest.lock"
log = logging.getLogger("medip")


@dataclass(frozen=True)
class Job:
    """One series to process: its input, the series to pick, and its output path under OUT."""

    id: str
    input: str
    series: str | None
    output: str
    skip_reason: str | None = None


def _is_scan_file(path: Path) -> bool:
    fmt = format_of(path)
    return fmt is not None and fmt.scan


def discover(root: str | Path, out: str | Path, format: str | None = None) -> list[Job]:
    """Every image series under ``root`` (DICOM by SeriesInstanceUID; NIfTI and NRRD files),
    sorted, with output paths mirroring the input tree; other files become skipped jobs."""
    root, out = Path(root), Path(out)
    suffix = output_suffix(format)
    jobs: list[Job] = []
    scans = sorted(p for p in root.rglob("*") if p.is_file() and _is_scan_file(p))
    for path in scans:
        rel = path.relative_to(root)
        name = rel.name[: -len(suffix_of(rel))]
        jobs.append(Job(str(rel), str(path), None, str(out / rel.parent / f"{name}{suffix}")))
    groups, notes, _ = scan_series(root)
    claimed = {Path(h.path) for headers in groups.values() for h in headers} | set(scans)
    taken: set[Path] = set()
    for uid, headers in sorted(groups.items()):
        folder = Path(os.path.commonpath([h.path.parent for h in headers]))
        rel = folder.relative_to(root)
        number = headers[0].ds.get("SeriesNumber")
        name = f"series{number}" if number is not None else f"series-{uid[-12:]}"
        if rel / name in taken:  # two series with one number in one folder
            name = f"{name}-{uid[-12:]}"
        taken.add(rel / name)
        jobs.append(Job(f"{rel / name}", str(folder), uid, str(out / rel / f"{name}{suffix}")))
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path in claimed or path.name == MANIFEST:
            continue
        reason = next((n for n in notes if n.startswith(f"{path}:")), None)
        rel = str(path.relative_to(root))
        jobs.append(Job(rel, str(path), None, "", reason or f"{path}: not DICOM, NIfTI or NRRD"))
    return jobs


def shard(jobs: list[Job], spec: str | None) -> list[Job]:
    """``"K/N"``: the K-th of N interleaved parts (1-based), for job arrays."""
    if not spec:
        return jobs
    try:
        k, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 2/8), got {spec!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"--shard {spec}: K must be between 1 and N")
    return [job for i, job in enumerate(jobs) if i % n == k - 1]


def read_manifest(out: Path) -> dict[str, dict]:
    """The latest row per job id."""
    rows: dict[str, dict] = {}
    path = out / MANIFEST
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[row["job"]] = row
    return rows


#: A worker's chain (``run_batch(chain=True)``) for the run named by its key: the first fit's
#: weights of the last scan it reconstructed, per kind of scan, for the next scan of that kind
#: to start from. Each worker process holds its own and forgets earlier runs' (a Dask worker
#: outlives a run).
_STARTS: dict[str, dict] = {}


def _run_one(job: Job, options: JobOptions, threads: int | None, chain: str | None = None
             ) -> dict:
    """Worker side: run one job and describe the outcome (never raises for a bad scan);
    ``chain``: the run's key, to start from the last scan this worker reconstructed in it."""
    import torch

    if threads:
        torch.set_num_threads(threads)
        options = replace(options, threads=threads)
    start = time.perf_counter()
    try:
        record = run_job(job.input, job.output, replace(options, series=job.series),
                         command_line=["medip", "batch", job.input], save_interrupted=False,
                         starts=_chain(chain))
        return {"status": "done", "stop_step": record["stop_steps"], "error": None,
                "seconds": round(time.perf_counter() - start, 2), "threads": record["threads"],
                "pid": os.getpid(), "started_from": record["started_from"]}
    except KeyboardInterrupt:
        return {"status": "interrupted"}
    except Exception as err:  # one bad scan never stops the others
        return {"status": "failed", "error": f"{type(err).__name__}: {err}",
                "seconds": round(time.perf_counter() - start, 2), "stop_step": None}


def _chain(run: str | None) -> dict | None:
    """This worker's starts in the chained run ``run`` (None: the run is not chained)."""
    if run is None:
        return None
    if run not in _STARTS:
        _STARTS.clear()
    return _STARTS.setdefault(run, {})


def _worker_signals() -> None:
    """Workers ignore Ctrl-C (the coordinator handles it) and stop cleanly on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_on_signal)


def run_batch(root: str | Path, out: str | Path, options: JobOptions, workers: int = 1,
              scheduler: str | None = None, shard_spec: str | None = None,
              retry_failed: bool = False, on_row: Callable[[dict], None] | None = None,
              chain: bool = False) -> dict:
    """Process every series under ``root`` into ``out``; returns counts per status.

    ``chain``: each worker starts a scan's first fit from the weights of the last scan of the
    same shape it reconstructed (``reconstruct_volume(start=)``: the warm stopper and
    :data:`medip.reconstruct.START_STEPS` instead of a cold fit; the first scan of each shape
    starts from ``options.start_from`` if given, else cold); for scans of one protocol. A
    result then depends on which scan came before it in its worker (the manifest and sidecar
    say which: ``started_from``).
    """
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder")
    if chain and options.ensemble > 1:
        raise InputError("--chain starts one fit from the scan before; with --ensemble "
                         f"{options.ensemble} every member would start from it: use --ensemble 1")
    if options.save_start:
        raise InputError("save_start names one file, and a batch reconstructs many scans: "
                         "leave it out (--chain starts each scan from the one before)")
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise ValueError(f"{out} is inside the input folder {root}; choose an output outside it")
    out.mkdir(parents=True, exist_ok=True)
    with output_lock(out):
        return _run_locked(root, out, options, workers, scheduler, shard_spec, retry_failed,
                           on_row, chain)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``OUT/manifest.lock`` for the run: a second batch on the same output folder is
    refused at once (the OS releases the lock when a run dies, even by kill -9)."""
    handle = open(out / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise InputError(f"{out}: another medip batch ({owner}) is writing there; wait for it "
                         f"to finish or choose another output folder") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


def _run_locked(root: Path, out: Path, options: JobOptions, workers: int,
                scheduler: str | None, shard_spec: str | None, retry_failed: bool,
                on_row: Callable[[dict], None] | None, chain: bool) -> dict:
    previous = read_manifest(out)
    run = f"{out.resolve()} {time.time()} {os.getpid()}" if chain else None  # the chain's key
    jobs = shard(discover(root, out, options.format), shard_spec)
    counts = {"done": 0, "failed": 0, "skipped": 0, "already done": 0, "not run": 0}
    manifest = open(out / MANIFEST, "a")

    def record(job: Job, row: dict) -> None:
        if row["status"] == "interrupted":  # nothing was written for this job
            raise KeyboardInterrupt
        row = {"job": job.id, "input": job.input, "series": job.series, "output": job.output,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}
        recorded.add(job.id)
        manifest.write(json.dumps(row) + "\n")
        manifest.flush()
        os.fsync(manifest.fileno())
        counts[row["status"]] += 1
        if on_row:
            on_row(row)

    todo, recorded = [], set()
    for job in jobs:
        last = previous.get(job.id, {}).get("status")
        if job.skip_reason:
            if last != "skipped":
                record(job, {"status": "skipped", "error": job.skip_reason})
        elif last == "done" and Path(job.output).exists():
            counts["already done"] += 1
        elif last == "failed" and not retry_failed:
            counts["failed"] += 1
        else:
            todo.append(job)
    old_term = signal.signal(signal.SIGTERM, stop_on_signal)
    try:
        if scheduler:
            _run_dask(todo, options, scheduler, record, run)
        else:
            _run_local(todo, options, workers, record, run)
    except KeyboardInterrupt:
        counts["not run"] = sum(job.id not in recorded for job in todo)
        counts["interrupted"] = True
    except BrokenProcessPool:  # a worker died (killed, out of memory): its jobs stay to do
        counts["not run"] = sum(job.id not in recorded for job in todo)
        counts["worker died"] = True
    finally:
        signal.signal(signal.SIGTERM, old_term)
        manifest.close()
    return counts


#: How often the coordinator of a multi-worker batch looks for a stop request while its workers
#: run (a SIGTERM whose KeyboardInterrupt was lost, :mod:`medip.interrupt`).
_POLL_SECONDS = 1.0


def _run_local(jobs: list[Job], options: JobOptions, workers: int,
               record: Callable[[Job, dict], None], chain: str | None = None) -> None:
    cpus = available_cpus()
    if workers > cpus:
        log.warning("--workers %d is more than the %d CPU(s) this process may use: running %d "
                    "workers (more would slow every job down)", workers, cpus, cpus)
        workers = cpus
    threads = threads_per_worker(workers, options.threads, cpus)
    if workers <= 1:
        for job in jobs:
            raise_if_stop_requested()
            record(job, _run_one(job, options, threads, chain))
        return
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_signals)
    pending: dict[Future, Job] = {pool.submit(_run_one, job, options, threads, chain): job
                                  for job in jobs}
    try:
        while pending:
            finished, _ = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            raise_if_stop_requested()
            for future in finished:
                record(pending.pop(future), future.result())
    except KeyboardInterrupt:
        for future in pending:
            future.cancel()
        for process in list(pool._processes.values()):  # running jobs stop without writing
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_dask(jobs: Iterable[Job], options: JobOptions, address: str,
              record: Callable[[Job, dict], None], chain: str | None = None) -> None:
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed: pip install 'medip[cluster]'"
                          ) from None
    jobs = list(jobs)
    with Client(address) as client:
        futures = {client.submit(_run_one, job, options, options.threads, chain, pure=False,
                                 key=f"medip-{i}-{job.id}"): job for i, job in enumerate(jobs)}
        for future in as_completed(futures):
            raise_if_stop_requested()
            record(futures[future], future.result())


def summary(counts: dict) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items()
                     if v and k not in ("interrupted", "worker died"))


