"""Super-resolution: anti-aliased downsampling by integer factors per spatial axis."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .base import LinearOperator, check_tensor, real_dtype


def _box(t: torch.Tensor) -> torch.Tensor:
    return (t.abs() < 0.5).to(t.dtype)


def _linear(t: torch.Tensor) -> torch.Tensor:
    return (1 - t.abs()).clamp(min=0)


def _bicubic(t: torch.Tensor, a: float = -0.5) -> torch.Tensor:
    t = t.abs()
    near = ((a + 2) * t - (a + 3)) * t * t + 1
    far = ((a * t - 5 * a) * t + 8 * a) * t - 4 * a
    return torch.where(t <= 1, near, torch.where(t < 2, far, torch.zeros_like(t)))


def _lanczos3(t: torch.Tensor) -> torch.Tensor:
    return torch.where(t.abs() < 3, torch.sinc(t) * torch.sinc(t / 3), torch.zeros_like(t))


# name -> (kernel function, support radius in output pixels)
KERNELS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], float]] = {
    "box": (_box, 0.5),
    "linear": (_linear, 1.0),
    "bicubic": (_bicubic, 2.0),
    "lanczos": (_lanczos3, 3.0),
}


def antialias_taps(factor: int, kernel: str) -> tuple[torch.Tensor, int]:
    """Filter taps (float64, summing to 1) for decimation by ``factor`` and the left padding.

    Output sample ``i`` sits at the centre of input block ``[i f, (i+1) f)``, the cell-centred
    convention of PIL and ``torch.nn.functional.interpolate(align_corners=False)``.
    """
    fn, support = KERNELS[kernel]
    centre = (factor - 1) / 2
    first = math.ceil(centre - support * factor)
    last = math.floor(centre + support * factor)
    offsets = torch.arange(first, last + 1, dtype=torch.float64)
    taps = fn((offsets - centre) / factor)
    keep = taps.nonzero()
    lo, hi = int(keep.min()), int(keep.max())
    taps = taps[lo:hi + 1]
    return taps / taps.sum(), -(first + lo)


def symmetric_index(n: int, left: int, right: int) -> torch.Tensor:
    """Indices of a length-``n`` axis padded by half-sample symmetric reflection (edge repeated)."""
    i = torch.arange(-left, n + right) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


class Downsample(LinearOperator):
    """``A x``: filter with an anti-alias kernel, then keep every ``factor``-th sample per axis.

    ``factors`` is one integer per spatial axis (``(2, 1, 1)`` is through-plane super-resolution
    of a volume ``(D, H, W)``) or one integer for all axes. ``kernel`` is ``"box"`` (block mean),
    ``"linear"``, ``"bicubic"`` (Keys, a = -0.5, as PIL) or ``"lanczos"`` (Lanczos-3); each is
    stretched by the factor, normalised to sum 1 (a constant stays that constant) and applied
    with half-sample symmetric edges. Each size must be divisible by its factor: other sizes are
    rejected with a clear error rather than silently cropped. ``pinv`` upsamples by interpolation
    (bicubic in 2D, trilinear in 3D): the classical super-resolution baseline.
    """

    def __init__(self, factors: int | Sequence[int], kernel: str = "bicubic") -> None:
        if kernel not in KERNELS:
            raise ValueError(f"Downsample: unknown kernel {kernel!r}; choose one of {sorted(KERNELS)}")
        factors = (factors,) if isinstance(factors, int) else tuple(factors)
        if not factors or len(factors) > 3 or any(
                not isinstance(f, int) or isinstance(f, bool) or f < 1 for f in factors):
            raise ValueError(f"Downsample: factors must be positive integers (one, or one per "
                             f"spatial axis), got {factors}")
        super().__init__()
        self.factors, self.kernel = factors, kernel
        self._taps = {f: antialias_taps(f, kernel) for f in set(factors) if f > 1}

    def axis_factors(self, n_spatial: int) -> tuple[int, ...]:
        """One factor per spatial axis of an image with ``n_spatial`` spatial dimensions."""
        if len(self.factors) == 1:
            return self.factors * n_spatial
        if len(self.factors) != n_spatial:
            raise ValueError(f"Downsample: {len(self.factors)} factors {self.factors} for an image "
                             f"with {n_spatial} spatial dimensions")
        return self.factors

    def _axis_factors(self, x: torch.Tensor) -> tuple[int, ...]:
        try:
            return self.axis_factors(x.ndim - 2)
        except ValueError as err:
            raise ValueError(f"{err} {tuple(x.shape[2:])}") from None

    def _check_divisible(self, x: torch.Tensor) -> tuple[int, ...]:
        factors = self._axis_factors(x)
        for axis, (n, f) in enumerate(zip(x.shape[2:], factors)):
            if n % f:
                raise ValueError(f"Downsample: spatial size {n} along axis {axis} is not divisible "
                                 f"by factor {f}; crop or pad x to a multiple of {f}")
        return factors

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_tensor(x, "x", self.name)
        self._check_divisible(x)
        return self.forward(x)

    def _kernel(self, f: int, axis: int, like: torch.Tensor) -> tuple[torch.Tensor, int]:
        taps, left = self._taps[f]
        shape = [1, 1] + [1] * (like.ndim - 2)
        shape[2 + axis] = taps.numel()
        return taps.to(device=like.device, dtype=real_dtype(like)).reshape(shape), left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_complex():
            return torch.complex(self.forward(x.real), self.forward(x.imag))
        lead = x.shape[:2]
        out = x.reshape(-1, 1, *x.shape[2:])
        conv = F.conv2d if x.ndim == 4 else F.conv3d
        for axis, f in enumerate(self._axis_factors(x)):
            if f == 1:
                continue
            weight, left = self._kernel(f, axis, out)
            n = out.shape[2 + axis]
            right = weight.numel() - f - left
            out = out.index_select(2 + axis, symmetric_index(n, left, right).to(out.device))
            stride = [1] * (x.ndim - 2)
            stride[axis] = f
            out = conv(out, weight, stride=stride)
        return out.reshape(*lead, *out.shape[2:])

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if y.is_complex():
            return torch.complex(self.adjoint(y.real), self.adjoint(y.imag))
        lead = y.shape[:2]
        out = y.reshape(-1, 1, *y.shape[2:])
        conv_t = F.conv_transpose2d if y.ndim == 4 else F.conv_transpose3d
        for axis, f in reversed(list(enumerate(self._axis_factors(y)))):
            if f == 1:
                continue
            weight, left = self._kernel(f, axis, out)
            n = out.shape[2 + axis] * f
            right = weight.numel() - f - left
            stride = [1] * (y.ndim - 2)
            stride[axis] = f
            padded = conv_t(out, weight, stride=stride)
            shape = list(padded.shape)
            shape[2 + axis] = n
            out = padded.new_zeros(shape).index_add(
                2 + axis, symmetric_index(n, left, right).to(out.device), padded)
        return out.reshape(*lead, *out.shape[2:])

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        if y.is_complex():
            return torch.complex(self.pseudo_inverse(y.real), self.pseudo_inverse(y.imag))
        mode = "bicubic" if y.ndim == 4 else "trilinear"
        size = [n * f for n, f in zip(y.shape[2:], self._axis_factors(y))]
        return F.interpolate(y, size=size, mode=mode, align_corners=False)

    def row_gram(self, x: torch.Tensor) -> float | None:
        """``1 / (voxels per block)`` for the box kernel (block means of disjoint blocks); the
        other kernels overlap neighbouring blocks, so their rows are not orthogonal."""
        if self.kernel != "box":
            return None
        return 1.0 / math.prod(self._axis_factors(x))

    def __repr__(self) -> str:
        return f"Downsample(factors={self.factors}, kernel={self.kernel!r})"
