"""Classical iterative reconstructions on any :class:`~medip.operators.LinearOperator`: the
baselines users already run (CG-SENSE, TV and L1-wavelet compressed sensing), shipped so that
medip's result can be compared with them on the user's own data.

Each solves ``min_x 1/2 ||A x - y||^2 + weight R(x)`` from ``x = 0``; the regularisation weight
(and CG's iteration count) is chosen by Morozov's **discrepancy principle**, a rule a user can
run without ground truth: the data residual ``||A x - y||^2`` should equal what the true image
leaves, the noise energy ``m sigma^2`` (``m`` measured complex samples, ``sigma`` the noise
level per sample) plus any model error (:func:`discrepancy_target`), so the weight is bisected on
a log scale until it does. CG-SENSE also stops when its residual stalls, since on real data the
model error keeps it above the noise energy. Like :func:`medip.fit`, nothing here knows a
modality; the task supplies ``A``, ``y`` and ``sigma``.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch

from .. import defaults
from ..errors import InputError, MissingExtra
from ..operators import LinearOperator
from .fitting import Result
from .stopping import noise_floor

#: The methods besides DIP, by name (the command line's ``--method``).
METHODS = tuple(m for m in defaults.METHODS if m != "dip")
#: Iterations of one TV (PDHG) or wavelet (FISTA) solve; bisection steps of the weight search.
ITERATIONS = 150
SEARCH_STEPS = 8
#: CG's most iterations (it normally stops earlier, at the discrepancy or a stall).
CG_ITERATIONS = 100
#: CG-SENSE stops when one iteration lowers the residual by less than this fraction; the
#: least-squares floor is taken at a :data:`FLOOR_STALL` stall.
STALL = 0.05
FLOOR_STALL = 1e-3
#: The wavelet of the L1-wavelet method (orthonormal, periodised: its prox is exact).
WAVELET = "db4"


def operator_norm(A: LinearOperator, like: torch.Tensor, iterations: int = 30) -> float:
    """``||A||`` by power iteration on ``A^H A`` from a seeded random image shaped ``like``."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(like.shape, dtype=like.dtype, generator=gen)
    value = 1.0
    for _ in range(iterations):
        x = A.adjoint(A.forward(x))
        value = float(x.norm())
        x = x / value
    return math.sqrt(value)


def conjugate_gradient(A: LinearOperator, y: torch.Tensor, sigma: float | None,
                       iterations: int = CG_ITERATIONS, stall: float = STALL,
                       target: float | None = None) -> tuple[torch.Tensor, int, float]:
    """CG on the normal equations ``A^H A x = A^H y`` (CG-SENSE for coil-weighted Fourier
    operators), stopped at the discrepancy ``||A x - y||^2 <= m sigma^2`` (or ``target``), when
    an iteration lowers the residual by less than the fraction ``stall`` (semi-convergence: on
    real data a model error the noise level does not cover keeps the residual above the
    discrepancy, and later iterations fit it and the noise), or after ``iterations``; also when
    the normal-equation residual ``A^H (y - A x)`` falls to the rounding error of the data's
    precision (:func:`_converged`); no iteration at all when ``y`` itself is within the target.
    An iteration that raises the residual is undone. Returns
    the image, the iterations run and the final residual ``||A x - y||^2``."""
    target = _discrepancy(y, sigma) if target is None else target
    x = torch.zeros_like(A.adjoint(y))
    r = A.adjoint(y)
    p = r.clone()
    rr = first = _dot(r, r)
    converged = _converged(r.dtype)
    misfit = -y  # A x - y, updated with A p so no iteration needs a second forward
    residual = float(y.abs().square().sum())
    if target is not None and residual <= target:  # zero already explains y to its noise
        return x, 0, residual
    for step in range(1, iterations + 1):
        forward = A.forward(p)
        Ap = A.adjoint(forward)
        alpha = rr / max(_dot(p, Ap), 1e-30)
        previous_x, x = x, x + alpha * p
        r = r - alpha * Ap
        misfit = misfit + alpha * forward
        previous, residual = residual, float(misfit.abs().square().sum())
        if residual > previous:  # rounding has taken over: keep the better iterate
            return previous_x, step - 1, previous
        if (target is not None and residual <= target) or residual > (1 - stall) * previous:
            return x, step, residual
        rr_new = _dot(r, r)
        if rr_new <= converged * first:
            return x, step, residual
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, iterations, residual


