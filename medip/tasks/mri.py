"""MRI reconstruction from multi-coil Cartesian k-space: ``A`` is the sampled, coil-weighted
Fourier transform (SENSE) with sensitivities estimated per slice from the calibration lines.

The array order is ``(slices, H, W)`` for a stack of 2D acquisitions (``slices`` mode, warm
started between slices) and ``(D, H, W)`` for one 3D acquisition (``3d`` mode); the output
volume is its transpose ``(i, j, k)``, magnitude images on a unit grid (the raw formats that carry
geometry are for the MRI issue).
"""

from __future__ import annotations

import numpy as np
import torch

from .. import defaults
from ..engine.fitting import robust_scale
from ..errors import InputError
from ..io.kspace import KSpace
from ..io.volume import Volume
from ..operators import Fourier, acs_lines, cartesian_mask, estimate_sensitivities
from .base import Problem, Region, Task
from .specs import SPECS


class MRI(Task):
    """Multi-coil MRI. The sampled k-space positions come from ``acceleration`` (retrospective
    Cartesian undersampling, ``center_fraction`` of the lines always kept, seeded), else from
    ``mask`` (nonzero = sampled), else from the data (its nonzero samples)."""

    spec = SPECS["mri"]

    def __init__(self, kspace: KSpace | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None,
                 acceleration: float | None = None,
                 center_fraction: float = defaults.CENTER_FRACTION, seed: int = defaults.SEED
                 ) -> None:
        stack = kspace if isinstance(kspace, KSpace) else KSpace.of(torch.as_tensor(kspace))
        data, self.source = stack.data, stack.source
        where = self.source or "k-space"
        if not data.is_complex() or data.ndim not in (4, 5):
            raise InputError(f"{where}: complex k-space (slices, coils, H, W) or one 3D "
                             f"acquisition (1, coils, D, H, W) is needed, got "
                             f"{tuple(data.shape)} {data.dtype}")
        self.image_shape = tuple(data.shape[2:])
        if len(self.image_shape) == 3 and len(data) != 1:
            raise InputError(f"{where}: a stack of 3D acquisitions; reconstruct one at a time")
        sampled = self._sampled(data, mask, acceleration, center_fraction, seed, where)
        self.y = data * sampled
        lines = acs_lines(sampled)
        maps = [estimate_sensitivities(k, lines) for k in self.y]
        self.operators = [Fourier(self.image_shape, sampled, m.sensitivities) for m in maps]
        self.supports = [m.support for m in maps]
        zero_filled = Fourier(self.image_shape, sampled).pinv(self.y)[:, 0]
        self._zero_filled = zero_filled.reshape(self.shape)
        self.measured = self._volume(self._zero_filled.numpy())

    def _sampled(self, data: torch.Tensor, mask, acceleration, center_fraction, seed, where
                 ) -> torch.Tensor:
        if acceleration:
            return cartesian_mask(self.image_shape, acceleration, center_fraction,
                                  seed=seed).mask
        if mask is not None:
            sampled = torch.as_tensor(np.asarray(mask) != 0)
            try:
                torch.broadcast_shapes(sampled.shape, self.image_shape)
            except RuntimeError:
                raise InputError(f"{where}: the sampling mask has shape {tuple(sampled.shape)} "
                                 f"but the k-space is {self.image_shape}") from None
            return sampled
        return data.abs().sum((0, 1)) > 0  # already undersampled: acquired = nonzero

    @property
    def shape(self) -> tuple[int, ...]:
        if len(self.image_shape) == 3:
            return self.image_shape
        return (len(self.y), *self.image_shape)

    def scale(self) -> float:
        return robust_scale(self._zero_filled)

    def problem(self, region: Region, plane_axis: int | None) -> Problem:
        three_d = len(self.image_shape) == 3
        if three_d and plane_axis is not None:
            raise InputError(f"{self.source or 'k-space'}: a 3D acquisition reconstructs with "
                             f"mode='3d'")
        if not three_d and plane_axis is None:
            raise InputError(f"{self.source or 'k-space'}: 2D k-space slices reconstruct with "
                             f"mode='slices'; mode='3d' needs one 3D acquisition")
        index = 0 if three_d else region[0].start
        support = self.supports[index]
        return Problem(self.operators[index], self.y[index][None], self.image_shape,
                       to_image=lambda x: x[0].abs() * support,
                       to_variance=lambda v: v[0].sum(0, keepdim=True))

    def _volume(self, array: np.ndarray) -> Volume:
        return Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), np.eye(4), modality="MR",
                      source=self.source)

    def to_volumes(self, image: np.ndarray, variance: np.ndarray) -> tuple[Volume, Volume]:
        return self._volume(image), self._volume(variance)

    def fit_reference(self, volume: Volume) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))
