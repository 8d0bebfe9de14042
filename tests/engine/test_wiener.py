"""The empirical Wiener refinement: its transform, its risk estimate against the true error, and
its gain over an oversmoothed pilot on the real CT slice."""

import pytest
import torch
import torch.nn.functional as F

from medip.engine.metrics import psnr
from medip.engine.wiener import SHRINKS, _Plane, dct_matrix, wiener_refine
from medip.operators import gaussian


@pytest.fixture(scope="module")
def ct_128(ct_hu):
    """The real head CT slice at 128x128, scaled to [0, 1]."""
    hu = torch.tensor(ct_hu, dtype=torch.float32).clamp(min=-1000)[None, None]
    image = F.avg_pool2d(hu, 4)[0, 0]
    return (image - image.min()) / (image.max() - image.min())


def blurred(image: torch.Tensor, width: int = 5) -> torch.Tensor:
    """A box-blurred copy: an oversmoothed denoiser's output, as a pilot."""
    kernel = torch.ones(1, 1, width, width) / width ** 2
    padded = F.pad(image[None, None], (width // 2,) * 4, mode="reflect")
    return F.conv2d(padded, kernel)[0, 0]


@pytest.mark.parametrize("n", [2, 5, 8])
def test_dct_matrix_is_orthonormal_with_a_constant_first_row(n):
    basis = dct_matrix(n)
    torch.testing.assert_close(basis @ basis.T, torch.eye(n), atol=1e-6, rtol=0)
    torch.testing.assert_close(basis[0], torch.full((n,), n ** -0.5))


def test_risk_estimate_matches_the_true_error(ct_128):
    """With a pilot independent of the noise, Stein's estimate is unbiased: over every shrink it
    tracks the true mean squared error (one noise draw of 16 k pixels: within 5 %), and the
    shrink it picks is within one step of the one that is truly best."""
    sigma = 25 / 255
    noisy = gaussian(ct_128, sigma, seed=1)
    pilot = blurred(gaussian(ct_128, sigma, seed=2), 3)
    refined = wiener_refine(noisy, pilot, sigma)
    true = [float(((_Plane(noisy, pilot, 8).filtered(sigma, a)[0] - ct_128) ** 2).mean())
            for a in SHRINKS]
    for estimated, actual in zip(refined.risks, true):
        assert abs(estimated - actual) < 0.05 * actual
    best = min(range(len(SHRINKS)), key=true.__getitem__)
    assert abs(SHRINKS.index(refined.shrink) - best) <= 1
    assert refined.risk == min(refined.risks)


@pytest.mark.parametrize("level", [10 / 255, 25 / 255, 50 / 255])
def test_refinement_beats_an_oversmoothed_pilot_on_the_real_slice(ct_128, level):
    noisy = gaussian(ct_128, level, seed=0)
    pilot = blurred(noisy)
    refined = wiener_refine(noisy, pilot, level)
    assert psnr(refined.image, ct_128) > psnr(pilot, ct_128) + 0.5
    assert psnr(refined.image, ct_128) > psnr(noisy, ct_128) + 3


def test_planes_are_filtered_apart_with_one_shrink(ct_128):
    sigma = 25 / 255
    stack = torch.stack([ct_128, ct_128.flip(0)])
    noisy = gaussian(stack, sigma, seed=0)
    pilot = torch.stack([blurred(plane) for plane in noisy])
    refined = wiener_refine(noisy, pilot, sigma)
    assert refined.image.shape == stack.shape
    for plane in range(2):
        alone = _Plane(noisy[plane], pilot[plane], 8).filtered(sigma, refined.shrink)[0]
        torch.testing.assert_close(refined.image[plane], alone)


def test_small_planes_noise_free_data_and_bad_input():
    small = torch.rand(5, 6)
    assert wiener_refine(small, small * 0.9, 0.1).image.shape == (5, 6)  # 5x5 windows
    pilot = torch.rand(8, 8)
    assert torch.equal(wiener_refine(torch.rand(8, 8), pilot, 0.0).image, pilot)
    with pytest.raises(ValueError, match="the pilot has shape"):
        wiener_refine(torch.rand(8, 8), torch.rand(8, 9), 0.1)
    with pytest.raises(ValueError, match="real images"):
        wiener_refine(torch.rand(8, 8, dtype=torch.complex64), torch.rand(8, 8), 0.1)
    with pytest.raises(ValueError, match="sigma must be"):
        wiener_refine(torch.rand(8, 8), torch.rand(8, 8), float("nan"))
