"""Linear operator algebra: forward ``A(x)``, adjoint ``A.H``, ``normal``, ``pinv``, ``@`` and scaling.

Tensors are ``(batch, channel, *spatial)`` with 2 or 3 spatial dimensions; complex tensors are
allowed wherever the operator is defined over the complex numbers. Every operator is built from
differentiable torch operations, so autograd flows through ``A``, ``A.H`` and ``A.pinv``.
"""

from __future__ import annotations

from typing import Sequence

import torch

Shape = tuple[int, ...]


def check_tensor(t: object, name: str, owner: str, trailing: Shape | None = None,
                 check_finite: bool = True) -> torch.Tensor:
    """Validate an operator argument and raise one clear error naming it when it is unusable."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if trailing is not None:
        if t.ndim < len(trailing) or tuple(t.shape[t.ndim - len(trailing):]) != tuple(trailing):
            raise ValueError(f"{owner}: {name} has shape {tuple(t.shape)}, expected (..., "
                             f"{', '.join(map(str, trailing))}) as trailing dimensions")
    if t.ndim not in (4, 5):
        raise ValueError(f"{owner}: {name} has shape {tuple(t.shape)}; expected (batch, channel, "
                         f"*spatial) with 2 or 3 spatial dimensions")
    if check_finite and not (t.is_floating_point() or t.is_complex()):
        raise TypeError(f"{owner}: {name} must be a floating-point or complex tensor, got {t.dtype}")
    if check_finite and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{owner}: {name} contains NaN or infinite values; clean or mask them first")
    return t


def real_dtype(t: torch.Tensor) -> torch.dtype:
    """The real dtype matching ``t`` (float32 for complex64, float64 for complex128)."""
    return t.real.dtype if t.is_complex() else t.dtype


class LinearOperator:
    """A linear map ``A`` between tensors shaped ``(batch, channel, *spatial)``.

    Subclasses implement :meth:`forward` and :meth:`adjoint` (the exact transpose of the
    discrete forward) and may override :meth:`pinv` with a cheap direct reconstruction.
    ``in_shape``/``out_shape`` are the trailing dimensions the operator fixes (``None`` when any
    size is accepted); leading dimensions (batch, and channel where not fixed) pass through.
    """

    def __init__(self, in_shape: Sequence[int] | None = None,
                 out_shape: Sequence[int] | None = None) -> None:
        self.in_shape: Shape | None = tuple(in_shape) if in_shape is not None else None
        self.out_shape: Shape | None = tuple(out_shape) if out_shape is not None else None

    @property
    def name(self) -> str:
        return type(self).__name__

    # -- to implement -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A`` without input validation (the hot path used by the fitting loop)."""
        raise NotImplementedError

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """Apply ``A^H`` without input validation."""
        raise NotImplementedError

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        """A cheap direct reconstruction; the adjoint unless a subclass knows better."""
        return self.adjoint(y)

    # -- validated public API -----------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(check_tensor(x, "x", self.name, self.in_shape))

    @property
    def H(self) -> LinearOperator:
        """The adjoint as an operator: ``A.H(y)``; ``A.H.H`` is ``A`` again."""
        return _Adjoint(self)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``A^H A x``."""
        return self.adjoint(self.forward(check_tensor(x, "x", self.name, self.in_shape)))

    def pinv(self, y: torch.Tensor, **options) -> torch.Tensor:
        """A cheap direct reconstruction from measurements ``y`` (FBP, zero-filled, upsampling)."""
        return self.pseudo_inverse(check_tensor(y, "y", self.name, self.out_shape), **options)

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The image nearest ``x`` that reproduces noise-free measurements ``y`` exactly:
        ``x + A^+ (y - A x)``, cheap where :meth:`row_gram` is known (``A^+ = A^H / c``)."""
        gram = self.row_gram(x)
        if gram is None:
            raise ValueError(f"{self.name} measurements cannot be enforced exactly (noise-free "
                             f"fitting needs a mask, single-coil Fourier sampling or box "
                             f"downsampling); fit without noise_free")
        return x + self.adjoint(y - self.forward(x)) / gram

    def row_gram(self, x: torch.Tensor) -> float | None:
        """``c`` where ``A A^H = c I`` on the range of ``A`` for images shaped like ``x``
        (orthogonal rows of equal norm, so :meth:`project` is exact and cheap); else None."""
        return None

    def preconditioner(self) -> LinearOperator | None:
        """A self-adjoint map ``W`` on the measurements such that ``A^H W^2 A`` is close to a
        multiple of the identity, or None where ``A`` is well enough conditioned as it is.
        :func:`medip.fit` fits the weighted residual ``|W (A x - y)|^2`` with it, so that every
        spatial frequency is learnt at a like pace (:meth:`Radon.preconditioner`)."""
        return None

    # -- algebra ------------------------------------------------------------------------------
    def __matmul__(self, other: LinearOperator) -> LinearOperator:
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Composed(self, other)

    def __mul__(self, scale: complex) -> LinearOperator:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, complex)):
            return NotImplemented
        return _Scaled(self, scale)

    __rmul__ = __mul__

    def __neg__(self) -> LinearOperator:
        return _Scaled(self, -1.0)

    def __repr__(self) -> str:
        return f"{self.name}(in_shape={self.in_shape}, out_shape={self.out_shape})"


