"""Restoration tasks by name: the forward operator a degraded scan was measured through.

``denoise`` is the identity, ``inpaint`` a mask of known voxels (nonzero = known) and
``superres`` a downsampling by integer ``factors`` per axis (``(1, 1, 2)`` is through-plane for
an ``(i, j, k)`` volume). The scan itself is the measurement ``y``; the result has the shape of
the operator's input (larger than ``y`` for super-resolution).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .operators import Downsample, Identity, LinearOperator, Mask

TASKS = ("denoise", "inpaint", "superres")
POINTWISE = ("denoise", "inpaint")  # tasks whose operator acts voxel by voxel (patches work)


_COLD_FIT = {"residual": False, "lr": 0.01}
_TASK_FITS = {"superres": {"residual": True, "lr": 0.02}}


def fit_defaults(task: str | LinearOperator) -> dict:
    """The fit options a task works best with (the library and the CLI share them): super-
    resolution fits the correction to the bicubic image at lr 0.02; everything else, operators
    included, fits the image from scratch at lr 0.01."""
    return dict(_TASK_FITS.get(task, _COLD_FIT) if isinstance(task, str) else _COLD_FIT)


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {TASKS} or pass an operator")
    return task


def normalise_factors(factors: int | Sequence[int] | None, ndim: int) -> tuple[int, ...]:
    """One positive integer per axis from an int, a sequence, or None (= 2 in-plane)."""
    if factors is None:
        factors = 2
    factors = (factors,) * ndim if isinstance(factors, int) else tuple(int(f) for f in factors)
    if len(factors) != ndim or any(f < 1 for f in factors):
        raise ValueError(f"super-resolution needs {ndim} positive integer factors, got {factors}")
    return factors


def make_operator(task: str, measured_shape: Sequence[int], mask: np.ndarray | torch.Tensor | None
                  = None, factors: int | Sequence[int] | None = None, kernel: str = "bicubic"
                  ) -> LinearOperator:
    """The operator of ``task`` for a measurement of ``measured_shape`` (spatial axes only)."""
    check_task(task)
    if task == "denoise":
        return Identity()
    if task == "inpaint":
        if mask is None:
            raise ValueError("inpainting needs a mask of the known voxels (nonzero = known)")
        mask = torch.as_tensor(np.asarray(mask) != 0)
        if tuple(mask.shape) != tuple(measured_shape):
            raise ValueError(f"the mask has shape {tuple(mask.shape)} but the scan has "
                             f"{tuple(measured_shape)}")
        return Mask(mask)
    return Downsample(normalise_factors(factors, len(measured_shape)), kernel)


def output_shape(A: LinearOperator, measured_shape: Sequence[int]) -> tuple[int, ...]:
    """The image shape whose measurement has ``measured_shape``."""
    if isinstance(A, Downsample):
        return tuple(n * f for n, f in zip(measured_shape, A.axis_factors(len(measured_shape))))
    return tuple(measured_shape)


def upsampled_affine(affine: np.ndarray, factors: Sequence[int]) -> np.ndarray:
    """Geometry of the fine grid: fine voxel ``i`` lies at coarse index ``(i - (f - 1) / 2) / f``
    (each coarse voxel is the mean of the ``f`` fine voxels around its centre)."""
    step = np.eye(4)
    for axis, f in enumerate(factors):
        step[axis, axis] = 1 / f
        step[axis, 3] = -(f - 1) / (2 * f)
    return affine @ step
