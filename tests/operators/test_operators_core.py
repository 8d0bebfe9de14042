"""The operator algebra, Identity, Mask, Downsample, exact projections and the inpainting mask
generators."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medip.operators import (Downsample, Fourier, Identity, KERNELS, Mask, SpatialFilter,
                             cartesian_mask, frequency_radius,
                             random_pixel_mask, scribble_mask, text_mask)

from medip.operators.testing import dot_test

SHAPES = [(2, 1, 12, 18), (1, 2, 6, 8, 10)]


def _rand(shape, dtype=torch.float32, seed=0):
    return torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(seed))


def _operators(shape):
    spatial = shape[2:]
    factors = (2,) * len(spatial) if len(spatial) == 2 else (2, 1, 2)
    mask = random_pixel_mask(spatial, 0.5, seed=3)
    ops = [Identity(), Mask(mask)] + [Downsample(factors, k) for k in KERNELS]
    return ops + [Downsample(2, "bicubic") @ Mask(mask), 2.5 * Downsample(factors, "lanczos"),
                  Mask(mask) @ (-Identity()), SpatialFilter(1 + frequency_radius(spatial))]


@pytest.mark.parametrize("shape", SHAPES, ids=["2d", "3d"])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_dot_product_identity(shape, dtype, tol):
    for A in _operators(shape):
        assert dot_test(A, _rand(shape, dtype)) < tol, A


def test_complex_inputs_pass_the_dot_test():
    x = _rand((1, 1, 8, 8), torch.complex64)
    for A in _operators(x.shape):
        assert dot_test(A, x) < 1e-5, A


@pytest.mark.parametrize("shape,sizes", [((2, 3, 8, 6), (8, 6)), ((1, 1, 5, 7, 4), (5, 7, 4)),
                                         ((1, 2, 9, 20), (64,))])
def test_frequency_filter_matches_an_explicit_zero_padded_full_fft(shape, sizes):
    """Real and complex inputs, one to three axes, padded or not: the filter equals an explicit
    zero-padded full FFT, cropped back."""
    from medip.operators.spectral import FrequencyFilter

    response = 1 + frequency_radius(sizes)
    W = FrequencyFilter(shape[-len(sizes):], response)
    dims = tuple(range(-len(sizes), 0))
    for x in (_rand(shape), torch.complex(_rand(shape), _rand(shape))):
        spectrum = torch.fft.fftn(x.to(torch.complex128), s=sizes, dim=dims) * response
        crop = tuple(slice(0, n) for n in shape[-len(sizes):])
        full = torch.fft.ifftn(spectrum, dim=dims)[(..., *crop)]
        expected = full if x.is_complex() else full.real
        torch.testing.assert_close(W(x), expected.to(W(x).dtype), rtol=1e-5, atol=1e-5)
        assert W(x).is_complex() == x.is_complex()
    assert dot_test(W, _rand(shape)) < 1e-5
    with pytest.raises(ValueError, match="cannot filter"):
        FrequencyFilter((70,), torch.ones(64))


def test_spatial_filter_keeps_real_images_real_and_refuses_a_bad_response():
    x = _rand((1, 2, 8, 6))
    W = SpatialFilter(torch.ones(8, 6))
    assert not W(x).is_complex()
    torch.testing.assert_close(W(x), x)
    with pytest.raises(ValueError, match="non-negative"):
        SpatialFilter(-torch.ones(8, 6))


def test_adjoint_algebra_and_normal():
    A = Downsample(2, "bicubic")
    x = _rand((1, 1, 8, 8))
    assert A.H.H is A
    torch.testing.assert_close(A.normal(x), A.H(A(x)))
    torch.testing.assert_close((3 * A)(x), 3 * A(x))
    assert (A @ Identity()).name.startswith("(Downsample")


def test_everything_is_differentiable():
    x = _rand((1, 1, 8, 8)).requires_grad_()
    A = Downsample(2, "lanczos") @ Mask(random_pixel_mask((8, 8), 0.3))
    (A.H(A(x)).sum() + A.pinv(A(x)).sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_downsampling_a_constant_gives_the_constant(kernel):
    for shape, factors in [((1, 1, 12, 12), (3, 2)), ((1, 1, 8, 6, 6), (2, 1, 1))]:
        y = Downsample(factors, kernel)(torch.full(shape, 7.0))
        torch.testing.assert_close(y, torch.full_like(y, 7.0))


def test_box_is_the_block_mean():
    x = _rand((1, 1, 8, 12))
    torch.testing.assert_close(Downsample((2, 3), "box")(x), F.avg_pool2d(x, (2, 3)))


def test_bicubic_matches_torch_antialiased_interpolate_away_from_edges(ct_mu_256):
    x = ct_mu_256 / ct_mu_256.max()
    ours = Downsample(2, "bicubic")(x)
    ref = F.interpolate(x, scale_factor=0.5, mode="bicubic", antialias=True, align_corners=False)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    # Same kernel (Keys a=-0.5, stretched by the factor) and same sample positions: the
    # interiors agree to float rounding; only edge handling differs (symmetric vs renormalised).
    assert (ours - ref)[inner].abs().max() < 1e-5


def test_through_plane_superresolution_shapes():
    A = Downsample((2, 1, 1), "lanczos")
    x = _rand((1, 1, 8, 5, 7))
    assert A(x).shape == (1, 1, 4, 5, 7)
    assert A.pinv(A(x)).shape == x.shape


def test_bicubic_pinv_beats_nearest_on_real_ct(ct_mu_256):
    A = Downsample(4, "bicubic")
    y = A(ct_mu_256)
    err_pinv = (A.pinv(y) - ct_mu_256).norm()
    err_nearest = (F.interpolate(y, scale_factor=4, mode="nearest") - ct_mu_256).norm()
    assert err_pinv < 0.9 * err_nearest


def _exact_projections():
    mask = random_pixel_mask((12, 18), 0.5, seed=3)
    kspace = cartesian_mask((12, 18), 3, 0.2).mask
    return [(Mask(mask), torch.float64), (Downsample(2, "box"), torch.float64),
            (3.0 * Downsample((1, 3), "box"), torch.float64), (Identity(), torch.float64),
            (Fourier((12, 18), kspace), torch.complex128)]


@pytest.mark.parametrize("A,dtype", _exact_projections(),
                         ids=["mask", "box", "scaled-box", "identity", "fourier"])
def test_project_is_the_nearest_image_that_reproduces_the_data(A, dtype):
    x, other, truth = (_rand((2, 1, 12, 18), dtype, seed) for seed in (1, 2, 3))
    y = A(truth)
    p = A.project(x, y)
    torch.testing.assert_close(A(p), y, rtol=0, atol=1e-12)  # the data, exactly
    torch.testing.assert_close(A.project(p, y), p, rtol=0, atol=1e-12)  # idempotent
    q = A.project(other, y)  # another image with the same data: x - p is orthogonal to q - p
    assert abs(torch.vdot((x - p).flatten(), (q - p).flatten())) < 1e-10 * x.norm() * q.norm()


def test_fourier_projection_replaces_the_sampled_kspace_as_numpy_does():
    sampled = cartesian_mask((16, 12), 4, 0.1).mask.numpy().astype(bool)
    x, truth = (_rand((1, 1, 16, 12), torch.complex128, seed) for seed in (1, 2))
    A = Fourier((16, 12), torch.from_numpy(sampled))
    fft = lambda a: np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(a), norm="ortho"))
    ifft = lambda k: np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k), norm="ortho"))
    expected = ifft(np.where(sampled, fft(truth[0, 0].numpy()), fft(x[0, 0].numpy())))
    np.testing.assert_allclose(A.project(x, A(truth))[0, 0].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("A", [Downsample(2, "bicubic"), Fourier((12, 18), sensitivities=torch.ones(
    2, 12, 18)), Downsample(2, "box") @ Mask(torch.ones(12, 18))], ids=["bicubic", "sense", "composed"])
def test_project_refuses_operators_without_a_cheap_exact_projection(A):
    x = _rand((1, 1, 12, 18))
    with pytest.raises(ValueError, match="cannot be enforced exactly.*fit without noise_free"):
        A.project(x, A(x if not isinstance(A, Fourier) else x.to(torch.complex64)))


def test_bad_inputs_raise_clear_errors():
    x = _rand((1, 1, 9, 8))
    with pytest.raises(ValueError, match="not divisible by factor 2"):
        Downsample(2)(x)
    with pytest.raises(ValueError, match="unknown kernel"):
        Downsample(2, "gauss")
    with pytest.raises(ValueError, match="positive integers"):
        Downsample((2, 0))
    with pytest.raises(ValueError, match="2 factors"):
        Downsample((2, 2))(_rand((1, 1, 4, 4, 4)))
    with pytest.raises(ValueError, match="does not broadcast"):
        Mask(torch.ones(5, 5, dtype=torch.bool))(x)
    with pytest.raises(TypeError, match="complex"):
        Mask(torch.ones(9, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="only 0 and 1"):
        Mask(torch.full((9, 8), 0.5))
    with pytest.raises(ValueError, match="x contains NaN"):
        Identity()(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(ValueError, match="x contains NaN"):
        Mask(torch.ones(4, 4))(torch.full((1, 1, 4, 4), float("inf")))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        Identity()(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="2 or 3 spatial"):
        Identity()(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="y contains NaN"):
        Downsample(2).pinv(torch.full((1, 1, 4, 4), float("nan")))


def test_inpainting_masks_are_deterministic_and_have_the_right_density():
    m = random_pixel_mask((64, 64), 0.5, seed=1)
    assert m.dtype == torch.bool and abs(m.float().mean() - 0.5) < 0.03
    assert torch.equal(m, random_pixel_mask((64, 64), 0.5, seed=1))
    assert not torch.equal(m, random_pixel_mask((64, 64), 0.5, seed=2))
    assert random_pixel_mask((8, 8, 8), 0.2).shape == (8, 8, 8)
    for make in (scribble_mask, text_mask):
        a, b = make((96, 128), seed=4), make((96, 128), seed=4)
        assert a.shape == (96, 128) and torch.equal(a, b)
        assert 0.02 < 1 - a.float().mean() < 0.6  # some pixels hidden, most kept
        assert not torch.equal(a, make((96, 128), seed=5))
    with pytest.raises(ValueError, match="missing must be"):
        random_pixel_mask((4, 4), 1.0)
