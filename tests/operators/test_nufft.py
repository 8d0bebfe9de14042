"""The NUFFT (finufft), trajectories, density compensation, ESPIRiT, prewhitening, compression."""

import pytest
import torch

from medip.errors import MissingExtra
from medip.operators import (NUFFT, centered_fft, centered_ifft, compression, espirit,
                             espirit_is_determined,
                             estimate_sensitivities, golden_angle_radial, keep_shots, mix_coils,
                             pipe_menon_dcf, root_sum_of_squares, simulated_sensitivities,
                             variable_density_spiral, whitening)
from medip.operators.nufft import TOLERANCE
from medip.operators.testing import assert_adjoint


def _cartesian(shape):
    grid = torch.meshgrid(*(torch.arange(n) - n // 2 for n in shape), indexing="ij")
    return torch.stack([g / n for g, n in zip(grid, shape)], -1).reshape(1, -1, len(shape)).float()


def test_nufft_on_a_cartesian_trajectory_is_the_centred_fft():
    shape = (24, 20)
    x = torch.randn(2, 1, *shape, dtype=torch.complex64)
    k = NUFFT(shape, _cartesian(shape))(x).reshape(2, 1, *shape)
    expected = centered_fft(x, 2)
    assert float((k - expected).abs().max() / expected.abs().max()) < 3 * TOLERANCE[False]


@pytest.mark.parametrize("dtype,tol", [(torch.complex64, 1e-6), (torch.complex128, 1e-12)])
def test_nufft_adjoint_with_coils(dtype, tol):
    maps = torch.randn(3, 16, 12, dtype=torch.complex64)
    A = NUFFT((16, 12), variable_density_spiral(4, 50), maps)
    assert_adjoint(A, torch.randn(2, 1, 16, 12, dtype=dtype), tol)


def test_nufft_gradient_is_the_adjoint():
    A = NUFFT((12, 12), golden_angle_radial(6, 24))
    x = torch.randn(1, 1, 12, 12, dtype=torch.complex128, requires_grad=True)
    y = torch.randn(1, 1, 6, 24, dtype=torch.complex128)
    (A(x) - y).abs().square().sum().backward()
    torch.testing.assert_close(x.grad, 2 * A.adjoint(A.forward(x.detach()) - y))


def test_gridding_with_pipe_menon_weights_recovers_a_smooth_image():
    trajectory = golden_angle_radial(96, 64)
    A = NUFFT((64, 64), trajectory)
    gridded = NUFFT((64, 64), trajectory, dcf=pipe_menon_dcf(A))
    image = torch.zeros(1, 1, 64, 64, dtype=torch.complex64)
    image[..., 20:44, 24:40] = 1
    error = (gridded.pinv(A(image)) - image).abs()[..., 24:40, 28:36].mean()
    assert float(error) < 0.05


def test_the_preconditioner_is_the_root_of_the_density_compensation():
    """Radial sampling crowds the k-space centre: ``A^H A`` weighs a coarse pattern far above a
    fine one; with the square-root-dcf weight ``A^H W^2 A`` treats them alike, with coils too."""
    trajectory = golden_angle_radial(96, 64)
    maps = simulated_sensitivities((64, 64), 4)
    assert NUFFT((64, 64), trajectory, maps).preconditioner() is None  # no dcf, no weight
    dcf = pipe_menon_dcf(NUFFT((64, 64), trajectory))
    A = NUFFT((64, 64), trajectory, maps, dcf=dcf)
    W = A.preconditioner()
    assert_adjoint(W, torch.randn(2, 4, 96, 64, dtype=torch.complex128))
    torch.testing.assert_close(W.weights.square() / W.weights.square().mean(),
                               (dcf / dcf.mean()).float())
    c = torch.arange(64.0) - 31.5
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    window = torch.exp(-(yy ** 2 + xx ** 2) / 12 ** 2)

    def gain(x: torch.Tensor, weighted: bool) -> float:
        Ax = A(x[None, None].to(torch.complex64))
        return float((W(Ax) if weighted else Ax).abs().square().sum() / x.square().sum())

    coarse, fine = (window * torch.cos(2 * torch.pi * f * xx / 64) for f in (2, 16))
    plain = gain(coarse, False) / gain(fine, False)
    weighted = gain(coarse, True) / gain(fine, True)
    assert plain > 4 and 0.5 < weighted < 2, (plain, weighted)


def test_trajectory_errors_are_clear():
    with pytest.raises(ValueError, match="cycles/pixel"):
        NUFFT((16, 16), golden_angle_radial(4, 8) * 4)
    with pytest.raises(ValueError, match=r"\(shots, samples, 2\)"):
        NUFFT((16, 16), torch.zeros(4, 8, 3))
    with pytest.raises(ValueError, match="sensitivities"):
        NUFFT((16, 16), golden_angle_radial(4, 8), torch.ones(2, 8, 8, dtype=torch.complex64))


def test_missing_finufft_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "finufft", None)
    A = NUFFT((8, 8), golden_angle_radial(2, 8))
    with pytest.raises(MissingExtra, match=r"medip\[mri\]"):
        A(torch.ones(1, 1, 8, 8, dtype=torch.complex64))


def test_trajectories_and_shot_undersampling():
    spiral = variable_density_spiral(8, 100)
    assert spiral.shape == (8, 100, 2) and float(spiral.abs().max()) < 0.5
    assert golden_angle_radial(5, 32).shape == (5, 32, 2)
    assert keep_shots(32, 4).tolist() == [0, 4, 8, 12, 16, 20, 24, 28]
    assert len(keep_shots(32, 1)) == 32


def test_espirit_maps_explain_the_real_coil_images(kspace_2coil):
    _, rows, cols = kspace_2coil.shape
    calibration = kspace_2coil[:, rows // 2 - 12:rows // 2 + 12, cols // 2 - 12:cols // 2 + 12]
    maps = espirit(calibration, (rows, cols))
    images = centered_ifft(kspace_2coil, 2)
    inside = maps.support
    norm = maps.sensitivities.abs().square().sum(0)
    torch.testing.assert_close(norm[inside], torch.ones(int(inside.sum())), atol=1e-4, rtol=0)
    combined = (images * maps.sensitivities.conj()).sum(0)
    residual = (images - maps.sensitivities * combined).abs().square().sum(0)[inside].sum()
    assert float(residual / images.abs().square().sum(0)[inside].sum()) < 0.02
    ratio = estimate_sensitivities(kspace_2coil, 24)  # the other estimator agrees up to phase
    both = inside & ratio.support
    agreement = (maps.sensitivities.conj() * ratio.sensitivities).sum(0).abs()[both]
    assert float(agreement.median()) > 0.95


def test_espirit_refuses_a_too_small_calibration_region():
    with pytest.raises(ValueError, match="too small"):
        espirit(torch.ones(2, 6, 6, dtype=torch.complex64), (32, 32))
    # 19 x 3 patch positions cannot determine 8 coils x 6 x 6 kernel weights; 19 x 19 can
    assert not espirit_is_determined(8, (24, 8)) and espirit_is_determined(8, (24, 24))


def test_whitening_decorrelates_noise_and_compression_keeps_the_signal(kspace_2coil):
    gen = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0], [0.8, 0.3]], dtype=torch.complex64)
    white = torch.randn(2, 20000, dtype=torch.complex64, generator=gen)
    noise = mixing @ white
    whitened = mix_coils(whitening(noise), noise)
    covariance = whitened @ whitened.conj().T / whitened.shape[1]
    torch.testing.assert_close(covariance, torch.eye(2, dtype=torch.complex64), atol=0.03,
                               rtol=0)
    with pytest.raises(ValueError, match="singular"):
        whitening(torch.stack([noise[0], noise[0]]))
    virtual = mix_coils(compression(kspace_2coil, 1), kspace_2coil)
    assert virtual.shape == (1, *kspace_2coil.shape[1:])
    kept = virtual.abs().square().sum() / kspace_2coil.abs().square().sum()
    assert 0.5 < float(kept) <= 1.0 + 1e-5
    with pytest.raises(ValueError, match="choose 1..2"):
        compression(kspace_2coil, 3)


def test_simulated_sensitivities_are_smooth_and_normalised():
    maps = simulated_sensitivities((40, 48), 6)
    assert maps.shape == (6, 40, 48) and maps.dtype == torch.complex64
    torch.testing.assert_close(root_sum_of_squares(maps, 0)[0], torch.ones(40, 48))
    assert float(maps[0].abs().max() / maps[0].abs().min()) > 2  # each loop sees its side
    assert float(torch.diff(maps, dim=-1).abs().max()) < 0.2  # smooth on the pixel grid
    with pytest.raises(ValueError, match="coils must be >= 1"):
        simulated_sensitivities((8, 8), 0)
