"""Where a fit runs: the device (``"auto"`` = CUDA when present) and torch's CPU thread count."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (None: leave them), restored after."""
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)
