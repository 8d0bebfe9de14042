"""MRI on non-Cartesian trajectories: the non-uniform FFT (NUFFT), coil-weighted (SENSE).

Built on ``finufft`` (the ``mri`` extra): on this project's 2-core CPU a 256x256, 32-coil
forward + adjoint pair on 102k samples took 0.19 s with finufft at medip's float32
:data:`TOLERANCE` against 1.87 s for torchkbnufft's sparse-matrix path and 2.12 s for its table
path (one run, ``benchmarks/results/2026-12-02-vm-nufft.md``; 0.57 s at eps 1e-6 on the 2x grid
in an earlier run), and finufft's type-1 transform is the exact adjoint of its type-2
transform, so the dot-product test holds to float32 precision.
Tensors on another device are moved to the CPU for the transform and back.

Conventions match :class:`medip.operators.Fourier`: on a Cartesian trajectory the NUFFT equals
the orthonormal centred FFT (``ifftshift -> fftn(norm="ortho") -> fftshift``). Trajectories are
``(shots, samples, ndim)`` in cycles per pixel, ``[-0.5, 0.5)`` (ISMRMRD's normalised units;
the last coordinate is the image's last axis); k-space is ``(batch, coils, shots, samples)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from .base import Diagonal, LinearOperator
from .fourier import root_sum_of_squares

#: finufft's relative accuracy ``eps`` and grid upsampling per precision. complex64 (fits):
#: 1e-4 on a 1.25x grid, 4.1x faster than 1e-6 on the 2x grid (5.6 against 23 ms for an
#: 8-coil 192x192 forward + adjoint on 10k spiral samples, a relative change of 8e-5, far below
#: the noise of measured k-space); complex128 (density compensation, checks): 1e-9 on the 2x
#: grid. Type 1 and type 2 share the kernel, so the adjoint identity is exact at any ``eps``.
TOLERANCE = {False: 1e-4, True: 1e-9}
UPSAMPLING = {False: 1.25, True: 2.0}


def _finufft():
    try:
        import finufft
    except ImportError:
        from medip.errors import MissingExtra

        raise MissingExtra("non-Cartesian MRI needs finufft; install it with "
                           "pip install 'medip[mri]'") from None
    return finufft


class _Plans:
    """finufft plans for one trajectory, made on first use per (type, transforms, precision)."""

    def __init__(self, shape: tuple[int, ...], points: np.ndarray) -> None:
        self.shape = shape
        self.points = points  # (ndim, M) radians in [-pi, pi), float64
        self._plans: dict[tuple[int, int, bool], object] = {}

    def run(self, kind: int, data: np.ndarray, transforms: int) -> np.ndarray:
        double = data.dtype == np.complex128
        key = (kind, transforms, double)
        if key not in self._plans:
            finufft = _finufft()
            plan = finufft.Plan(kind, self.shape, n_trans=transforms, eps=TOLERANCE[double],
                                upsampfac=UPSAMPLING[double],
                                isign=-1 if kind == 2 else 1,
                                dtype="complex128" if double else "complex64",
                                nthreads=torch.get_num_threads())
            real = np.float64 if double else np.float32
            plan.setpts(*(np.ascontiguousarray(p, dtype=real) for p in self.points))
            self._plans[key] = plan
        return self._plans[key].execute(np.ascontiguousarray(data))

    def __getstate__(self) -> dict:  # plans hold C pointers; a copy makes its own
        return {"shape": self.shape, "points": self.points, "_plans": {}}


class _Transform(torch.autograd.Function):
    """One NUFFT direction with the other as its gradient (the map is linear)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, plans: _Plans, kind: int, out_tail: tuple) -> torch.Tensor:
        ctx.plans, ctx.kind, ctx.in_tail = plans, kind, tuple(x.shape[2:])
        return _apply(plans, kind, x, out_tail)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return _apply(ctx.plans, 3 - ctx.kind, grad.contiguous(), ctx.in_tail), None, None, None


def _apply(plans: _Plans, kind: int, x: torch.Tensor, out_tail: tuple) -> torch.Tensor:
    lead = x.shape[:2]
    n = int(np.prod(lead))
    flat = x.detach().reshape(n, *x.shape[2:])
    if kind == 1:
        flat = flat.reshape(n, -1)
    out = plans.run(kind, flat.cpu().resolve_conj().numpy(), n)
    out = torch.from_numpy(out.reshape(*lead, *out_tail)).to(x.device)
    return out / math.sqrt(math.prod(plans.shape))


