"""MRI reconstruction from multi-coil k-space, Cartesian or non-Cartesian (SENSE model).

``A`` is the coil-weighted Fourier transform: sampled on the grid (:class:`Fourier`) or at the
trajectory's positions (:class:`NUFFT`, density-compensated for the gridding reconstruction).
Before anything else the k-space is prewhitened with the file's noise scan when it has one
(then the noise level is exactly 1 per sample) and optionally compressed to fewer virtual coils;
the coil maps come from the calibration data (ESPIRiT, or the low-resolution ratio method) per
slice. Without a noise scan the noise level is estimated from the outermost k-space samples,
where an image's signal has decayed below the noise.

The array order is ``(slices, readout, phase)`` for a stack of 2D acquisitions (``slices``
mode, warm started between slices) and ``(D, H, W)`` for one 3D acquisition (``3d`` mode); the
output volume is its transpose ``(i, j, k)`` with the raw header's geometry when it has one
(ISMRMRD, TWIX) and a unit grid otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import defaults
from ..engine.fitting import robust_scale
from ..errors import InputError
from ..io.acquisition import KSpace
from ..io.volume import Volume
from ..operators import (NUFFT, CoilMaps, Fourier, acs_lines, cartesian_mask, centered_fft,
                         compression, espirit, espirit_is_determined, estimate_sensitivities,
                         keep_shots, mix_coils, pipe_menon_dcf, whitening)
from .base import Problem, Region, Task
from .specs import SPECS

MAPS, PARTS = defaults.MRI_MAPS, defaults.MRI_PARTS
#: The calibration region of ESPIRiT and of non-Cartesian map estimation, in k-space samples
#: per side (24: ESPIRiT's paper and BART's default).
CALIBRATION = 24
#: Without a noise scan the noise level comes from k-space where the signal has decayed:
#: Cartesian, the corner blocks beyond this fraction of every axis from its centre (on the real
#: GRE sample they give 1.57e-6 against 1.49e-6 from the image background, and keep enough
#: samples at 8x); non-Cartesian, the samples beyond this radius in cycles per pixel (on the real
#: spiral sample they equal the residual of the least-squares fit there, coil by coil).
NOISE_CORNER = 0.25
NOISE_RADIUS = 0.4


class MRI(Task):
    """Multi-coil MRI. Cartesian: the sampled positions come from ``acceleration``
    (retrospective undersampling of phase-encode lines, ``center_fraction`` always kept,
    seeded), else from ``mask`` (nonzero = sampled), else from the data (its nonzero samples).
    Non-Cartesian: ``acceleration`` keeps every n-th shot (spoke, interleave).

    ``maps``: ``"espirit"``, ``"ratio"`` or ``"auto"`` (ESPIRiT where the calibration region
    determines it, :func:`~medip.operators.espirit_is_determined`, else the ratio method);
    ``coils``: compress to that many virtual coils;
    ``prewhiten``: None uses the noise scan when there is one, True requires it, False skips it;
    ``part``: the part of the complex image returned, ``"magnitude"``, ``"phase"`` or
    ``"complex"``.
    """

    spec = SPECS["mri"]

    def __init__(self, kspace: KSpace | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None,
                 acceleration: float | None = None,
                 center_fraction: float = defaults.CENTER_FRACTION, seed: int = defaults.SEED,
                 maps: str = MAPS[0], coils: int | None = None, prewhiten: bool | None = None,
                 part: str = PARTS[0]) -> None:
        stack = kspace if isinstance(kspace, KSpace) else KSpace.of(torch.as_tensor(kspace))
        data, self.source, self.stack = stack.data, stack.source, stack
        where = stack.where
        if maps not in MAPS:
            raise InputError(f"unknown coil maps {maps!r}; choose one of {', '.join(MAPS)}")
        if part not in PARTS:
            raise InputError(f"unknown image part {part!r}; choose one of {', '.join(PARTS)}")
        if not data.is_complex() or data.ndim not in (4, 5):
            raise InputError(f"{where}: complex k-space (slices, coils, H, W) or one 3D "
                             f"acquisition (1, coils, D, H, W) is needed, got "
                             f"{tuple(data.shape)} {data.dtype}")
        self.part = part
        self.image_shape = tuple(stack.matrix)
        if len(self.image_shape) == 3 and len(data) != 1:
            raise InputError(f"{where}: a stack of 3D acquisitions; reconstruct one at a time")
        data, self.sigma = self._prepared(stack, prewhiten, coils)
        if stack.cartesian:
            sampled = self._sampled(data, mask, acceleration, center_fraction, seed, where)
            self.y = data * sampled
            lines = acs_lines(sampled)
            found = [self._cartesian_maps(k, lines, maps, where) for k in self.y]
            self.operators = [Fourier(self.image_shape, sampled, m.sensitivities) for m in found]
            zero_filled = Fourier(self.image_shape, sampled).pinv(self.y)[:, 0]
        else:
            if mask is not None:
                raise InputError(f"{where}: a sampling mask applies to Cartesian k-space; "
                                 f"undersample a trajectory with acceleration")
            shots = keep_shots(data.shape[2], acceleration or 1)
            self.y = data[:, :, shots]
            base = NUFFT(self.image_shape, stack.trajectory[shots])
            base = NUFFT(self.image_shape, base.trajectory, dcf=pipe_menon_dcf(base))
            found = [self._gridded_maps(base, k, maps) for k in self.y]
            self.operators = [base.with_maps(m.sensitivities) for m in found]
            zero_filled = base.pinv(self.y)[:, 0]
        self.supports = [m.support for m in found]
        if self.sigma is None:
            self.sigma = kspace_noise_level(self.y, stack.trajectory,
                                            shots if not stack.cartesian else None)
        self._zero_filled = zero_filled.reshape(self.shape)
        self.measured = self._volume(self._zero_filled.numpy())

    def _prepared(self, stack: KSpace, prewhiten: bool | None, coils: int | None
                  ) -> tuple[torch.Tensor, float | None]:
        """Prewhitened (noise level 1) and coil-compressed k-space, and its noise level if
        known."""
        data, sigma = stack.data, None
        if prewhiten and stack.noise is None:
            raise InputError(f"{stack.where}: prewhitening needs a noise scan and this file has "
                             f"none; leave prewhitening off (the noise level is then estimated "
                             f"from the outer k-space)")
        if prewhiten is not False and stack.noise is not None:
            if stack.noise.shape[0] != stack.coils:
                raise InputError(f"{stack.where}: the noise scan has {stack.noise.shape[0]} "
                                 f"coils but the data {stack.coils}; turn prewhitening off")
            data, sigma = mix_coils(whitening(stack.noise), data, axis=1), 1.0
        if coils is not None:
            if not 1 <= coils <= stack.coils:
                raise InputError(f"{stack.where}: coils={coils}, but the data have "
                                 f"{stack.coils} coils; choose 1..{stack.coils}")
            matrix = compression(data[len(data) // 2], coils)  # one basis: slices stay alike
            data = mix_coils(matrix, data, axis=1)
        return data, sigma

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

    def _cartesian_maps(self, kspace: torch.Tensor, lines: int, maps: str, where) -> CoilMaps:
        rows, columns = self.image_shape[-2:]
        height, width = min(rows, CALIBRATION), min(lines, CALIBRATION)
        maps = _chosen(maps, len(kspace), (height, width))
        if maps == "ratio" or len(self.image_shape) == 3:
            return estimate_sensitivities(kspace, lines)
        if lines < 8:
            raise InputError(f"{where}: ESPIRiT needs at least 8 fully sampled central lines, "
                             f"the mask has {lines}; raise center_fraction or use maps='ratio'")
        region = kspace[:, rows // 2 - height // 2:rows // 2 - height // 2 + height,
                        columns // 2 - width // 2:columns // 2 - width // 2 + width]
        return espirit(region, self.image_shape)

    def _gridded_maps(self, nufft: NUFFT, kspace: torch.Tensor, maps: str) -> CoilMaps:
        """Maps from the trajectory's centre, gridded: the density-compensated adjoint of the
        samples within the calibration radius gives low-resolution coil images, whose centred
        FFT is Cartesian calibration data."""
        radius = CALIBRATION / 2 / max(self.image_shape)
        inside = (nufft.trajectory.norm(dim=-1) <= radius).to(kspace.real.dtype)
        low = nufft.with_maps(None).adjoint((kspace * inside * nufft.dcf)[None])[0]
        grid = centered_fft(low, 2)
        rows, columns = self.image_shape
        box = (slice(None), slice(rows // 2 - CALIBRATION // 2, rows // 2 + CALIBRATION // 2),
               slice(columns // 2 - CALIBRATION // 2, columns // 2 + CALIBRATION // 2))
        if _chosen(maps, len(kspace), (CALIBRATION, CALIBRATION)) == "espirit":
            return espirit(grid[box], self.image_shape)
        boxed = torch.zeros_like(grid)
        boxed[box] = grid[box]
        return estimate_sensitivities(boxed, CALIBRATION)

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
        convert = {"magnitude": lambda x: x.abs(), "phase": lambda x: x.angle(),
                   "complex": lambda x: x}[self.part]
        return Problem(self.operators[index], self.y[index][None], self.image_shape,
                       to_image=lambda x: convert(x[0]) * support,
                       to_variance=lambda v: v[0].sum(0, keepdim=True), sigma=self.sigma)

    def _volume(self, array: np.ndarray) -> Volume:
        affine = np.eye(4) if self.stack.affine is None else self.stack.affine[:, [2, 1, 0, 3]]
        return Volume(np.ascontiguousarray(array.transpose(2, 1, 0)), affine, modality="MR",
                      source=self.source,
                      meta={"raw_header": self.stack.header} if self.stack.header else {})

    def to_volumes(self, image: np.ndarray, variance: np.ndarray) -> tuple[Volume, Volume]:
        return self._volume(image), self._volume(variance)

    def fit_reference(self, volume: Volume) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(volume.array.transpose(2, 1, 0)))


def _chosen(maps: str, coils: int, calibration: tuple[int, int]) -> str:
    """``maps``, with ``"auto"`` resolved for a calibration region of that shape."""
    if maps != "auto":
        return maps
    return "espirit" if espirit_is_determined(coils, calibration) else "ratio"


def kspace_noise_level(y: torch.Tensor, trajectory: torch.Tensor | None,
                       shots: torch.Tensor | None) -> float:
    """The noise level per complex sample (``E|n|^2 = sigma^2``) from the measured samples at the
    edge of k-space (:data:`NOISE_CORNER`, :data:`NOISE_RADIUS`), by the median absolute
    deviation of their real parts."""
    if trajectory is None:
        edge = torch.ones(y.shape[2:], dtype=torch.bool)
        for axis, n in enumerate(y.shape[2:]):
            outer = (torch.arange(n) - n // 2).abs() >= n * NOISE_CORNER
            edge &= outer.reshape([-1 if a == axis else 1 for a in range(y.ndim - 2)])
        samples = y[..., edge]
    else:
        samples = y[..., trajectory[shots].norm(dim=-1) > NOISE_RADIUS]
    samples = samples[samples != 0]
    if samples.numel() < 16:
        raise InputError("too few measured samples at the edge of k-space to estimate the noise "
                         "level; give a noise scan (ISMRMRD/TWIX) to prewhiten with")
    return float(1.4826 * samples.real.abs().median() * np.sqrt(2))
