"""Where a fit runs: the device (``"auto"`` = CUDA when present), and torch's CPU threads sized
from the CPUs this process may use (not the node's core count)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

import torch

from ..errors import InputError


def pick_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device that is absent is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise InputError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
                         ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda' was asked for but no CUDA device is available; "
                         "use device='cpu' or 'auto'")
    return device


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device`` when ``enabled`` (else a no-op context): ``fit(amp=True)``
    and its time estimate."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def fit_threads(threads: int | None = None) -> int:
    """The torch CPU threads a fit uses: ``threads``, else torch's current count capped at the
    CPUs this process may use (:func:`available_cpus`)."""
    return threads or min(torch.get_num_threads(), available_cpus())


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[int]:
    """Run the block with :func:`fit_threads` torch CPU threads (restored after); yields it."""
    old = torch.get_num_threads()
    count = fit_threads(threads)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(old)


def available_cpus() -> int:
    """The CPUs this process may really use: the smallest of its affinity mask, a cgroup CPU
    quota (containers, Kubernetes), ``SLURM_CPUS_PER_TASK`` and ``OMP_NUM_THREADS``. torch's
    default pool counts every core of the node, and its threads spin when fewer are free: one
    256x256 step went from 0.09 s to 2.4 s with 2 threads under load (0.8 s with 1)."""
    counts = [len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else os.cpu_count() or 1]
    quota = _cgroup_quota()
    if quota:
        counts.append(max(1, int(quota)))
    for name in ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.strip().isdigit() and int(value) > 0:
            counts.append(int(value))
    return min(counts)


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us / cfs_period_us``."""
    try:
        text = (root / "cpu.max").read_text().split()
        if text and text[0] != "max":
            return int(text[0]) / int(text[1])
    except (OSError, ValueError, IndexError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def threads_per_worker(workers: int, threads: int | None = None, cpus: int | None = None
                       ) -> int:
    """Threads for each of ``workers`` processes sharing ``cpus`` (default
    :func:`available_cpus`), at least 1: ``threads`` when given, else an equal share."""
    if threads:
        return threads
    return max(1, (cpus or available_cpus()) // max(workers, 1))