def residual_floor(A: LinearOperator, y: torch.Tensor) -> float:
    """The least-squares residual ``min_x ||A x - y||^2`` (CG to a :data:`FLOOR_STALL` stall):
    the part of the data no image explains, i.e. the noise outside ``A``'s range plus any model
    error (on the real spiral sample 3.7 to 7 times the noise energy, concentrated at the
    k-space centre: off-resonance, trajectory and coil-map errors)."""
    return conjugate_gradient(A, y, None, CG_ITERATIONS, stall=FLOOR_STALL)[2]


def _converged(dtype: torch.dtype) -> float:
    """The squared relative size of ``A^H (y - A x)`` at which CG has converged as far as
    ``dtype``'s rounding allows (100 times its machine epsilon, squared). Iterating past it
    steps along rounding noise: on a consistent single-coil problem in complex64 (masked
    Fourier, where the first iteration is already exact), the next ones raised the residual from
    2e-11 to 396."""
    eps = torch.finfo(dtype).eps
    return (100 * eps) ** 2


def _dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.vdot(a.flatten(), b.flatten()).real)


def _discrepancy(y: torch.Tensor, sigma: float | None) -> float | None:
    """The noise energy ``m sigma^2`` of the measured (nonzero) samples."""
    if sigma is None:
        return None
    return y.numel() * noise_floor(y, sigma)


def discrepancy_target(A: LinearOperator, y: torch.Tensor, sigma: float) -> float:
    """The residual the true image leaves, which a regularised solution should match: Morozov's
    noise energy ``m sigma^2`` where the model is exact. Real data also hold a model error
    ``e`` (off-resonance, trajectory and coil-map errors); the least-squares residual
    (:func:`residual_floor`) is the noise outside ``A``'s range plus ``e``, so the true image
    leaves that floor plus the noise inside the range, ``min(m, n) sigma^2`` for ``n``
    unknowns. Returns the larger of the two estimates."""
    measured = float((y != 0).sum())
    unknowns = float(A.adjoint(y).numel())
    return max(measured * sigma ** 2, residual_floor(A, y) + min(measured, unknowns) * sigma ** 2)


def _gradient(x: torch.Tensor, dims: int) -> torch.Tensor:
    """Forward differences over the last ``dims`` axes (zero at the far edge), stacked first."""
    parts = []
    for axis in range(x.ndim - dims, x.ndim):
        d = torch.diff(x, dim=axis, append=x.narrow(axis, x.shape[axis] - 1, 1))
        parts.append(d)
    return torch.stack(parts)


def _divergence(q: torch.Tensor, dims: int) -> torch.Tensor:
    """The negative adjoint of :func:`_gradient`."""
    out = torch.zeros_like(q[0])
    for i, axis in enumerate(range(q.ndim - 1 - dims, q.ndim - 1)):
        component = q[i]
        n = component.shape[axis]
        first = component.narrow(axis, 0, 1)
        middle = component.narrow(axis, 1, n - 2) - component.narrow(axis, 0, n - 2)
        last = -component.narrow(axis, n - 2, 1)
        out = out + torch.cat([first, middle, last], dim=axis)
    return out


def tv_pdhg(A: LinearOperator, y: torch.Tensor, weight: float, iterations: int = ITERATIONS,
            start: torch.Tensor | None = None, norm: float | None = None) -> torch.Tensor:
    """``min 1/2 ||A x - y||^2 + weight TV(x)`` (isotropic TV, complex images by the modulus of
    their gradient) by Chambolle and Pock's primal-dual algorithm."""
    x = torch.zeros_like(A.adjoint(y)) if start is None else start.clone()
    dims = x.ndim - 2
    norm = operator_norm(A, x) if norm is None else norm
    scale = math.sqrt(norm ** 2 + 4 * dims)  # ||[A; grad]|| bound (||grad||^2 <= 4 dims)
    tau = sigma = 1 / scale
    p = torch.zeros_like(A.forward(x))
    q = torch.zeros_like(_gradient(x, dims))
    bar = x
    for _ in range(iterations):
        p = (p + sigma * (A.forward(bar) - y)) / (1 + sigma)
        q = q + sigma * _gradient(bar, dims)
        q = q / torch.clamp(q.abs().square().sum(0, keepdim=True).sqrt() / weight, min=1.0)
        new = x - tau * (A.adjoint(p) - _divergence(q, dims))
        bar = 2 * new - x
        x = new
    return x


