"""The classical solvers' CG on consistent problems: it stops where rounding takes over, and the
least-squares floor (the discrepancy principle's model-error term) is the true one."""

import torch
import torch.nn.functional as F

from medip.engine.solvers import conjugate_gradient, discrepancy_target, residual_floor
from medip.operators import Fourier, cartesian_mask


def _single_coil(ct_mu_256: torch.Tensor) -> tuple[Fourier, torch.Tensor]:
    """A consistent, underdetermined problem: 4x Cartesian single-coil k-space of a real slice
    with noise on the measured lines (zero-filling fits it exactly)."""
    image = F.interpolate(ct_mu_256, size=(64, 64), mode="area").to(torch.complex64)
    A = Fourier((64, 64), cartesian_mask((64, 64), 4, 0.08, seed=0).mask)
    gen = torch.Generator().manual_seed(0)
    clean = A(image / image.abs().max())
    noise = torch.complex(torch.randn(clean.shape, generator=gen),
                          torch.randn(clean.shape, generator=gen)) * 0.04
    return A, clean + A(A.H(noise))


def test_cg_stops_at_the_exact_solution_of_a_consistent_problem(ct_mu_256):
    A, y = _single_coil(ct_mu_256)
    x, steps, residual = conjugate_gradient(A, y, None, stall=1e-3)
    energy = float(y.abs().square().sum())
    assert steps == 1 and residual < 1e-9 * energy  # it used to stop at 3 with 27 % of the energy
    assert float((A(x) - y).abs().square().sum()) < 1e-9 * energy
    assert residual_floor(A, y) < 1e-9 * energy


def test_the_discrepancy_target_of_a_consistent_problem_is_the_noise_energy(ct_mu_256):
    A, y = _single_coil(ct_mu_256)
    measured = float((y != 0).sum())
    sigma = 0.04 * 2 ** 0.5  # per complex sample
    assert abs(discrepancy_target(A, y, sigma) / (measured * sigma ** 2) - 1) < 1e-6


def test_cg_takes_no_step_on_data_already_within_the_noise(ct_mu_256):
    """The discrepancy principle before the first iteration: a residual of pure noise (what is
    left after an image that already explains the data) gets no correction; a real signal does."""
    A, y = _single_coil(ct_mu_256)
    sigma = 0.04 * 2 ** 0.5
    gen = torch.Generator().manual_seed(1)
    noise = A(torch.complex(torch.randn(64, 64, generator=gen),
                            torch.randn(64, 64, generator=gen))[None, None] * 0.02)  # sigma / 2
    x, steps, residual = conjugate_gradient(A, noise, sigma)
    assert steps == 0 and not x.abs().any()
    assert residual == float(noise.abs().square().sum())
    assert conjugate_gradient(A, y, sigma)[1] >= 1
