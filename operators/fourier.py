"""MRI: the undersampled, orthonormal, centred Fourier transform, single- or multi-coil (SENSE)."""

from __future__ import annotations

from typing import Sequence

import torch

from .base import LinearOperator, check_tensor


def centered_fft(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """``fftshift(fftn(ifftshift(x), norm="ortho"))`` over the last ``ndim`` axes (DC in the middle)."""
    dims = tuple(range(-ndim, 0))
    return torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(x, dim=dims), dim=dims,
                                             norm="ortho"), dim=dims)


def centered_ifft(k: torch.Tensor, ndim: int) -> torch.Tensor:
    """The inverse of :func:`centered_fft`."""
    dims = tuple(range(-ndim, 0))
    return torch.fft.fftshift(torch.fft.ifftn(torch.fft.ifftshift(k, dim=dims), dim=dims,
                                              norm="ortho"), dim=dims)


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """``(B, 1, *spatial)`` complex -> ``(B, 2, *spatial)`` real (real, imaginary channels)."""
    if not x.is_complex():
        raise TypeError(f"complex_to_channels: expected a complex tensor, got {x.dtype}")
    return torch.cat([x.real, x.imag], dim=1)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """``(B, 2, *spatial)`` real (a generator's output) -> ``(B, 1, *spatial)`` complex."""
    if x.is_complex() or x.ndim < 3 or x.shape[1] != 2:
        raise ValueError(f"channels_to_complex: expected a real (B, 2, ...) tensor, got "
                         f"{tuple(x.shape)} {x.dtype}")
    return torch.complex(x[:, :1], x[:, 1:])


def root_sum_of_squares(x: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Combine coil images by the root of the summed squared magnitudes (keeps the dim)."""
    return (x.abs() ** 2).sum(dim, keepdim=True).sqrt()


class Fourier(LinearOperator):
    """``A x = M F (S x)``: sampled k-space of an image, 2D or 3D by ``len(shape)``.

    ``F`` is the orthonormal centred FFT (``ifftshift -> fftn(norm="ortho") -> fftshift``),
    ``M`` a 0/1 ``mask`` broadcast over coils (None = fully sampled) and ``S`` optional coil
    ``sensitivities`` ``(coils, *shape)``. Images are complex ``(B, 1, *shape)``; k-space is
    ``(B, coils, *shape)`` (``coils = 1`` without sensitivities, then any channel count passes
    through). The adjoint is ``sum_c conj(S_c) F^H M y_c``; ``pinv`` is the zero-filled
    reconstruction, coil-combined with the sensitivities or by root-sum-of-squares (a magnitude
    image) without them when there are several coils.
    """

    def __init__(self, shape: Sequence[int], mask: torch.Tensor | None = None,
                 sensitivities: torch.Tensor | None = None) -> None:
        shape = tuple(int(n) for n in shape)
        if len(shape) not in (2, 3) or min(shape) < 1:
            raise ValueError(f"Fourier: shape must be (H, W) or (D, H, W), got {shape}")
        self.ndim = len(shape)
        if mask is not None:
            if not isinstance(mask, torch.Tensor) or mask.is_complex():
                raise TypeError("Fourier: mask must be a real or boolean torch.Tensor")
            try:
                ok = torch.broadcast_shapes(mask.shape[-self.ndim:], shape) == shape
            except RuntimeError:
                ok = False
            if not ok or mask.ndim > self.ndim + 2:
                raise ValueError(f"Fourier: mask of shape {tuple(mask.shape)} does not broadcast "
                                 f"to k-space of shape {shape}")
            mask = mask != 0
        if sensitivities is not None:
            if not isinstance(sensitivities, torch.Tensor):
                raise TypeError("Fourier: sensitivities must be a torch.Tensor (coils, *shape)")
            if sensitivities.ndim != self.ndim + 1 or tuple(sensitivities.shape[1:]) != shape:
                raise ValueError(f"Fourier: sensitivities have shape {tuple(sensitivities.shape)}, "
                                 f"expected (coils, {', '.join(map(str, shape))})")
            if not bool(torch.isfinite(sensitivities).all()):
                raise ValueError("Fourier: sensitivities contain NaN or infinite values")
            if not sensitivities.is_complex():
                sensitivities = sensitivities.to(torch.complex64)
        self.shape, self.mask, self.sensitivities = shape, mask, sensitivities
        coils = sensitivities.shape[0] if sensitivities is not None else None
        super().__init__((1, *shape) if coils else shape, (coils, *shape) if coils else shape)

    @property
    def coils(self) -> int:
        return 1 if self.sensitivities is None else self.sensitivities.shape[0]

    @property
    def acceleration(self) -> float:
        """Samples of the full grid over samples acquired."""
        if self.mask is None:
            return 1.0
        full = torch.broadcast_to(self.mask, self.mask.shape[:-self.ndim] + self.shape)
        return float(full.numel() / max(int(full.sum()), 1))

    def _sens(self, like: torch.Tensor) -> torch.Tensor:
        return self.sensitivities.to(device=like.device, dtype=like.dtype
                                     if like.is_complex() else torch.complex64)

    def _apply_mask(self, k: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return k
        return k * self.mask.to(device=k.device, dtype=k.real.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_complex():
            x = x.to(torch.complex128 if x.dtype == torch.float64 else torch.complex64)
        if self.sensitivities is not None:
            x = x * self._sens(x)  # (B, 1, ...) * (coils, ...) -> (B, coils, ...)
        return self._apply_mask(centered_fft(x, self.ndim))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if not y.is_complex():
            raise TypeError(f"Fourier: k-space must be complex, got {y.dtype}")
        x = centered_ifft(self._apply_mask(y), self.ndim)
        if self.sensitivities is not None:
            x = (x * self._sens(x).conj()).sum(1, keepdim=True)
        return x

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        if self.sensitivities is None and y.shape[1] > 1:
            return root_sum_of_squares(centered_ifft(self._apply_mask(y), self.ndim)).to(y.real.dtype)
        return self.adjoint(y)

    def row_gram(self, x: torch.Tensor) -> float | None:
        """1 without sensitivities (``M F F^H M = M``: the orthonormal FFT keeps the sampled
        values apart); with them, ``S S^H`` couples the coils and there is no cheap projection."""
        return 1.0 if self.sensitivities is None else None

    def pinv(self, y: torch.Tensor, **options) -> torch.Tensor:
        check_tensor(y, "y", self.name, self.out_shape)
        if not y.is_complex():
            raise TypeError(f"Fourier.pinv: k-space y must be complex, got {y.dtype}")
        return self.pseudo_inverse(y)

    def __repr__(self) -> str:
        return (f"Fourier(shape={self.shape}, coils={self.coils}, "
                f"acceleration={self.acceleration:.2f})")
