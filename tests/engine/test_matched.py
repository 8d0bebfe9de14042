"""The block-matched collaborative Wiener filter: its transform gives the image back when it
keeps every coefficient, it gains with a clean pilot, denoising's two-stage refinement beats the
first stage alone on a real scan, and clear errors."""

import pytest
import torch
import torch.nn.functional as F

from medip.engine.matched import MIN_SIDE, matched_refine
from medip.engine.metrics import psnr
from medip.engine.wiener import wiener_refine
from medip.operators import gaussian
from medip.tasks.restore import refine_denoised


def test_keeping_every_coefficient_gives_the_image_back(ct_128):
    """With a pilot whose every coefficient dwarfs the noise level, every weight is 1: the
    groups' transforms, their inverse and the weighted average back are exact."""
    noisy = gaussian(ct_128, 0.1, seed=0)
    out = matched_refine(noisy, noisy, 1e-6)
    torch.testing.assert_close(out, noisy, atol=1e-5, rtol=0)
    assert torch.equal(matched_refine(noisy, ct_128, 0.0), noisy)  # no noise: nothing to do


def test_a_clean_pilot_gives_the_oracle_filters_gain(ct_128):
    sigma = 25 / 255
    noisy = gaussian(ct_128, sigma, seed=1)
    out = matched_refine(noisy[None], ct_128[None], sigma)  # a stack of one plane
    assert out.shape == (1, 128, 128)
    assert psnr(out, ct_128[None]) > psnr(noisy, ct_128) + 10


def test_denoising_refinement_matches_in_the_pilot_and_beats_its_first_stage(ct_128):
    """An oversmoothed pilot (a blur, as a DIP result is smoother than the image): the local
    Wiener stage recovers detail, and the block-matched one, matching in the pilot and weighing
    by the first stage, adds to it on the real slice; stacks of planes keep the first stage."""
    sigma = 25 / 255
    noisy = gaussian(ct_128, sigma, seed=2)
    pilot = F.avg_pool2d(F.pad(noisy[None, None], (1,) * 4, mode="reflect"), 3, 1)[0, 0]
    first = wiener_refine(noisy, pilot, sigma)
    both = refine_denoised(noisy, pilot, sigma)
    assert both.matched and not first.matched
    assert both.shrink == first.shrink and both.window == first.window
    assert psnr(both.image, ct_128) > psnr(first.image, ct_128) + 0.2
    stack = refine_denoised(torch.stack([noisy, noisy]), torch.stack([pilot, pilot]), sigma)
    assert not stack.matched


def test_clear_errors(ct_128):
    with pytest.raises(ValueError, match="differ in shape"):
        matched_refine(ct_128, ct_128[:64], 0.1)
    with pytest.raises(ValueError, match=f"at least {MIN_SIDE}x{MIN_SIDE}"):
        matched_refine(ct_128[:8, :8], ct_128[:8, :8], 0.1)
    with pytest.raises(ValueError, match="real planes"):
        matched_refine(ct_128.to(torch.complex64), ct_128.to(torch.complex64), 0.1)
    with pytest.raises(ValueError, match="sigma must be"):
        matched_refine(ct_128, ct_128, float("nan"))
