"""The empirical Wiener refinement: its transform, agreement with a window-by-window reference,
its Jacobian trace and risk estimate against the truth, its choice of window depth, and its gain
over an oversmoothed pilot on real scans."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import medip
from medip.engine import wiener
from medip.engine.metrics import psnr
from medip.engine.wiener import UNIFORM_SHRINKS, dct_matrix, wiener_refine
from medip.operators import gaussian


@pytest.fixture(scope="module")
def brain_slices(sample_dir):
    """Eight neighbouring axial slices of the real 2 mm T1 (a 64x64 crop), scaled to [0, 1]."""
    array = medip.load(sample_dir / "mr_brain_t1_2mm.nii.gz").array[14:78, 20:84, 40:48]
    stack = torch.from_numpy(array.copy()).float().permute(2, 0, 1).contiguous()
    return (stack - stack.min()) / (stack.max() - stack.min())


def blurred(image: torch.Tensor, width: int = 5) -> torch.Tensor:
    """Each plane box-blurred: an oversmoothed denoiser's output, as a pilot."""
    planes = image.reshape(-1, 1, *image.shape[-2:])
    kernel = torch.ones(1, 1, width, width) / width ** 2
    padded = F.pad(planes, (width // 2,) * 4, mode="reflect")
    return F.conv2d(padded, kernel).reshape(image.shape)


def filtered(noisy, pilot, sigma, shrink, depth=1, side=8):
    """The refinement with one window and one shrink for every frequency (no choice left to
    Stein's estimate)."""
    return wiener_refine(noisy, pilot, sigma, windows=((depth, side),), shrinks=(shrink,),
                         frequencies=False)


def reference_filter(noisy, pilot, sigma, shrink, depth, size):
    """The filter written window by window, as its definition reads: every overlapping
    ``depth x size x size`` window of the reflect-padded stack, its separable DCT, the Wiener
    weights of the pilot's energies, the window's estimate weighted by 1 / sum W^2."""
    pad = (size - 1,) * 4 + (depth - 1,) * 2
    y = F.pad(noisy[None, None].double(), pad, mode="reflect")[0, 0]
    p = F.pad(pilot[None, None].double(), pad, mode="reflect")[0, 0]
    bases = [dct_matrix(n).double() for n in (depth, size, size)]

    def dct(window):
        return torch.einsum("ai,bj,ck,ijk->abc", *bases, window)

    numerator, denominator = torch.zeros_like(y), torch.zeros_like(y)
    for z, r, c in itertools.product(*(range(n - m + 1) for n, m in
                                       zip(y.shape, (depth, size, size)))):
        where = (slice(z, z + depth), slice(r, r + size), slice(c, c + size))
        energy = dct(p[where]) ** 2
        weights = energy / (energy + shrink * sigma ** 2)
        estimate = torch.einsum("ai,bj,ck,abc->ijk", *bases, weights * dct(y[where]))
        weight = 1 / (weights ** 2).sum()
        numerator[where] += weight * estimate
        denominator[where] += weight
    inner = tuple(slice(m - 1, m - 1 + n) for m, n in zip((depth, size, size), noisy.shape))
    return (numerator[inner] / denominator[inner]).float()


@pytest.mark.parametrize("n", [2, 5, 8])
def test_dct_matrix_is_orthonormal_with_a_constant_first_row(n):
    basis = dct_matrix(n)
    torch.testing.assert_close(basis @ basis.T, torch.eye(n), atol=1e-6, rtol=0)
    torch.testing.assert_close(basis[0], torch.full((n,), n ** -0.5))


@pytest.mark.parametrize("depth", [1, 3])
def test_filter_agrees_with_a_window_by_window_reference(brain_slices, depth, monkeypatch):
    """Strips of window rows, runs of planes and groups cut short change nothing."""
    sigma = 0.1
    clean = brain_slices[:4, 20:33, 24:36]
    noisy = gaussian(clean, sigma, seed=3)
    pilot = blurred(noisy, 3)
    expected = reference_filter(noisy, pilot, sigma, 0.5, depth, 4)
    torch.testing.assert_close(filtered(noisy, pilot, sigma, 0.5, depth, 4).image, expected,
                               atol=1e-5, rtol=0)
    monkeypatch.setattr(wiener, "_STRIP_ROWS", 3)  # strips, risk planes and groups of 1 plane
    monkeypatch.setattr(wiener, "RISK_VOXELS", clean[0].numel() * 2)
    monkeypatch.setattr(wiener, "_GROUP_VOXELS", clean[0].numel())
    torch.testing.assert_close(filtered(noisy, pilot, sigma, 0.5, depth, 4).image, expected,
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("depth", [1, 3])
def test_risk_holds_the_exact_jacobian_trace(brain_slices, depth):
    """With the pilot fixed the filter is linear in the noisy stack, so its Jacobian's diagonal
    is read off exactly by moving one voxel at a time; Stein's estimate must carry its trace over
    the voxels it reads (those the border padding does not mirror into their own windows)."""
    sigma, shrink = 0.1, 0.5
    noisy = gaussian(brain_slices[:5, 20:30, 24:33], sigma, seed=4)
    pilot = blurred(noisy, 3)
    base = filtered(noisy, pilot, sigma, shrink, depth, 4)
    read = (wiener._unmirrored(5, depth)[:, None, None] & wiener._unmirrored(10, 4)[:, None]
            & wiener._unmirrored(9, 4))
    assert 0 < read.sum() < read.numel()
    error, trace = 0.0, 0.0
    for index in read.flatten().nonzero()[:, 0].tolist():
        moved = noisy.clone()
        moved.view(-1)[index] += 1.0
        trace += float(filtered(moved, pilot, sigma, shrink, depth, 4).image.view(-1)[index]
                       - base.image.view(-1)[index])
        error += float(base.image.view(-1)[index] - noisy.view(-1)[index]) ** 2
    n = int(read.sum())
    assert base.risk == pytest.approx(error / n - sigma ** 2 + 2 * sigma ** 2 * trace / n,
                                      rel=1e-4)


def test_risk_estimate_matches_the_true_error(ct_128):
    """With a pilot independent of the noise, Stein's estimate is unbiased: over every shrink it
    tracks the true mean squared error of the voxels it reads (one noise draw of 15 k pixels:
    within 5 %), and the
    shrink it picks is within one step of the one that is truly best."""
    sigma = 25 / 255
    noisy = gaussian(ct_128, sigma, seed=1)
    pilot = blurred(gaussian(ct_128, sigma, seed=2), 3)
    refined = wiener_refine(noisy, pilot, sigma, frequencies=False)
    assert refined.window == (1, 8) and set(refined.risks) == {(1, 8, a) for a in UNIFORM_SHRINKS}
    assert refined.profile is None
    true = [true_error(filtered(noisy, pilot, sigma, a).image, ct_128) for a in UNIFORM_SHRINKS]
    for shrink, actual in zip(UNIFORM_SHRINKS, true):
        assert abs(refined.risks[(1, 8, shrink)] - actual) < 0.05 * actual
    best = min(range(len(UNIFORM_SHRINKS)), key=true.__getitem__)
    assert abs(UNIFORM_SHRINKS.index(refined.shrink) - best) <= 1
    assert refined.risk == min(refined.risks.values())


def true_error(image, clean):
    """The mean squared error on the voxels Stein's estimate reads for 8x8 windows."""
    read = wiener._unmirrored(clean.shape[-2], 8)[:, None] & wiener._unmirrored(clean.shape[-1], 8)
    return float(((image - clean) ** 2)[read].mean())


@pytest.mark.parametrize("level", [10 / 255, 25 / 255, 50 / 255])
def test_a_shrink_per_frequency_beats_one_for_all_where_the_pilot_lacks_fine_detail(ct_128,
                                                                                    level):
    """A blurred pilot (independent of the noise) understates the fine frequencies more than the
    coarse ones: each frequency's own shrink lowers the true error of the real slice's
    refinement below that of the best single shrink, the profile shrinks the finest frequency
    less than the coarsest (a smaller ``a`` keeps more of a coefficient the pilot understates),
    and Stein's estimate of the chosen filter still tracks its true error."""
    noisy = gaussian(ct_128, level, seed=1)
    pilot = blurred(gaussian(ct_128, level, seed=2), 3)
    uniform = wiener_refine(noisy, pilot, level, frequencies=False)
    refined = wiener_refine(noisy, pilot, level)
    assert refined.profile.shape == (1, 8, 8)
    assert refined.profile[0, -1, -1] < refined.profile[0, 0, 0]
    assert true_error(refined.image, ct_128) < 0.98 * true_error(uniform.image, ct_128)
    assert refined.risk == pytest.approx(true_error(refined.image, ct_128), rel=0.05)


@pytest.mark.parametrize("depth", [1, 3])
def test_a_shrink_per_frequency_agrees_with_the_window_by_window_reference(brain_slices, depth):
    sigma = 0.1
    noisy = gaussian(brain_slices[:4, 20:33, 24:36], sigma, seed=3)
    pilot = blurred(noisy, 3)
    profile = 2.0 ** torch.linspace(-3, 2, depth * 16).reshape(depth, 4, 4)
    stack = wiener._Stack(noisy, pilot, depth, 4)
    image = stack.filtered(0, 4, sigma, [profile.flatten()], diagonal=False)[0][0]
    torch.testing.assert_close(image, reference_filter(noisy, pilot, sigma, profile, depth, 4),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("level", [10 / 255, 25 / 255, 50 / 255])
def test_refinement_beats_an_oversmoothed_pilot_on_the_real_slice(ct_128, level):
    noisy = gaussian(ct_128, level, seed=0)
    pilot = blurred(noisy)
    refined = wiener_refine(noisy, pilot, level)
    assert psnr(refined.image, ct_128) > psnr(pilot, ct_128) + 0.5
    assert psnr(refined.image, ct_128) > psnr(noisy, ct_128) + 3


def test_windows_across_neighbouring_slices_where_they_share_structure(brain_slices, ct_128):
    """On neighbouring slices of the real brain Stein's estimate takes windows across slices,
    which beat the slice-by-slice filter; on a stack of unrelated planes it keeps them apart."""
    sigma = 25 / 255
    noisy = gaussian(brain_slices, sigma, seed=5)
    pilot = blurred(noisy, 3)
    refined = wiener_refine(noisy, pilot, sigma)
    apart = wiener_refine(noisy, pilot, sigma, windows=((1, 8),))
    assert refined.window[0] > 1
    assert psnr(refined.image, brain_slices) > psnr(apart.image, brain_slices) + 0.3
    unrelated = torch.stack([ct_128, ct_128.T, ct_128.flip(1), ct_128.roll(40, 0)])
    noisy = gaussian(unrelated, sigma, seed=6)
    assert wiener_refine(noisy, blurred(noisy, 3), sigma).window == (1, 8)


def test_planes_are_filtered_apart_with_one_shrink(ct_128):
    sigma = 25 / 255
    stack = torch.stack([ct_128, ct_128.flip(0)])
    noisy = gaussian(stack, sigma, seed=0)
    pilot = blurred(noisy)
    refined = wiener_refine(noisy, pilot, sigma, frequencies=False)
    assert refined.window == (1, 8)  # the only default window no deeper than 2 planes
    assert refined.image.shape == stack.shape
    for plane in range(2):
        alone = filtered(noisy[plane], pilot[plane], sigma, refined.shrink).image
        torch.testing.assert_close(refined.image[plane], alone)


def test_small_planes_short_stacks_noise_free_data_and_bad_input():
    small = torch.rand(5, 6)
    refined = wiener_refine(small, small * 0.9, 0.1)
    assert refined.image.shape == (5, 6) and refined.window == (1, 5)  # 5x5 windows
    fitted = small[None, None]  # a fit's (1, 1, H, W) image is one plane
    torch.testing.assert_close(wiener_refine(fitted, fitted * 0.9, 0.1).image[0, 0],
                               refined.image)
    pilot = torch.rand(8, 8)
    assert torch.equal(wiener_refine(torch.rand(8, 8), pilot, 0.0).image, pilot)
    with pytest.raises(ValueError, match="the pilot has shape"):
        wiener_refine(torch.rand(8, 8), torch.rand(8, 9), 0.1)
    with pytest.raises(ValueError, match="real"):
        wiener_refine(torch.rand(8, 8, dtype=torch.complex64), torch.rand(8, 8), 0.1)
    with pytest.raises(ValueError, match=r"\(D, H, W\) stacks"):
        wiener_refine(torch.rand(2, 2, 8, 8), torch.rand(2, 2, 8, 8), 0.1)
    with pytest.raises(ValueError, match="sigma must be"):
        wiener_refine(torch.rand(8, 8), torch.rand(8, 8), float("nan"))
    with pytest.raises(ValueError, match="sides >= 1"):
        wiener_refine(torch.rand(8, 8), torch.rand(8, 8), 0.1, windows=((0, 8),))
    with pytest.raises(ValueError, match="deeper than the 2 plane"):
        wiener_refine(torch.rand(2, 8, 8), torch.rand(2, 8, 8), 0.1, windows=((3, 8),))