class NUFFT(LinearOperator):
    """``A x = F_traj (S x)``: k-space of an image at the ``trajectory``'s sample positions.

    ``shape``: the image matrix ``(H, W)`` or ``(D, H, W)``; ``trajectory``: ``(shots, samples,
    ndim)`` in cycles per pixel; ``sensitivities``: optional coil maps ``(coils, *shape)``;
    ``dcf``: optional density compensation ``(shots, samples)`` used by :meth:`pinv` (the
    gridding reconstruction ``A^H (dcf * y)``, coil-combined with the maps or by
    root-sum-of-squares without them). Images are complex ``(B, 1, *shape)``; k-space is
    ``(B, coils, shots, samples)``.
    """

    def __init__(self, shape: Sequence[int], trajectory: torch.Tensor,
                 sensitivities: torch.Tensor | None = None, dcf: torch.Tensor | None = None
                 ) -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"NUFFT: shape must be (H, W) or (D, H, W), got {shape}")
        trajectory = torch.as_tensor(trajectory)
        if trajectory.ndim != 3 or trajectory.shape[-1] != len(shape):
            raise ValueError(f"NUFFT: trajectory has shape {tuple(trajectory.shape)}; expected "
                             f"(shots, samples, {len(shape)}) for a {len(shape)}D image")
        if trajectory.is_complex() or not bool(torch.isfinite(trajectory).all()):
            raise ValueError("NUFFT: trajectory must be real and finite (cycles per pixel)")
        reach = float(trajectory.abs().max())
        if reach > 0.5 + 1e-3:
            raise ValueError(f"NUFFT: trajectory reaches {reach:.3g} cycles/pixel; expected "
                             f"[-0.5, 0.5] (divide by the matrix size, or by 2*pi for radians)")
        self.shape, self.trajectory = shape, trajectory.to(torch.float64)
        self.samples = tuple(trajectory.shape[:2])
        if sensitivities is not None:
            if sensitivities.ndim != len(shape) + 1 or tuple(sensitivities.shape[1:]) != shape:
                raise ValueError(f"NUFFT: sensitivities have shape {tuple(sensitivities.shape)}, "
                                 f"expected (coils, {', '.join(map(str, shape))})")
            sensitivities = sensitivities.to(torch.complex64)
        if dcf is not None and tuple(dcf.shape) != self.samples:
            raise ValueError(f"NUFFT: dcf has shape {tuple(dcf.shape)}, expected {self.samples}")
        self.sensitivities, self.dcf = sensitivities, dcf
        # finufft orders the trajectory's coordinates from the image's first axis to its last
        radians = (2 * math.pi * self.trajectory.reshape(-1, len(shape))).clamp(-math.pi, math.pi)
        self._plans = _Plans(shape, radians.T.numpy())
        coils = self.coils if sensitivities is not None else None
        super().__init__((1, *shape) if coils else shape,
                         (coils, *self.samples) if coils else self.samples)

    @property
    def coils(self) -> int:
        return 1 if self.sensitivities is None else self.sensitivities.shape[0]

    def with_maps(self, sensitivities: torch.Tensor | None) -> NUFFT:
        """The same trajectory (and plans) with other coil maps."""
        twin = NUFFT.__new__(NUFFT)
        twin.__dict__.update(self.__dict__)
        coils = None if sensitivities is None else sensitivities.shape[0]
        LinearOperator.__init__(twin, (1, *self.shape) if coils else self.shape,
                                (coils, *self.samples) if coils else self.samples)
        twin.sensitivities = None if sensitivities is None else sensitivities.to(torch.complex64)
        return twin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        if self.sensitivities is not None:
            x = x * self.sensitivities.to(device=x.device, dtype=x.dtype)
        return _Transform.apply(x, self._plans, 2, self.samples)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not y.is_complex():
            raise TypeError(f"NUFFT: k-space must be complex, got {y.dtype}")
        x = _Transform.apply(y, self._plans, 1, self.shape)
        if self.sensitivities is not None:
            x = (x * self.sensitivities.to(device=x.device, dtype=x.dtype).conj()).sum(
                1, keepdim=True)
        return x

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        weighted = y if self.dcf is None else y * self.dcf.to(device=y.device, dtype=y.real.dtype)
        if self.sensitivities is None and y.shape[1] > 1:
            return root_sum_of_squares(_Transform.apply(weighted, self._plans, 1, self.shape)
                                       ).to(y.real.dtype)
        return self.adjoint(weighted)

    def preconditioner(self) -> Diagonal | None:
        """The square root of the density compensation (scaled to a mean square of one) on
        every coil's samples, where ``dcf`` is set: the weighted residual's normal operator
        ``A^H dcf A`` is close to a multiple of the identity, where the plain ``A^H A`` weighs
        each spatial frequency by how densely the trajectory samples it (a spiral's or radial
        centre many times its edge). On the bundled real 8-coil spiral a DIP fit with it gave
        34.98 dB at 2x and 29.87 dB at 4x where the plain fit gave 29.49 and 27.44 dB
        (benchmarks/results/2026-12-03-vm-mri-raw-spiral-2x-spiral-4x.md)."""
        if self.dcf is None:
            return None
        weights = self.dcf.to(torch.float32).clamp(min=0)
        return Diagonal((weights / weights.mean()).sqrt())

    def __repr__(self) -> str:
        return f"NUFFT(shape={self.shape}, coils={self.coils}, samples={self.samples})"


def pipe_menon_dcf(nufft: NUFFT, iterations: int = 20) -> torch.Tensor:
    """Density compensation ``(shots, samples)`` by Pipe and Menon's fixed point
    ``w <- w / (C * w)``, scaled so that the gridding reconstruction ``A^H (w * A x)`` keeps the
    magnitude of a smooth image (a centred disc's mean value). The convolution ``C`` must be
    positive for the iteration to converge: it is ``A H A^H`` with ``H`` a Gaussian window of
    a quarter of the matrix in the image (a Gaussian of about 0.6 samples in k-space). With
    the bare ``A A^H`` (a sinc with negative lobes) the weights of the real spiral diverged,
    differing by more than their own size from run to run."""
    single = nufft.with_maps(None)
    grid = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) - n // 2 for n in nufft.shape),
                          indexing="ij")
    window = torch.exp(-0.5 * sum((g / (n / 4)) ** 2 for g, n in zip(grid, nufft.shape)))
    weights = torch.ones(1, 1, *nufft.samples, dtype=torch.complex128)
    for _ in range(iterations):
        weights = weights / single.forward(window * single.adjoint(weights)).abs().clamp_min(
            1e-12)
    radius = torch.sqrt(sum((g / (n / 2)) ** 2 for g, n in zip(grid, nufft.shape)))
    disc = (radius < 0.5).to(torch.complex128)[None, None]
    inner = radius < 0.3
    gridded = single.adjoint(weights * single.forward(disc))[0, 0]
    gain = float(gridded.real[inner].mean())
    return (weights.real[0, 0] / gain).to(torch.float32)