class _Adjoint(LinearOperator):
    """``A.H``: swaps forward and adjoint of the wrapped operator."""

    def __init__(self, op: LinearOperator) -> None:
        super().__init__(op.out_shape, op.in_shape)
        self.op = op

    @property
    def name(self) -> str:
        return f"{self.op.name}.H"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.forward(y)

    @property
    def H(self) -> LinearOperator:
        return self.op


class _Composed(LinearOperator):
    """``(A @ B)(x) = A(B(x))``."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator) -> None:
        if (outer.in_shape is not None and inner.out_shape is not None
                and outer.in_shape != inner.out_shape):
            raise ValueError(f"cannot compose {outer.name} (input {outer.in_shape}) with "
                             f"{inner.name} (output {inner.out_shape})")
        super().__init__(inner.in_shape, outer.out_shape)
        self.outer, self.inner = outer, inner

    @property
    def name(self) -> str:
        return f"({self.outer.name} @ {self.inner.name})"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer.forward(self.inner.forward(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.inner.adjoint(self.outer.adjoint(y))

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.inner.pseudo_inverse(self.outer.pseudo_inverse(y))

    def preconditioner(self) -> LinearOperator | None:
        return self.outer.preconditioner()  # it weighs the measurements, the outer's output


class _Scaled(LinearOperator):
    """``(s A)(x) = s A(x)``; the adjoint uses the conjugate scale."""

    def __init__(self, op: LinearOperator, scale: complex) -> None:
        if scale == 0:
            raise ValueError("cannot scale an operator by 0: it has no pseudo-inverse")
        super().__init__(op.in_shape, op.out_shape)
        self.op, self.scale = op, scale

    @property
    def name(self) -> str:
        return f"{self.scale}*{self.op.name}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.forward(x) * self.scale

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        conj = self.scale.conjugate() if isinstance(self.scale, complex) else self.scale
        return self.op.adjoint(y) * conj

    def pseudo_inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.pseudo_inverse(y / self.scale)

    def preconditioner(self) -> LinearOperator | None:
        return self.op.preconditioner()  # a scale does not change the conditioning

    def row_gram(self, x: torch.Tensor) -> float | None:
        gram = self.op.row_gram(x)
        return None if gram is None else gram * abs(self.scale) ** 2


class Identity(LinearOperator):
    """``A = I``: the measurement is the image itself (denoising)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return y

    def project(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y

    def row_gram(self, x: torch.Tensor) -> float | None:
        return 1.0


class Diagonal(LinearOperator):
    """``A y = w * y`` with real weights ``w`` over the trailing dimensions (e.g. one weight per
    k-space sample): self-adjoint. The weight of a non-Cartesian fit's residual
    (:meth:`NUFFT.preconditioner`)."""

    def __init__(self, weights: torch.Tensor) -> None:
        if weights.is_complex() or not bool(torch.isfinite(weights).all()):
            raise ValueError("Diagonal: weights must be real and finite")
        super().__init__(tuple(weights.shape), tuple(weights.shape))
        self.weights = weights

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.weights.to(device=y.device, dtype=real_dtype(y))

    adjoint = forward
