"""Checks for operators, shared by medip's tests and by users writing their own operators."""

from __future__ import annotations

import torch

from .base import LinearOperator


def dot_test(A: LinearOperator, x: torch.Tensor, seed: int = 1) -> float:
    """The relative adjointness error ``|<A x, y> - <x, A^H y>| / (|A x| |y|)`` for a random
    ``y`` (seeded): about the float epsilon for an exact adjoint (1e-6 in float32, 1e-14 in
    float64), far larger for a wrong one."""
    Ax = A(x)
    gen = torch.Generator().manual_seed(seed)
    y = torch.randn(Ax.shape, dtype=Ax.dtype, generator=gen).to(Ax.device)
    lhs = torch.vdot(Ax.flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), A.H(y).flatten())
    return float(abs(lhs - rhs) / (Ax.norm() * y.norm()))


def assert_adjoint(A: LinearOperator, x: torch.Tensor, tol: float | None = None) -> None:
    """Raise ``AssertionError`` unless ``A.H`` is the adjoint of ``A`` at ``x`` to ``tol``
    (default 1e-5 for single precision, 1e-12 for double)."""
    if tol is None:
        tol = 1e-12 if x.dtype in (torch.float64, torch.complex128) else 1e-5
    error = dot_test(A, x)
    if not error <= tol:
        raise AssertionError(f"{A!r}: adjoint test error {error:.3g} exceeds {tol:.1g}")