def _pywt():
    try:
        import pywt
    except ImportError:
        raise MissingExtra("the wavelet method needs PyWavelets; install it with "
                           "pip install 'medip[mri]'") from None
    return pywt


def wavelet_fista(A: LinearOperator, y: torch.Tensor, weight: float,
                  iterations: int = ITERATIONS, start: torch.Tensor | None = None,
                  norm: float | None = None) -> torch.Tensor:
    """``min 1/2 ||A x - y||^2 + weight ||W x||_1`` with an orthonormal wavelet ``W``
    (:data:`WAVELET`, periodised; coarse approximation coefficients are not penalised) by
    FISTA (Beck and Teboulle 2009)."""
    pywt = _pywt()
    x = torch.zeros_like(A.adjoint(y)) if start is None else start.clone()
    shape = tuple(x.shape[2:])
    level = max(1, min(4, pywt.dwtn_max_level(shape, WAVELET)))
    step = 1 / (operator_norm(A, x) if norm is None else norm) ** 2

    def shrink(image: torch.Tensor, threshold: float) -> torch.Tensor:
        array = image[0, 0].detach().cpu().numpy()
        coeffs = pywt.wavedecn(array, WAVELET, mode="periodization", level=level)
        flat, slices = pywt.coeffs_to_array(coeffs)
        approx = slices[0]
        magnitude = abs(flat)
        kept = flat * (magnitude > threshold) * (1 - threshold / (magnitude + 1e-30))
        kept[approx] = flat[approx]
        back = pywt.waverecn(pywt.array_to_coeffs(kept, slices, output_format="wavedecn"),
                             WAVELET, mode="periodization")
        return torch.from_numpy(back[tuple(slice(n) for n in shape)]).to(image)[None, None]

    z, t = x, 1.0
    for _ in range(iterations):
        new = shrink(z - step * A.adjoint(A.forward(z) - y), weight * step)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z = new + ((t - 1) / t_new) * (new - x)
        x, t = new, t_new
    return x


#: The regularised solvers by method name: ``solver(A, y, weight, iterations, start=, norm=)``.
REGULARISED: dict[str, Callable[..., torch.Tensor]] = {"tv": tv_pdhg, "wavelet": wavelet_fista}


def discrepancy_weight(A: LinearOperator, y: torch.Tensor, sigma: float, method: str,
                       steps: int = SEARCH_STEPS, iterations: int = ITERATIONS
                       ) -> tuple[torch.Tensor, float]:
    """The ``method``'s reconstruction at the weight whose residual ``||A x - y||^2`` meets
    :func:`discrepancy_target` (bisection on log weight between ``1e-6`` and ``1`` times
    ``max |A^H y|``; each solve starts from the previous one). Returns image and weight."""
    solver = REGULARISED[method]
    target = discrepancy_target(A, y, sigma)
    back = A.adjoint(y)
    top = float(back.abs().max())
    low, high = math.log(top * 1e-6), math.log(top)
    norm = operator_norm(A, back)
    best, best_weight, start = None, None, None
    for _ in range(steps):
        weight = math.exp((low + high) / 2)
        x = solver(A, y, weight, iterations, start=start, norm=norm)
        residual = float((A.forward(x) - y).abs().square().sum())
        if residual > target:
            high = math.log(weight)
        else:
            low = math.log(weight)
            best, best_weight = x, weight  # the largest weight still within the noise
        start = x
    if best is None:  # even the smallest weight leaves more than the noise: the least penalised
        best, best_weight = x, weight
    return best, best_weight


def solve(method: str, A: LinearOperator, y: torch.Tensor, sigma: float | None) -> Result:
    """Reconstruct ``y`` with a classical ``method`` (:data:`METHODS`), its weight (or CG's
    iteration count) set by the discrepancy principle from the noise level ``sigma``; returned
    as a :class:`~medip.engine.fitting.Result` (``stop_step``: iterations run, no variance)."""
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose dip or one of {', '.join(METHODS)}")
    started = time.perf_counter()
    if method == "sense":
        image, steps, _ = conjugate_gradient(A, y, sigma)
        history = {"loss": [], "variance": []}
    else:
        if sigma is None:
            raise InputError(f"the {method} method sets its weight from the noise level, which "
                             f"this measurement does not give")
        image, weight = discrepancy_weight(A, y, sigma, method)
        steps, history = ITERATIONS * SEARCH_STEPS, {"loss": [], "variance": [],
                                                     "weight": [weight]}
    return Result(image.detach(), steps, steps, None, history, time.perf_counter() - started,
                  1.0)
